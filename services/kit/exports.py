"""Incremental exports for the group's data warehouse: rows a page at a time in the order they changed,
and a cursor the next export continues from, safe under concurrent writes.

Why ``(changed_at, id)`` behind a safety lag, not a sequence number alone: an id from a sequence (or a
timestamp) is taken *before* its transaction commits, so two writers can commit out of order — row 11
visible while row 10 is still in flight. An export that read 11 and handed out "after 11" would never
see 10. So a page only takes rows changed at or before a *horizon*, ``now - EXPORT_SAFETY_LAG_SECONDS``
(default 60): a row stamped after the horizon waits for the next export, and a transaction still open at
read time is (by the assumption below) stamped after the horizon, hence after every row read and after
the cursor handed out. The assumption, stated loudly: every write commits within the lag of the time it
stamped on the row (clock skew between replicas included). A transaction slower than that can be missed;
the lag is a config key so a group with long batches raises it. The sort key is ``(changed_at, id)``
rather than the id alone because rows that change (a coupon used, a visit refunded) must come again in a
later export, which an insert-time id cannot say; the id breaks ties between rows stamped alike, so a
row is never skipped nor repeated inside one export, and appears again only when it changed again.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from marshmallow import fields, post_dump, validate
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.clock import isoformat
from services.kit.errors import Forbidden, Invalid
from services.kit.logs import mask
from services.kit.schemas import Schema, StrictInteger, decode_cursor, encode_cursor

LAG_SETTING = "EXPORT_SAFETY_LAG_SECONDS"
DEFAULT_LAG_SECONDS = 60
REVEAL_SETTING = "UNMASKED_EXPORT_ROLES"
BAD_CURSOR = Invalid("The export cursor (since) is not valid: send the X-Export-Cursor of an earlier export of "
                     "the same kind, or none to export everything.", {"since": ["Not a valid export cursor."]})


class ExportQuerySchema(Schema):
    since = fields.String(load_default=None, allow_none=True,
                          metadata={"description": "The cursor the previous export ended with; none: from the start."})
    limit = StrictInteger(load_default=1000, validate=validate.Range(min=1, max=5000))


class ExportCursorSchema(Schema):
    """Beside an export page's items (each dumped by the item's schema, masked per the caller's role): the
    cursor to give the next export, and whether more are waiting now."""

    cursor = fields.String(allow_none=True)
    more = fields.Boolean()


class MaskedExportSchema(Schema):
    """An export row whose ``MASKED`` fields (personal: who did it, free text, bearer codes) are masked as
    ``kit.logs.mask`` does unless ``reveal`` (the caller's role may see them: ``reveals``)."""

    MASKED: tuple[str, ...] = ()

    def __init__(self, *, reveal: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reveal = reveal

    @post_dump
    def _mask(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if not self.reveal:
            for name in self.MASKED:
                if data.get(name) is not None:
                    data[name] = mask(str(data[name]))
        return data


def require_exporter(caller: Identity, roles: tuple[str, ...], what: str) -> None:
    """An export is of the whole group: the caller's role must be one of ``roles`` and its branches all of
    them. A key or person limited to some branches is refused rather than given rows of every branch (a
    warehouse export's rows are not cut by branch)."""
    caller.require_role(*roles, action=f"export {what}")
    if not caller.all_branches:
        raise Forbidden(f"An export holds every branch's {what}: it needs a credential for all branches (*), "
                        f"not one limited to {', '.join(caller.branches) or 'none'}.")


def reveals(caller: Identity, config: dict[str, Any], roles: tuple[str, ...]) -> bool:
    """Whether ``caller`` sees an export's personal fields in full: CareLoop's services always, people and
    keys if their role is in ``roles`` (a group's config may replace them: ``UNMASKED_EXPORT_ROLES``)."""
    return caller.kind == "service" or caller.role in config.get(REVEAL_SETTING, roles)


def horizon(config: dict[str, Any], now: datetime) -> datetime:
    """The latest change an export may take now (``now`` less the safety lag; see the module's docstring)."""
    lag = config.get(LAG_SETTING, DEFAULT_LAG_SECONDS)
    if isinstance(lag, bool) or not isinstance(lag, (int, float)) or lag < 0:
        raise ValueError(f"{LAG_SETTING} must be a number of seconds, 0 or more (got {lag!r}).")
    return now - timedelta(seconds=lag)


def _position(since: str | None, tie_type: type) -> tuple[datetime, Any] | None:
    """The (changed_at, id) a cursor names; ``BAD_CURSOR`` for anything else (another export's cursor too)."""
    try:
        after = decode_cursor(since)
    except Invalid:
        raise BAD_CURSOR from None
    if after is None:
        return None
    try:
        moment = datetime.fromisoformat(after["t"].replace("Z", "+00:00"))
        tie = uuid.UUID(after["u"]) if tie_type is uuid.UUID else after["n"]
        if moment.tzinfo is None or not isinstance(tie, tie_type) or isinstance(tie, bool):
            raise ValueError
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BAD_CURSOR from None
    return moment, tie


def _cursor(moment: datetime, tie: Any) -> str:
    return encode_cursor({"t": isoformat(moment), **({"u": str(tie)} if isinstance(tie, uuid.UUID) else {"n": tie})})


def changed_page(session: Session, query: Select, changed: Any, tie: Any, limit: int, since: str | None,
                 until: datetime) -> tuple[list[Any], str | None, bool]:
    """One export page of ``query``'s rows after ``since`` in ``(changed, tie)`` order, none changed after
    ``until`` (``horizon``): the rows, the cursor to continue from (also on the last page, so the next export
    starts there; ``since`` again when nothing was read) and whether more are waiting. A select of one entity
    gives ORM objects; a select of columns (among them ``changed`` and ``tie``) gives Core rows, which cost
    far less to read a page of (no unit of work, only the columns the export shows decrypted)."""
    tie_type = uuid.UUID if tie.type.python_type is uuid.UUID else int
    position = _position(since, tie_type)
    query = query.where(changed <= until)
    if position is not None:  # ``changed >=`` first: what an index on (changed, tie) can start from (the OR alone
        # is a filter: a page from the middle of 200,000 postings read the 100,000 before it, 200 ms, measured)
        query = query.where(changed >= position[0],
                            or_(changed > position[0], and_(changed == position[0], tie > position[1])))
    result = session.execute(query.order_by(changed, tie).limit(limit + 1))
    (first, *others) = query.column_descriptions
    rows = list(result.scalars() if not others and first["expr"] is first.get("entity") else result)
    more = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        return rows, since, False
    last = rows[-1]
    return rows, _cursor(getattr(last, changed.key), getattr(last, tie.key)), more


def retied(since: str | None, before: type, now: type) -> str | None:
    """``since`` for an export whose rows were tied by ``before`` ids and are now tied by ``now`` ids (it reads
    another table): a cursor of the old kind is taken as the time it names, from its first row on (rows at that
    very time come again; none is missed). Any other cursor as it is (``changed_page`` judges it)."""
    try:
        _position(since, now)
    except Invalid:
        try:
            moment, _tie = _position(since, before)
        except Invalid:
            return since
        return _cursor(moment, uuid.UUID(int=0) if now is uuid.UUID else 0)
    return since
