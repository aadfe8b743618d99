"""Points' own copy of the members it serves: id, referrer, home branch, tier, segment and status.

Fed by the members service's events; a member points has not heard of yet (an event still on its
way) is asked for once with ``members.get_member`` and remembered (a batch's members with one
``members.get_members``: ``prefetch``). Each fact carries the time it
became true, so an older event arriving after a newer one changes nothing.

A member merged into another (``member_merged``) keeps its copy with ``merged_into_id`` set: every
lookup of its id answers the survivor's copy, so late events and calls naming the duplicate apply to
the survivor. ``member_unmerged`` clears the alias.

An alias read and then acted on must not change in between: a merge committing after a command read
"not merged" but before it locked the account would have the command credit (or charge) the emptied
duplicate. So changes hold each id they resolve (``held=True``: a shared ``kit.locks`` lock on the id, taken
in the same round trip as the alias is read, before any row lock) and a merge or its reversal takes the
merged id's lock exclusively (``hold_for_merge``), first thing: the two wait for each other, never
interleave. Reads need no lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Uuid, bindparam, select, text
from sqlalchemy.orm import Session

from services.kit.aliases import follow
from services.kit.db import dialect_insert, valid_uuids
from services.kit.errors import Conflict, NotFound
from services.kit.idempotency import NOT_SENT, First, prefetched
from services.kit.locks import lock_name, serialise, then
from services.points.models import MemberCopy

Fetch = Callable[[str], dict[str, Any]]
"""Asks the members service for a member (``members.get_member``); raises NotFound for an unknown one."""


def parse_id(member_id: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(member_id))
    except ValueError:
        raise NotFound(f"No member {member_id}.") from None


def parse_moment(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def insert_ignoring_duplicate(session: Session, model: type, values: dict[str, Any], key: list[str]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: create a row two workers may create at the same moment."""
    session.execute(dialect_insert(session, model).values(**values).on_conflict_do_nothing(index_elements=key))


def _row(session: Session, member_id: uuid.UUID, now: datetime, lock: bool = True) -> MemberCopy:
    insert_ignoring_duplicate(session, MemberCopy, {"member_id": member_id, "tier": "standard", "status": "active",
                                                    "updated_at": now}, ["member_id"])
    query = select(MemberCopy).where(MemberCopy.member_id == member_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).one()


ALIAS_LOCK = "points.member"

_COLUMNS = MemberCopy.__table__.columns
_COPY = select(*_COLUMNS).where(MemberCopy.__table__.c.member_id == bindparam("member"))
# the same read, after the id's shared alias lock, in one round trip (PostgreSQL; a command's hot path)
COPY_SQL = f"SELECT {', '.join(c.name for c in _COLUMNS)} FROM points_members WHERE member_id = :member"
"""The copy's read as text, for a statement that brings it with others (``awards.hold_visit_for_earn``, ``copy_of``)."""
COPY_COLUMNS = tuple(_COLUMNS)
_HELD_COPY_SQL = then(COPY_SQL, shared=True)
_HELD_COPY = text(_HELD_COPY_SQL).bindparams(bindparam("member", type_=Uuid())).columns(*_COLUMNS)
_ALIAS = select(MemberCopy.merged_into_id).where(MemberCopy.member_id == bindparam("member"))
_HELD_ALIAS = text(then("SELECT merged_into_id FROM points_members WHERE member_id = :member", shared=True)).bindparams(
    bindparam("member", type_=Uuid())).columns(merged_into_id=Uuid())


def held_copy_params(member_id: Any) -> dict[str, Any]:
    """The parameters of the held copy's read (``_HELD_COPY_SQL``, ``first_read``): ``NotFound`` for a malformed id."""
    key = parse_id(member_id)
    return {"lock_name": lock_name(ALIAS_LOCK, key), "member": key}


def first_read(member_of: Callable[[dict[str, Any]], Any], select_sql: str = COPY_SQL,
               columns: tuple[Any, ...] = COPY_COLUMNS) -> First:
    """A command's member held and its copy read (``find(held=True)``) with its idempotency claim:
    ``@idempotent(first=first_read(...))``, one round trip less. ``member_of``: the member's id from the command's
    arguments; ``select_sql`` (with ``columns``): the copy's read, or one that brings more beside it (``:member``)."""
    return First(then(select_sql, shared=True), tuple(columns),
                 lambda arguments: held_copy_params(member_of(arguments)), types={"member": Uuid()})


HELD_COPY_FIRST = first_read(lambda arguments: arguments["member_id"])
"""The member of a command's ``member_id`` argument read with its claim (``find(held=True)`` takes the row)."""


def prefetched_copy(session: Session, first: First, member_id: Any) -> tuple[Any, Any]:
    """(the copy or None, the row) that ``first`` read with the claim for ``member_id``; (``UNREAD``, None) when it
    was not sent (SQLite, a replayed key): then ``resolve`` reads the copy itself."""
    row = prefetched(session, first, held_copy_params(member_id))
    if row is NOT_SENT:
        return UNREAD, None
    return (copy_of(row) if row is not None else None), row


