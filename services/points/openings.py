"""Opening balances brought from a clinic group's old system (imports, issue 19): points as lots expiring on
the dates the old system gave them, stored value with its paid (principal) and bonus parts apart.

A batch comes in one call; each row is posted on its own (a savepoint each: a bad row leaves the others be)
under the dedupe key ``opening:<row key>``, read under the account's lock, so a batch sent again or a job
resumed after a crash posts nothing twice (a row sent again is answered ``posted``, as the first time). A row key is
``<origin>:<row>`` (``import:<job>:<row>``): a member's opening balance on a ledger comes from one origin
only, so the same file imported again by a second job answers ``present`` too instead of doubling it. An opening is
an ordinary posting of the ledger (an ``earn`` with rule ``opening`` and its lot; a wallet posting of kind
``opening``), so balance = sum of postings = sum of open lots holds and reconciliation checks it as any
other. Openings announce no event: they are not activity of the member (no message, no tier spend).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from services.points import ledger, wallet
from services.points.awards import Context
from services.points.ledger import Entry
from services.points.models import MemberCopy, PointsPosting, WalletPosting

RULE = "opening"
Resolve = Callable[[str], MemberCopy]


def _dedupe(key: str) -> str:
    return f"opening:{key}"


def _opened_elsewhere(session: Session, table: type, member: MemberCopy, key: str) -> bool:
    """Whether the member's opening balance on this ledger came from another origin (another import job)."""
    origin = _dedupe(key).rsplit(":", 1)[0] + ":"
    found = session.execute(select(table.id).where(
        table.member_id == member.member_id, table.dedupe_key.like("opening:%"),
        ~table.dedupe_key.startswith(origin, autoescape=True)).limit(1)).first()
    return found is not None


def _points(session: Session, ctx: Context, member: MemberCopy, row: dict[str, Any], dry_run: bool) -> str:
    if row["expires_on"] < ctx.today:
        raise Invalid("These points expired already; leave the row out.", {"expires_on": ["In the past."]})
    if not dry_run:
        ledger.lock_account(session, member.member_id, ctx.now)
    dedupe = _dedupe(row["key"])
    if ledger.posted(session, dedupe):
        return "present" if dry_run else "posted"  # this row, sent again (a resumed job): its first answer
    if _opened_elsewhere(session, PointsPosting, member, row["key"]):
        return "present"
    if dry_run:
        return "valid"
    ledger.earn(session, member.member_id, row["points"], RULE,
                Entry("import", row["key"], ctx.operator, row.get("branch"), "opening balance", dedupe_key=dedupe),
                row["expires_on"], ctx.now)
    return "posted"


def _wallet(session: Session, ctx: Context, member: MemberCopy, row: dict[str, Any], dry_run: bool) -> str:
    account = None if dry_run else wallet.lock_wallet(session, member.member_id, ctx)
    dedupe = _dedupe(row["key"])
    if wallet.existing(session, dedupe) is not None:
        return "present" if dry_run else "posted"
    if _opened_elsewhere(session, WalletPosting, member, row["key"]):
        return "present"
    if account is None:
        return "valid"
    wallet.post(session, account, ctx, "opening", row["principal_minor"], row["bonus_minor"], dedupe,
                row.get("branch"), reason="opening balance")
    return "posted"


POST = {"points": _points, "wallet": _wallet}


def open_each(session: Session, ctx: Context, ledger_name: str, rows: list[dict[str, Any]],
              resolve: Resolve, check_branch: Callable[[str], None], dry_run: bool = False) -> list[dict[str, Any]]:
    """Post each row's opening balance once (``check_branch`` refuses a branch unknown or not the caller's):
    ``posted`` (``valid`` on a dry run, which posts nothing),
    ``present`` (posted before under this key, or the member's opening came from another import) or
    ``invalid`` with the reason."""
    outcomes = []
    for row in rows:
        try:
            with session.begin_nested():
                if row.get("branch"):
                    check_branch(row["branch"])
                member = resolve(row["member_id"])
                if member.status != "active":
                    raise Conflict(f"This membership is {member.status}: no opening balance.")
                status = POST[ledger_name](session, ctx, member, row, dry_run)
            outcomes.append({"key": row["key"], "status": status, "member_id": str(member.member_id)})
        except (Invalid, Conflict, NotFound, Forbidden) as error:
            outcomes.append({"key": row["key"], "status": "invalid", "message": str(error),
                             "errors": error.fields})
    return outcomes
