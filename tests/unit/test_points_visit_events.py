"""What a completed visit's postings announce (``ledger.visit_events``): one ``visit_points_earned`` a member, whose
lines say exactly what a ``points_earned`` a posting said (what partners still receive, through interfaces)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime

from services.kit.contracts import load_event
from services.points import ledger
from services.points.events import EVENTS, VisitPointsEarned, earned_lines

MEMBER = uuid.UUID("7a3e5b20-0000-4000-8000-000000000011")
REFERRER = uuid.UUID("7a3e5b20-0000-4000-8000-000000000012")
VISIT = "6f1c2a4e-0000-4000-8000-000000000099"
AT = datetime(2026, 3, 5, 2, 30, tzinfo=UTC)


def _earn(posting_id: int, member_id: uuid.UUID, points: int, rule: str, **changes: object) -> ledger.Posted:
    posted = ledger.Posted(id=posting_id, member_id=member_id, kind="earn", rule=rule, points=points,
                           balance_after=points, dedupe_key=f"visit:{VISIT}:{posting_id}", source="visit",
                           source_ref=VISIT, branch="SH01", operator="system", reason=None, basis_minor=None,
                           reverses_id=None, redemption_id=None, expires_on=date(2028, 12, 31), created_at=AT)
    return replace(posted, **changes)


def _through_the_wire(event_type: str, payload: dict) -> dict:
    body = {**EVENTS.wire(event_type, payload), "event_id": "e1", "occurred_at": "2026-03-05T02:30:01Z"}
    return load_event(EVENTS.events[event_type], body)


def test_a_visits_earns_are_one_event_a_member_and_reversals_follow_one_each():
    reversal = replace(_earn(5, MEMBER, -10, "spend"), kind="reverse", rule=None, reverses_id=1,
                       reason="visit refunded in part")
    postings = [_earn(1, MEMBER, 250, "spend"), _earn(2, MEMBER, 50, "visit"), _earn(3, REFERRER, 100, "referral"),
                _earn(4, MEMBER, 30, "campaign"), reversal]

    events = ledger.visit_events(postings)

    assert [event_type for event_type, _ in events] == ["visit_points_earned", "visit_points_earned",
                                                        "points_reversed"]
    mine, referrers = events[0][1], events[1][1]
    assert (mine["member_id"], referrers["member_id"]) == (MEMBER, REFERRER)
    assert [(p["posting_id"], p["points"], p["rule"]) for p in mine["postings"]] == [
        ("1", 250, "spend"), ("2", 50, "visit"), ("4", 30, "campaign")]
    assert [p["posting_id"] for p in referrers["postings"]] == ["3"]
    assert events[2][1]["reverses_posting_id"] == "1"


def test_lines_that_differ_in_what_the_event_says_once_go_in_events_of_their_own():
    postings = [_earn(1, MEMBER, 250, "spend"), _earn(2, MEMBER, 50, "visit", expires_on=date(2027, 6, 30))]

    events = ledger.visit_events(postings)

    assert [[p["posting_id"] for p in payload["postings"]] for _, payload in events] == [["1"], ["2"]]
    assert [payload["expires_on"] for _, payload in events] == [date(2028, 12, 31), date(2027, 6, 30)]


def test_each_line_says_what_the_postings_points_earned_said():
    postings = [_earn(1, MEMBER, 250, "spend", branch=None), _earn(2, MEMBER, 50, "visit", branch=None)]
    [(event_type, payload)] = ledger.visit_events(postings)

    lines = earned_lines(_through_the_wire(event_type, payload))

    one_by_one = [_through_the_wire(*ledger.event_of(posting)) for posting in postings]
    envelope = ("event_id", "occurred_at")
    assert lines == [{k: v for k, v in event.items() if k not in envelope} for event in one_by_one]
    assert VisitPointsEarned.event_type == event_type