def _held(session: Session, held: bool) -> bool:
    return held and session.get_bind().dialect.name == "postgresql"  # SQLite: the kit's gate serialises


def find(session: Session, member_id: Any, held: bool = False) -> MemberCopy | None:
    """The copy as it is now, detached (read on every command: a plain prebuilt query, not the ORM).
    ``held``: the id's alias stays as read until the transaction ends (a merge of it waits)."""
    key = parse_id(member_id)
    if _held(session, held):
        params = held_copy_params(key)
        row = prefetched(session, HELD_COPY_FIRST, params)
        if row is NOT_SENT:
            row = session.execute(_HELD_COPY, params).first()
    else:
        row = session.execute(_COPY, {"member": key}).first()
    return MemberCopy(**{column.name: getattr(row, column.name) for column in _COLUMNS}) if row is not None else None


def hold_for_merge(session: Session, member_id: uuid.UUID) -> None:
    """Wait until no change holds ``member_id``, and keep new ones out until this merge (or reversal) ends."""
    serialise(session, ALIAS_LOCK, member_id)


def survivor_of(session: Session, member_id: uuid.UUID, held: bool = False) -> uuid.UUID:
    """The id whose account and copy stand for ``member_id``: itself, or the member it was merged into.
    ``held``: every id of the chain is held as its alias is read, for a change that acts on the account."""
    if _held(session, held):
        def next_of(member: uuid.UUID) -> uuid.UUID | None:
            return session.execute(_HELD_ALIAS, {"lock_name": lock_name(ALIAS_LOCK, member),
                                                 "member": member}).scalar()
    else:
        def next_of(member: uuid.UUID) -> uuid.UUID | None:
            return session.execute(_ALIAS, {"member": member}).scalar()
    return follow(next_of, member_id)[-1]


def set_alias(session: Session, merged_id: uuid.UUID, survivor_id: uuid.UUID, now: datetime) -> None:
    """From now on ``merged_id`` names ``survivor_id``."""
    copy = _row(session, merged_id, now)
    copy.merged_into_id, copy.updated_at = survivor_id, now


def clear_alias(session: Session, merged_id: uuid.UUID, survivor_id: uuid.UUID, now: datetime) -> None:
    """``merged_id`` names itself again (unless it was merged elsewhere since)."""
    copy = _row(session, merged_id, now)
    if copy.merged_into_id == survivor_id:
        copy.merged_into_id, copy.updated_at = None, now


def copy_of(row: Any) -> MemberCopy | None:
    """A copy from a row with its columns (None if they are all null: no copy)."""
    values = {column.name: getattr(row, column.name) for column in _COLUMNS}
    return MemberCopy(**values) if values["member_id"] is not None else None


UNREAD = object()


def resolve(session: Session, member_id: Any, fetch: Fetch, now: datetime, held: bool = False,
            read: Any = UNREAD) -> MemberCopy:
    """The member's copy (the survivor's, for a merged member); fetched from the members service when
    points has not heard of it (``NotFound`` for a member that does not exist, ``Unavailable`` if members
    does not answer). ``held``: for a change, the ids resolved are held until the transaction ends. ``read``:
    ``member_id``'s copy (or None), read already as ``find`` would have (held, if ``held``)."""
    key = parse_id(member_id)
    copy = find(session, key, held=held) if read is UNREAD else read
    if copy is not None and copy.merged_into_id is not None:
        key = survivor_of(session, copy.merged_into_id, held=held)
        copy = find(session, key)
    if copy is not None and copy.enrolled_at is not None:
        return copy
    return _refresh(_row(session, key, now), fetch(str(key)), now)


def _refresh(copy: MemberCopy, member: dict[str, Any], now: datetime) -> MemberCopy:
    """``copy`` brought up to what members answered of the member now."""
    copy.home_branch = member.get("home_branch") or copy.home_branch
    referrer = member.get("referred_by")
    copy.referrer_id = uuid.UUID(referrer) if referrer else copy.referrer_id
    copy.enrolled_at = parse_moment(member.get("enrolled_at")) or now
    # what members says now is at least as new as any event it sent before
    if copy.tier_as_of is None or copy.tier_as_of <= now:
        copy.tier, copy.tier_as_of = member.get("tier") or copy.tier, now
    if copy.status_as_of is None or copy.status_as_of <= now:
        copy.status, copy.status_as_of = member.get("status") or copy.status, now
    copy.updated_at = now
    return copy


FetchMany = Callable[[list[str]], dict[str, Any]]
"""Asks the members service for many members in one call (``members.get_members``): ``{"items": [...]}``."""


