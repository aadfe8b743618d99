"""Opening balances brought from a clinic group's old system (imports, issue 19): points as lots expiring on
the dates the old system gave them, stored value with its paid (principal) and bonus parts apart.

A batch comes in one call. What its rows find posted already is read for the whole batch at once (``_seen``), which is
all a dry run needs; a commit posts each row on its own (a savepoint each: a bad row leaves the others be)
under the dedupe key ``opening:<row key>``, read again under the account's lock, so a batch sent again or a job
resumed after a crash posts nothing twice (a row sent again is answered ``posted``, as the first time). A row key is
``<origin>:<row>`` (``import:<job>:<row>``): a member's opening balance on a ledger comes from one origin
only, so the same file imported again by a second job answers ``present`` too instead of doubling it. An opening is
an ordinary posting of the ledger (an ``earn`` with rule ``opening`` and its lot; a wallet posting of kind
``opening``), so balance = sum of postings = sum of open lots holds and reconciliation checks it as any
other. Openings announce no event: they are not activity of the member (no message, no tier spend).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.db import valid_uuids
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from services.points import ledger, wallet
from services.points.awards import Context
from services.points.ledger import Entry
from services.points.models import MemberCopy, PointsPosting, WalletPosting

RULE = "opening"
Resolve = Callable[[str], MemberCopy]


def _dedupe(key: str) -> str:
    return f"opening:{key}"


def _origin_of(dedupe: str) -> str:
    """The origin of an opening's dedupe key (``opening:import:<job>:``): its prefix, up to the row."""
    return dedupe.rsplit(":", 1)[0] + ":"


def _origin(key: str) -> str:
    """The origin of a row key (``import:<job>:<row>``), as its dedupe key carries it."""
    return _origin_of(_dedupe(key))


def _opened_elsewhere(session: Session, table: type, member: MemberCopy, key: str) -> bool:
    """Whether the member's opening balance on this ledger came from another origin (another import job)."""
    found = session.execute(select(table.id).where(
        table.member_id == member.member_id, table.dedupe_key.like("opening:%"),
        ~table.dedupe_key.startswith(_origin(key), autoescape=True)).limit(1)).first()
    return found is not None


@dataclass
class _Seen:
    """What a batch's rows find posted already, read for the whole batch in two statements: the rows' own dedupe
    keys, and each member's openings (by origin). A key posted stays posted, so ``posted`` is final; the rest is
    read again under the account's lock by a commit (a twin batch may be posting them now)."""

    posted: set[str] = field(default_factory=set)
    origins: dict[uuid.UUID, set[str]] = field(default_factory=dict)

    def elsewhere(self, member: MemberCopy, key: str) -> bool:
        return bool(self.origins.get(member.member_id, set()) - {_origin(key)})


def _seen(session: Session, table: type, rows: list[dict[str, Any]]) -> _Seen:
    seen = _Seen()
    keys = [_dedupe(row["key"]) for row in rows]
    seen.posted = set(session.scalars(select(table.dedupe_key).where(table.dedupe_key.in_(keys))))
    members = valid_uuids(row["member_id"] for row in rows)  # a malformed id: refused by resolve, row by row
    if members:
        for member_id, dedupe in session.execute(select(table.member_id, table.dedupe_key).where(
                table.member_id.in_(members), table.dedupe_key.like("opening:%"))):
            seen.origins.setdefault(member_id, set()).add(_origin_of(dedupe))
    return seen


def _points(session: Session, ctx: Context, member: MemberCopy, row: dict[str, Any], seen: _Seen,
            dry_run: bool) -> str:
    if row["expires_on"] < ctx.today:
        raise Invalid("These points expired already; leave the row out.", {"expires_on": ["In the past."]})
    dedupe = _dedupe(row["key"])
    if dedupe in seen.posted:
        return "present" if dry_run else "posted"  # this row, sent again (a resumed job): its first answer
    if dry_run:
        return "present" if seen.elsewhere(member, row["key"]) else "valid"
    ledger.lock_account(session, member.member_id, ctx.now)
    if ledger.posted(session, dedupe):
        return "posted"  # posted meanwhile by a twin of this batch
    if _opened_elsewhere(session, PointsPosting, member, row["key"]):
        return "present"
    ledger.earn(session, member.member_id, row["points"], RULE,
                Entry("import", row["key"], ctx.operator, row.get("branch"), "opening balance", dedupe_key=dedupe),
                row["expires_on"], ctx.now)
    return "posted"


def _wallet(session: Session, ctx: Context, member: MemberCopy, row: dict[str, Any], seen: _Seen,
            dry_run: bool) -> str:
    dedupe = _dedupe(row["key"])
    if dedupe in seen.posted:
        return "present" if dry_run else "posted"
    if dry_run:
        return "present" if seen.elsewhere(member, row["key"]) else "valid"
    account = wallet.lock_wallet(session, member.member_id, ctx)
    if wallet.existing(session, dedupe) is not None:
        return "posted"
    if _opened_elsewhere(session, WalletPosting, member, row["key"]):
        return "present"
    wallet.post(session, account, ctx, "opening", row["principal_minor"], row["bonus_minor"], dedupe,
                row.get("branch"), reason="opening balance")
    return "posted"


POST = {"points": _points, "wallet": _wallet}
TABLE = {"points": PointsPosting, "wallet": WalletPosting}


def open_each(session: Session, ctx: Context, ledger_name: str, rows: list[dict[str, Any]],
              resolve: Resolve, check_branch: Callable[[str], None], dry_run: bool = False) -> list[dict[str, Any]]:
    """Post each row's opening balance once (``check_branch`` refuses a branch unknown or not the caller's):
    ``posted`` (``valid`` on a dry run, which posts nothing),
    ``present`` (posted before under this key, or the member's opening came from another import) or
    ``invalid`` with the reason."""
    seen = _seen(session, TABLE[ledger_name], rows)
    outcomes = []
    for row in rows:
        try:
            # a commit's row in a savepoint of its own (a bad row leaves the others be); a dry run writes nothing
            with session.begin_nested() if not dry_run else contextlib.nullcontext():
                if row.get("branch"):
                    check_branch(row["branch"])
                member = resolve(row["member_id"])
                if member.status != "active":
                    raise Conflict(f"This membership is {member.status}: no opening balance.")
                status = POST[ledger_name](session, ctx, member, row, seen, dry_run)
            outcomes.append({"key": row["key"], "status": status, "member_id": str(member.member_id)})
        except (Invalid, Conflict, NotFound, Forbidden) as error:
            outcomes.append({"key": row["key"], "status": "invalid", "message": str(error),
                             "errors": error.fields})
    return outcomes
