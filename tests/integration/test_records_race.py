"""An appointment cancelled at the desk while the HIS completes its visit's bill, at the same moment
(PostgreSQL).

A completion locks the patient, then the visit, then moves the appointment (checked in); a cancellation
locked the appointment first and then the patient: two such requests for one appointment could each hold
what the other wanted, and PostgreSQL broke the deadlock by failing one of them with an error. Now every
change of an appointment or visit locks the patient first: of each pair exactly one wins and the other is
told plainly why it cannot (409), never an internal error; the appointment and its visit agree.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.kit.errors import Conflict
from tests.integration.overlap import LockWaits
from tests.integration.records_support import FRONT_DESK, HIS, bill, enrol, local_today, rows, start_records

PAIRS = 24


@pytest.mark.timeout(240)
def test_a_cancellation_and_a_completion_of_one_appointment_at_once_one_wins_without_error(start_service, rpc):
    records, _members = start_records(start_service, "postgresql")
    proxy, desk, his = rpc(), rpc(caller=FRONT_DESK).records, rpc(caller=HIS).records
    on = (local_today() + timedelta(days=1)).isoformat()
    slots = []
    for doctor in ("dr-wang", "dr-li"):
        slots += desk.publish_slots({"branch": "SH01", "doctor_id": doctor, "on": on, "start": "08:00",
                                     "end": "14:00", "slot_minutes": 30})["items"]
    appointments = []
    for number in range(PAIRS):
        member_id = enrol(proxy, 700 + number)
        booked = desk.book({"member_id": member_id, "slot_id": slots[number]["id"], "service_category": "exam"})
        appointments.append((member_id, booked))

    def outcome(reply: object, field: str = "status") -> str:
        try:
            return reply.result()[field]  # type: ignore[attr-defined]
        except Conflict:
            return "refused"
        except Exception as error:  # what must not happen: a deadlock or any other internal error
            return f"error: {type(error).__name__}: {error}"

    with LockWaits(records.database_url) as waits:
        replies = []
        for member_id, appointment in appointments:  # both requests of a pair wait in the queue together
            replies.append(desk.cancel_appointment.call_async(appointment["id"], "patient called"))
            replies.append(his.complete_visit.call_async(bill(member_id, f"B-{appointment['id']}",
                                                              visit_id=appointment["visit_id"])))
        results = [outcome(reply) for reply in replies]

    waited = waits.count("transactionid", "tuple")
    print(f"\n{PAIRS} appointments cancelled and completed at once: {waited} requests waited for another's rows")
    assert waited > 0, "no request ever waited for another: they did not run at the same time"
    errors = [r for r in results if r.startswith("error")]
    assert not errors, f"{len(errors)} of {2 * PAIRS} requests failed: {errors[:3]}"
    for number, (_member_id, appointment) in enumerate(appointments):
        cancelled, completed = results[2 * number], results[2 * number + 1]
        assert sorted([cancelled, completed]) in (["cancelled", "refused"], ["completed", "refused"]), (
            cancelled, completed)
        (state,) = rows(records.database_url, "SELECT a.status, v.status FROM appointments a JOIN visits v "
                                              "ON v.id = a.visit_id WHERE a.id = :a", a=appointment["id"])
        assert tuple(state) in (("cancelled", "cancelled"), ("checked_in", "completed")), tuple(state)