def prefetch(session: Session, member_ids: list[Any], fetch_many: FetchMany, now: datetime) -> None:
    """Copies of a batch's members that points has not heard of (an import's opening balances, of members
    imported moments ago whose ``member_enrolled`` is still on its way), asked of members in one call, not one a
    row; ``resolve`` then finds each here. Malformed ids are left for ``resolve`` to refuse."""
    keys = valid_uuids(member_ids)
    if not keys:
        return
    table = MemberCopy.__table__
    known = dict(session.execute(select(table.c.member_id, table.c.enrolled_at)
                                 .where(table.c.member_id.in_(keys))).all())
    missing = sorted(str(key) for key in keys if known.get(key) is None)
    if not missing:
        return
    for member in fetch_many(missing)["items"]:
        _refresh(_row(session, uuid.UUID(member["id"]), now), member, now)


def enrolled(session: Session, event: dict[str, Any], now: datetime) -> MemberCopy:
    """A ``member_enrolled`` (members' contract): members does not send the enrolment time, so the event's
    ``occurred_at`` (written in the enrolment's transaction) stands for it."""
    copy = _row(session, event["member_id"], now)
    copy.home_branch = event["home_branch"]
    if event["referrer_id"] is not None:
        copy.referrer_id = event["referrer_id"]
    copy.enrolled_at = event["occurred_at"] or now
    copy.updated_at = now
    return copy


# ``enrolled`` of many members in one statement (PostgreSQL): each copy created or brought up to its enrolment, in
# member-id order (the rows' lock order), as ``_row`` then ``enrolled`` leave it
_ENROLLED_MANY_PG = text(
    "INSERT INTO points_members (member_id, tier, status, home_branch, referrer_id, enrolled_at, updated_at) "
    "SELECT m.member_id, 'standard', 'active', m.home_branch, m.referrer_id, :enrolled_at, :now "
    "FROM unnest(CAST(:members AS uuid[]), CAST(:branches AS varchar[]), CAST(:referrers AS uuid[])) "
    "AS m(member_id, home_branch, referrer_id) ORDER BY m.member_id "
    "ON CONFLICT (member_id) DO UPDATE SET home_branch = excluded.home_branch, "
    "referrer_id = COALESCE(excluded.referrer_id, points_members.referrer_id), enrolled_at = excluded.enrolled_at, "
    "updated_at = excluded.updated_at"
).bindparams(bindparam("enrolled_at", type_=_COLUMNS["enrolled_at"].type),
             bindparam("now", type_=_COLUMNS["updated_at"].type))
_REFERRERS = select(MemberCopy.member_id, MemberCopy.referrer_id).where(
    MemberCopy.member_id.in_(bindparam("members", expanding=True)), MemberCopy.referrer_id.is_not(None))


def referrers_known(session: Session, member_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """The referrer of each of these members whose copy names one (a copy made before its enrolment came)."""
    return dict(session.execute(_REFERRERS, {"members": member_ids}).all()) if member_ids else {}


def enrolled_many(session: Session, events: list[dict[str, Any]], now: datetime) -> None:
    """``enrolled`` of each of an import's members (``members_imported``: one ``occurred_at`` for all), their copies
    locked in member-id order: one statement on PostgreSQL (``find`` reads a copy after, under the lock)."""
    if session.get_bind().dialect.name != "postgresql":
        for event in sorted(events, key=lambda event: str(event["member_id"])):
            enrolled(session, event, now)
        session.flush()  # written, for ``find`` (a plain read) to see
        return
    session.flush()  # a copy made just now (a referrer of the batch, asked of members) is written before this one
    last = {event["member_id"]: event for event in events}  # a member twice: the later one, as one by one
    rows = [last[key] for key in sorted(last, key=str)]
    if rows:
        session.execute(_ENROLLED_MANY_PG, {
            "members": [str(event["member_id"]) for event in rows], "branches": [event["home_branch"] for event in rows],
            "referrers": [str(event["referrer_id"]) if event["referrer_id"] else None for event in rows],
            "enrolled_at": rows[0]["occurred_at"] or now, "now": now})


def _newer(current: datetime | None, moment: datetime | None) -> bool:
    return moment is None or current is None or moment >= current


def tier_changed(session: Session, event: dict[str, Any], now: datetime) -> None:
    copy = _row(session, event["member_id"], now)
    if _newer(copy.tier_as_of, event["effective_at"]):
        copy.tier, copy.tier_as_of, copy.updated_at = event["to_tier"], event["effective_at"], now


def segment_changed(session: Session, event: dict[str, Any], now: datetime) -> None:
    copy = _row(session, event["member_id"], now)
    moment = event["occurred_at"]
    if _newer(copy.segment_as_of, moment):
        copy.segment, copy.segment_as_of, copy.updated_at = event["to_segment"], moment or now, now


def status_changed(session: Session, event: dict[str, Any], now: datetime) -> None:
    copy = _row(session, event["member_id"], now)
    moment = event["occurred_at"]
    if _newer(copy.status_as_of, moment):
        copy.status, copy.status_as_of, copy.updated_at = event["to_status"], moment or now, now


def require_active(copy: MemberCopy, action: str) -> None:
    """Frozen and closed memberships neither earn nor spend (SPEC: lifecycle)."""
    if copy.status != "active":
        raise Conflict(f"This membership is {copy.status}: it cannot {action}.")
