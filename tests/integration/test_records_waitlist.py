"""The waitlist: a cancelled slot is offered to the first matching waiting patients, the first to accept
gets it — exactly one booking when they all accept at once (PostgreSQL) — and the others are told it is
gone (records, members and notifications on the run's broker)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.kit.errors import Conflict, Invalid
from services.notifications.service import NotificationsService
from tests.harness import wait_for
from tests.integration.overlap import LockWaits
from tests.integration.records_support import FRONT_DESK, enrol, events, local_today, rows, start_records


def setting_up(start_service, rpc, backend, waiting: int = 4):
    records, _members = start_records(start_service, backend)
    notifications = start_service(NotificationsService, backend,
                                  NOTIFICATIONS={"scheduler": False, "quiet_hours": "off"})
    proxy, desk = rpc(), rpc(caller=FRONT_DESK).records
    on = local_today() + timedelta(days=1)
    slots = desk.publish_slots({"branch": "SH01", "doctor_id": "dr-wang", "on": on.isoformat(), "start": "09:00",
                                "end": "10:00", "slot_minutes": 30})["items"]
    cancelling = enrol(proxy, 1)
    appointment = desk.book({"member_id": cancelling, "slot_id": slots[0]["id"], "service_category": "cleaning"})
    window = {"earliest_on": local_today().isoformat(), "latest_on": (on + timedelta(days=6)).isoformat()}
    entries = []
    for number in range(waiting):  # the last one waits for another doctor: never offered this slot
        member_id = enrol(proxy, 10 + number)
        doctor = {"doctor_id": "dr-li"} if number == waiting - 1 else {}
        entries.append(desk.join_waitlist({"member_id": member_id, "branch": "SH01", "service_category": "cleaning",
                                           **window, **doctor}))
    return records, notifications, proxy, desk, appointment, entries


@pytest.mark.timeout(240)
def test_three_waiting_patients_accept_a_cancelled_slot_at_once_and_exactly_one_gets_it(start_service, rpc):
    records, notifications, proxy, desk, appointment, entries = setting_up(start_service, rpc, "postgresql")
    desk.cancel_appointment(appointment["id"], "patient called")
    offered = events(records.database_url, "waitlist_slot_offered")
    assert sorted(o["member_id"] for o in offered) == sorted(e["member_id"] for e in entries[:3])
    assert {o["branch"] for o in offered} == {"SH01"} and {o["starts_at"] for o in offered} == {
        appointment["starts_at"]}

    def journeys(member_id):
        found = proxy.notifications.deliveries(member_id, limit=20)["items"]
        return sorted((d["journey"], d["state"]) for d in found if d["journey"].startswith("waitlist"))

    for o in offered:  # each offer goes out (to the inbox: these members set up no other channel)
        wait_for(lambda o=o: journeys(o["member_id"]), message="offer queued")
    proxy.notifications.dispatch_due()
    assert all(journeys(o["member_id"]) == [("waitlist_offer", "delivered")] for o in offered)

    def outcome(reply):
        try:
            return reply.result()["appointment"]["member_id"]
        except Conflict as refused:
            return f"refused: {refused}"
        except Exception as error:  # a deadlock or any internal error must not happen
            return f"error: {type(error).__name__}: {error}"

    with LockWaits(records.database_url) as waits:
        replies = [desk.accept_waitlist_offer.call_async(o["offer_id"], idempotency_key=f"accept-{o['offer_id']}")
                   for o in offered]
        results = [outcome(reply) for reply in replies]
    assert waits.count("transactionid", "tuple") > 0, "no accept waited for another: they did not overlap"
    winners = [r for r in results if not r.startswith(("refused", "error"))]
    assert len(winners) == 1, results
    assert sorted(r for r in results if r.startswith("refused")) == [
        "refused: Sorry, another waiting patient took this slot first."] * 2, results
    (booked,) = rows(records.database_url, "SELECT member_id FROM appointments WHERE slot_id = :s AND status = "
                     "'booked'", s=appointment["slot_id"])
    assert str(booked[0]) == winners[0]
    closed = events(records.database_url, "waitlist_offer_closed")
    assert sorted(c["member_id"] for c in closed) == sorted(o["member_id"] for o in offered if o["member_id"]
                                                            != winners[0])
    statuses = {str(m): s for m, s in rows(records.database_url, "SELECT member_id, status FROM waitlist_entries")}
    assert sorted(statuses.values()) == ["booked", "waiting", "waiting", "waiting"]

    # the winner's retry is the same booking; a loser's retry is still refused
    winner_offer = next(o for o in offered if o["member_id"] == winners[0])
    again = desk.accept_waitlist_offer(winner_offer["offer_id"], idempotency_key=f"retry-{uuid.uuid4()}")
    assert again["appointment"]["member_id"] == winners[0] and again["offer"]["status"] == "accepted"
    loser = next(o for o in offered if o["member_id"] != winners[0])
    with pytest.raises(Conflict):
        desk.accept_waitlist_offer(loser["offer_id"])

    # notifications: the two who lost are told it is gone, the winner is not
    for o in offered:
        expected = [("waitlist_offer", "delivered")]
        if o["member_id"] != winners[0]:
            expected = [("waitlist_gone", "queued"), *expected]
        wait_for(lambda o=o, expected=expected: journeys(o["member_id"]) == expected,
                 message=f"messages of {o['member_id']}")


def test_the_only_matching_patient_accepts_and_the_list_follows_the_patients(start_service, rpc, backend):
    records, notifications, proxy, desk, appointment, entries = setting_up(start_service, rpc, backend, waiting=2)
    desk.cancel_appointment(appointment["id"], "patient called")
    offered = events(records.database_url, "waitlist_slot_offered")
    assert len(offered) == 1  # one matching patient (the other waits for dr-li)

    def deliveries(member_id):
        return proxy.notifications.deliveries(member_id, limit=20)["items"]

    (offer,) = wait_for(lambda: [d for d in deliveries(offered[0]["member_id"]) if d["journey"] == "waitlist_offer"],
                        message="offer queued")
    assert offer["state"] == "queued"
    accepted = desk.accept_waitlist_offer(offered[0]["offer_id"])
    assert accepted["offer"]["status"] == "accepted" and accepted["appointment"]["service_category"] == "cleaning"
    mine = proxy.records.list_waitlist({"branch": "SH01", "status": "booked"})["items"]
    assert [e["member_id"] for e in mine] == [offered[0]["member_id"]]
    with pytest.raises(Invalid):
        desk.join_waitlist({"member_id": offered[0]["member_id"], "branch": "SH01", "earliest_on": "2020-01-02",
                            "latest_on": "2020-01-01"})
    withdrawn = desk.withdraw_waitlist(entries[1]["id"])
    assert withdrawn["status"] == "withdrawn"
    assert proxy.records.list_waitlist({"branch": "SH01"})["items"] == []
