"""Opening balances brought from a clinic group's old system (imports, issue 19): points as lots expiring on
the dates the old system gave them, stored value with its paid (principal) and bonus parts apart.

A batch comes in one call and goes by the batch, in a few statements whatever its size: its members' copies read
at once (a commit holds their ids first, ``roster``'s shared alias locks, all before any row lock), each row
checked on its own (a bad row — a branch, a member unknown, frozen or closed, points expired — is answered
``invalid`` and leaves the others be: nothing of it was written), then, for a commit, the rows' accounts (or
wallets) locked at once in member-id order (``kit.locks``), what the rows find posted already read under those
locks (``_seen``), and the rows to post written at once with the commit (``ledger.earn_locked``,
``wallet.post_locked``; a member in debt has the debt paid off first, by the ledger's own earn). A dry run takes no
lock and writes nothing.

Each row posts under the dedupe key ``opening:<row key>``, which is its idempotency key: unique in the ledger and
read under the account's lock, so a batch sent again or a job resumed after a crash posts nothing twice (a row sent
again is answered ``posted``, as the first time). So a row claims no ``kit.idempotency`` key and stores no answer
there: the posting is the claim, and ``posted`` its answer (``present`` and ``invalid`` are read again each time,
as a desk's refused command is). A row key is ``<origin>:<row>`` (``import:<job>:<row>``): a
member's opening balance on a ledger comes from one origin only, so the same file imported again by a second job
answers ``present`` too instead of doubling it. An opening is an ordinary posting of the ledger (an ``earn`` with
rule ``opening`` and its lot; a wallet posting of kind ``opening``), so balance = sum of postings = sum of open
lots holds and reconciliation checks it as any other. Openings announce no event (so they need no outbox): they
are not activity of the member (no message, no tier spend).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from services.kit.db import valid_uuids
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from services.kit.locks import serialise_many
from services.points import ledger, roster, wallet
from services.points.awards import Context
from services.points.ledger import Entry
from services.points.models import MemberCopy, PointsPosting, WalletPosting

RULE = "opening"
Resolve = Callable[[str, MemberCopy | None], MemberCopy]
"""The member a row's id names now, given the id's copy as read for the batch (``roster.resolve``'s ``read``)."""


def _dedupe(key: str) -> str:
    return f"opening:{key}"


def _origin_of(dedupe: str) -> str:
    """The origin of an opening's dedupe key (``opening:import:<job>:``): its prefix, up to the row."""
    return dedupe.rsplit(":", 1)[0] + ":"


def _origin(key: str) -> str:
    """The origin of a row key (``import:<job>:<row>``), as its dedupe key carries it."""
    return _origin_of(_dedupe(key))


@dataclass
class _Seen:
    """What a batch's rows find posted already, read for the whole batch in one statement: the rows' own dedupe
    keys, and each member's openings (by origin). Read by a commit under the accounts' locks: then it is final."""

    posted: set[str] = field(default_factory=set)
    origins: dict[uuid.UUID, set[str]] = field(default_factory=dict)

    def elsewhere(self, member: MemberCopy, key: str) -> bool:
        return bool(self.origins.get(member.member_id, set()) - {_origin(key)})

    def add(self, member: MemberCopy, key: str) -> None:
        """A row of this batch to be posted: a twin of it later in the batch finds it posted."""
        self.posted.add(_dedupe(key))
        self.origins.setdefault(member.member_id, set()).add(_origin(key))


def _seen(session: Session, table: type, checked: list[tuple[int, dict[str, Any], MemberCopy]]) -> _Seen:
    seen = _Seen()
    if not checked:
        return seen
    keys = {_dedupe(row["key"]) for _position, row, _member in checked}
    members = {member.member_id for _position, _row, member in checked}
    for member_id, dedupe in session.execute(select(table.member_id, table.dedupe_key).where(or_(
            table.dedupe_key.in_(keys), and_(table.member_id.in_(members), table.dedupe_key.like("opening:%"))))):
        if dedupe in keys:
            seen.posted.add(dedupe)
        if member_id in members and dedupe.startswith("opening:"):
            seen.origins.setdefault(member_id, set()).add(_origin_of(dedupe))
    return seen


_COPIES = MemberCopy.__table__.columns


def _copies(session: Session, rows: list[dict[str, Any]], held: bool) -> dict[uuid.UUID, MemberCopy]:
    """The copies of the ids the rows name, in one statement; ``held``: each id held first (``roster``'s shared
    alias lock, in sorted order), as ``roster.find(held=True)`` holds one."""
    ids = valid_uuids(row["member_id"] for row in rows)  # a malformed id: refused by resolve, row by row
    if not ids:
        return {}
    if held:
        serialise_many(session, roster.ALIAS_LOCK, list(ids), shared=True)
    session.flush()  # the copies ``roster.prefetch`` just brought up to date (a Core read does not flush them)
    return {row.member_id: MemberCopy(**row._mapping) for row in session.execute(
        select(*_COPIES).where(_COPIES.member_id.in_(ids)))}


def _member(session: Session, resolve: Resolve, member_id: Any, copies: dict[uuid.UUID, MemberCopy]) -> MemberCopy:
    """The member a row names now (``resolve`` with the copy read for the batch). Only a member whose copy is not
    at hand as it is (merged, or not heard of yet) costs statements of its own, in a savepoint: a member that members
    does not know leaves no copy behind."""
    try:
        copy = copies.get(uuid.UUID(str(member_id)))
    except ValueError:
        copy = None
    if copy is not None and copy.merged_into_id is None and copy.enrolled_at is not None:
        return resolve(member_id, copy)
    with session.begin_nested():
        return resolve(member_id, copy)


def _check(ctx: Context, ledger_name: str, row: dict[str, Any], member: MemberCopy) -> None:
    if member.status != "active":
        raise Conflict(f"This membership is {member.status}: no opening balance.")
    if ledger_name == "points" and row["expires_on"] < ctx.today:
        raise Invalid("These points expired already; leave the row out.", {"expires_on": ["In the past."]})


def _post_points(session: Session, ctx: Context, accounts: dict[uuid.UUID, Any],
                 rows: list[tuple[dict[str, Any], MemberCopy]]) -> None:
    ledger.earn_locked(session, accounts, [
        ledger.Earn(member.member_id, row["points"], RULE,
                    Entry("import", row["key"], ctx.operator, row.get("branch"), "opening balance",
                          dedupe_key=_dedupe(row["key"])), row["expires_on"]) for row, member in rows], ctx.now)


def _post_wallet(session: Session, ctx: Context, wallets: dict[uuid.UUID, Any],
                 rows: list[tuple[dict[str, Any], MemberCopy]]) -> None:
    wallet.post_locked(session, wallets, ctx, "opening", [
        (member.member_id, row["principal_minor"], row["bonus_minor"], _dedupe(row["key"]), row.get("branch"),
         "opening balance") for row, member in rows])


def _lock(session: Session, ctx: Context, ledger_name: str, members: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """The members' accounts (or wallets), locked at once in member-id order."""
    if ledger_name == "points":
        return ledger.lock_accounts_at_once(session, members, ctx.now)
    return wallet.lock_wallets(session, members, ctx)


TABLE = {"points": PointsPosting, "wallet": WalletPosting}
POST = {"points": _post_points, "wallet": _post_wallet}


def open_each(session: Session, ctx: Context, ledger_name: str, rows: list[dict[str, Any]],
              resolve: Resolve, check_branch: Callable[[str], None], dry_run: bool = False) -> list[dict[str, Any]]:
    """Post each row's opening balance once (``check_branch`` refuses a branch unknown or not the caller's):
    ``posted`` (``valid`` on a dry run, which posts nothing),
    ``present`` (posted before under this key, or the member's opening came from another import) or
    ``invalid`` with the reason."""
    copies = _copies(session, rows, held=not dry_run)
    outcomes: list[dict[str, Any]] = [{} for _row in rows]
    checked = []
    for position, row in enumerate(rows):
        try:
            if row.get("branch"):
                check_branch(row["branch"])
            member = _member(session, resolve, row["member_id"], copies)
            _check(ctx, ledger_name, row, member)
            checked.append((position, row, member))
        except (Invalid, Conflict, NotFound, Forbidden) as error:
            outcomes[position] = {"key": row["key"], "status": "invalid", "message": str(error),
                                  "errors": error.fields}
    # a commit locks the accounts before it reads what is posted: a twin batch posting the same rows waits here
    locked = {} if dry_run else _lock(session, ctx, ledger_name, [member.member_id for _p, _row, member in checked])
    seen = _seen(session, TABLE[ledger_name], checked)
    to_post = []
    for position, row, member in checked:
        if _dedupe(row["key"]) in seen.posted:
            status = "present" if dry_run else "posted"  # this row, sent again (a resumed job): its first answer
        elif seen.elsewhere(member, row["key"]):
            status = "present"
        elif dry_run:
            status = "valid"
        else:
            status = "posted"
            seen.add(member, row["key"])
            to_post.append((row, member))
        outcomes[position] = {"key": row["key"], "status": status, "member_id": str(member.member_id)}
    if to_post:
        POST[ledger_name](session, ctx, locked, to_post)
    return outcomes
