"""Keyset pagination: pages that stay right while rows are added, and cost the same on page 1000.

A query is ordered by a sort column and a unique tie-breaker (usually ``(created_at, id)``); the
cursor is the pair of the last row seen, opaque to the caller.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from services.kit.clock import isoformat
from services.kit.errors import Invalid
from services.kit.schemas import decode_cursor, encode_cursor


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": isoformat(value)}
    if isinstance(value, date):  # a local day (due dates); datetime is caught above
        return {"d": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    return value


def _unwire(value: Any) -> Any:
    if isinstance(value, dict) and "t" in value:
        return datetime.fromisoformat(value["t"].replace("Z", "+00:00"))
    if isinstance(value, dict) and "d" in value:
        return date.fromisoformat(value["d"])
    if isinstance(value, dict) and "u" in value:
        return uuid.UUID(value["u"])
    return value


def keyset_page(session: Session, query: Select, sort: Any, tie: Any, limit: int, cursor: str | None,
                descending: bool = False) -> tuple[list[Any], str | None]:
    """One page of ``query`` (whose rows are ORM objects) ordered by ``sort`` then ``tie``."""
    after = decode_cursor(cursor)
    if after is not None:
        try:
            last_sort, last_tie = _unwire(after["s"]), _unwire(after["k"])
        except (KeyError, TypeError, ValueError):
            raise Invalid("The page cursor is not valid; start again from the first page.",
                          {"cursor": ["Not a valid cursor."]}) from None
        if descending:
            query = query.where(or_(sort < last_sort, and_(sort == last_sort, tie < last_tie)))
        else:
            query = query.where(or_(sort > last_sort, and_(sort == last_sort, tie > last_tie)))
    order = (sort.desc(), tie.desc()) if descending else (sort, tie)
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, cursor_after(rows[-1], sort, tie)


def cursor_after(row: Any, sort: Any, tie: Any) -> str:
    """The cursor that continues after ``row`` (an incremental export hands it out even on its last page)."""
    return encode_cursor({"s": _wire(getattr(row, sort.key)), "k": _wire(getattr(row, tie.key))})
