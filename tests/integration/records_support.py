"""Helpers shared by the records integration tests: callers, enrolment through members, raw reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from services.kit.caller import Identity
from services.members.service import MembersService
from services.records.service import RecordsService
from tests.harness import store_for
from tests.import_samples import GROUP_ZONE as ZONE
from tests.import_samples import group_today as local_today

CLINICIAN = Identity(kind="staff", subject="doc-1", role="clinician", branches=("SH01",))
FRONT_DESK = Identity(kind="staff", subject="desk-1", role="front_desk", branches=("SH01",))
CUSTOMER_SERVICE = Identity(kind="staff", subject="cs-1", role="customer_service", branches=("SH01",))
MANAGER = Identity(kind="staff", subject="mgr-1", role="branch_manager", branches=("SH01",))
ADMIN = Identity(kind="staff", subject="admin-1", role="group_admin", branches=("*",))
AUDITOR = Identity(kind="staff", subject="aud-1", role="auditor", branches=("*",))
HIS = Identity(kind="system", subject="key:his-sh01", role="integration", branches=("SH01", "SH02", "HZ01"))


def start_records(start_service: Callable[..., Any], backend: str, **overrides: Any) -> tuple[Any, Any]:
    """Members (to enrol through) and records, on fresh databases of ``backend``."""
    members = start_service(MembersService, backend)
    records = start_service(RecordsService, backend, **overrides)
    return records, members


def enrol(proxy: Any, number: int, branch: str = "SH01", **extra: Any) -> str:
    member = proxy.members.enrol({"full_name": f"Patient Number{number}", "phone": f"1380013{number:04d}",
                                  "birth_date": "1985-06-15", "home_branch": branch, **extra})
    return member["id"]


def rows(url: str, sql: str, **params: Any) -> list[Any]:
    """Raw rows, read through the store's transaction: on SQLite it waits its turn at the process's gate
    (a bare connection would sleep in C on the file lock, freezing the service it waits for)."""
    store = store_for(url)
    try:
        with store.transaction() as session:
            return list(session.execute(text(sql), params))
    finally:
        store.dispose()


def events(url: str, event_type: str) -> list[dict[str, Any]]:
    return [json.loads(payload) for (payload,) in rows(
        url, "SELECT payload FROM kit_outbox WHERE event_type = :t ORDER BY id", t=event_type)]


def local_noon(days_ahead: int) -> datetime:
    """Noon (group time) ``days_ahead`` days from today, in UTC."""
    return datetime.combine(local_today() + timedelta(days=days_ahead), datetime.min.time().replace(hour=12),
                            tzinfo=ZONE).astimezone(UTC)


def bill(member_id: str, bill_id: str, branch: str = "SH01", **extra: Any) -> dict[str, Any]:
    """A paid bill: an exam and a filling, 300.00 CNY, paid 200 by card, 50 in points, 50 by coupon."""
    return {"bill_id": bill_id, "member_id": member_id, "branch": branch, "doctor_id": "dr-wang",
            "currency": "CNY",
            "items": [{"category": "exam", "code": "EX01", "amount_minor": 10000},
                      {"category": "treatment", "code": "FIL2", "amount_minor": 20000}],
            "payments": [{"method": "card", "amount_minor": 20000}, {"method": "points", "amount_minor": 5000},
                         {"method": "coupon", "amount_minor": 5000}],
            **extra}
