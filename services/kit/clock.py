"""Time: UTC in storage and on the wire; the group's zone only where a local day matters."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Normalise a datetime read back from a database that drops the zone (SQLite) to aware UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def local_date(moment: datetime, zone: ZoneInfo) -> date:
    """The calendar day in the group's zone at ``moment`` (birthdays, member day, benefit years)."""
    return as_utc(moment).astimezone(zone).date()


def isoformat(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, the one format times take on the wire."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")
