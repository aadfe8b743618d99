"""A batch of imported visits finds its patients by the batch (issue 19), on SQLite and PostgreSQL: the patient rows
there are read and locked together, whatever the batch's size, while a member with no row yet, a merged member's
id and a member records may keep nothing for are answered as a bill of their own would be."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, insert, select

from services.kit.errors import NotFound
from services.records.models import MemberAlias, Patient, Visit
from services.records.service import RecordsService
from tests.harness import store_for
from tests.perf.visits_import_profile import bills, service_in


def patients(session: Any, members: list[uuid.UUID]) -> None:
    session.execute(insert(Patient), [
        {"member_id": member, "home_branch": "SH01", "completed_visits": 0, "paid_visits": 0,
         "created_at": datetime.now(UTC), "membership_status": "active"} for member in members])


def test_a_batch_answers_each_member_as_its_own_bill_would(start_service, backend):
    store = store_for(start_service(RecordsService, backend).database_url)
    held, new, merged, survivor, unknown, closed = (uuid.uuid4() for _ in range(6))
    answers = {str(new): {"id": str(new), "status": "active", "home_branch": "SH01"},
               str(closed): {"id": str(closed), "status": "closed", "home_branch": "SH01"}}

    def get_member(member_id: str) -> dict[str, Any]:
        if member_id not in answers:
            raise NotFound(f"No member {member_id}.")
        return answers[member_id]

    try:
        with store.transaction() as session:
            patients(session, [held, survivor])
            session.add(MemberAlias(alias_id=merged, member_id=survivor, merge_id="m-1", created_at=datetime.now(UTC)))
        rows = bills([held, new, merged, unknown, closed], "mixed")
        with store.transaction() as session:
            outcomes = service_in(session, get_member).import_visits({"dry_run": False, "rows": rows})["items"]
        assert [(o["key"], o["status"], o.get("message")) for o in outcomes] == [
            (row["key"], "invalid", {str(unknown): f"No member {unknown}.",
                                     str(closed): "This membership is closed; no new records are kept for it."}[
                row["member_id"]]) if row["member_id"] in (str(unknown), str(closed)) else (row["key"], "imported", None)
            for row in rows]
        with store.transaction() as session:
            stored = {(visit.member_id, visit.kind) for visit in session.scalars(select(Visit))}
            counted = {patient.member_id: patient.completed_visits for patient in session.scalars(select(Patient))}
        assert stored == {(member, kind) for member in (held, new, survivor) for kind in ("first", "return")}
        assert counted == {held: 2, new: 2, survivor: 2}  # the merged member's bills on the survivor's record
    finally:
        store.dispose()


def test_a_batch_of_bills_costs_the_same_statements_whatever_its_members(start_service):
    store = store_for(start_service(RecordsService, "postgresql").database_url)
    members = [uuid.uuid4() for _ in range(16)]
    statements: list[str] = []

    def executed(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    try:
        with store.transaction() as session:
            patients(session, members)
        counts = {}
        event.listen(store.engine, "before_cursor_execute", executed)
        for size, batch in ((4, members[:4]), (12, members[4:])):
            statements.clear()
            with store.transaction() as session:
                outcomes = service_in(session).import_visits({"dry_run": False, "rows": bills(batch, "size")})
            assert {outcome["status"] for outcome in outcomes["items"]} == {"imported"}
            counts[size] = len(statements)
        event.remove(store.engine, "before_cursor_execute", executed)
        assert counts[4] == counts[12], f"more members, more statements: {counts}"
    finally:
        store.dispose()
