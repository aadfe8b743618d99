"""Who is offered a cancelled slot, and whether an offer can still be taken."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from services.records.rules import waitlist

NOW = datetime(2027, 3, 1, 2, tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    member_id: str
    doctor_id: str | None


def test_the_oldest_entries_for_this_doctor_or_any_are_chosen_once_per_patient():
    entries = [Entry("a", None), Entry("b", "dr-li"), Entry("a", "dr-wang"), Entry("c", "dr-wang"), Entry("d", None),
               Entry("e", None)]
    assert [e.member_id for e in waitlist.choose(entries, "dr-wang", 3)] == ["a", "c", "d"]
    assert waitlist.choose(entries, "dr-wang", 0) == []
    assert [e.member_id for e in waitlist.choose(entries, "dr-li", 10)] == ["a", "b", "d", "e"]


@pytest.mark.parametrize(("status", "expires", "shown", "refused"), [
    ("open", NOW + timedelta(minutes=1), "open", None),
    ("open", NOW, "lapsed", "This offer has lapsed"),
    ("gone", NOW + timedelta(hours=1), "gone", "Sorry, another waiting patient took this slot first."),
    ("accepted", NOW + timedelta(hours=1), "accepted", None),
])
def test_an_offer_can_be_taken_while_open_and_in_time(status, expires, shown, refused):
    assert waitlist.shown_status(status, expires, NOW) == shown
    problem = waitlist.refusal(status, expires, NOW)
    assert (problem is None) if refused is None else problem.startswith(refused)
