"""The visit audit's rules (records/effects.py): only what is certainly wrong is a finding."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.records.rules.effects import Bill, MembersView, PointsView, findings

BILL = Bill("v1", "m1", qualifying_minor=30000, refunded_minor=0, full=False, refunds=0)
EARNED = PointsView(seen=True, noting=True, state="earned", expected_points=300, earned_points=300, earn_postings=1,
                    reversed_points=0, reversal_due=0, refunds_seen=0, refunded_minor_seen=0, full_refund_seen=False)
COUNTED = MembersView(known=True, completed=True, qualifying_minor=30000, refunded_minor=0, fully_refunded=False)
REFUNDED = replace(BILL, refunded_minor=30000, full=True, refunds=1)
POINTS_REFUNDED = replace(EARNED, reversed_points=300, reversal_due=300, refunds_seen=1, refunded_minor_seen=30000,
                          full_refund_seen=True)
MEMBERS_REFUNDED = replace(COUNTED, refunded_minor=30000, fully_refunded=True)


def kinds(bill: Bill, points: PointsView, members: MembersView | None = COUNTED) -> list[str]:
    return [finding.kind for finding in findings(bill, points, members)]


@pytest.mark.parametrize(("bill", "points", "members", "expected"), [
    # all is well
    (BILL, EARNED, COUNTED, []),
    (REFUNDED, POINTS_REFUNDED, MEMBERS_REFUNDED, []),
    # legitimately nothing earned: points says so (non-member copy inactive, zero amount, excluded items)
    (BILL, replace(EARNED, state="nothing_due", expected_points=0, earned_points=0, earn_postings=0), COUNTED, []),
    (BILL, replace(EARNED, state="member_not_active", expected_points=0, earned_points=0, earn_postings=0),
     COUNTED, []),
    # a zero bill points never noted is not certainly wrong
    (replace(BILL, qualifying_minor=0), replace(EARNED, seen=False, state=None, expected_points=None,
                                                earned_points=0, earn_postings=0),
     replace(COUNTED, qualifying_minor=0), []),
    # visit earned before the outcomes were kept: no note, but its earn is there
    (BILL, replace(EARNED, seen=False, state=None, expected_points=None), COUNTED, []),
    # completed before points began noting outcomes (its upgrade), earned nothing: no note is expected
    (BILL, replace(EARNED, seen=False, noting=False, state=None, expected_points=None, earned_points=0,
                   earn_postings=0), COUNTED, []),
    # the points side
    (BILL, replace(EARNED, seen=False, state=None, expected_points=None, earned_points=0, earn_postings=0), COUNTED,
     ["points_not_seen"]),
    (BILL, replace(EARNED, earned_points=0, earn_postings=0), COUNTED, ["not_earned"]),
    (BILL, replace(EARNED, earned_points=600, earn_postings=2), COUNTED, ["earned_twice"]),
    (BILL, replace(EARNED, state="nothing_due", expected_points=0), COUNTED, ["earned_unexpectedly"]),
    (REFUNDED, replace(POINTS_REFUNDED, reversed_points=0), MEMBERS_REFUNDED, ["not_reversed"]),
    (REFUNDED, replace(POINTS_REFUNDED, reversed_points=600), MEMBERS_REFUNDED, ["reversed_twice"]),
    (REFUNDED, replace(EARNED, reversal_due=300), MEMBERS_REFUNDED, ["refund_not_seen", "not_reversed"]),
    (replace(REFUNDED, refunds=2), POINTS_REFUNDED, MEMBERS_REFUNDED, ["refund_not_seen"]),
    # the members side
    (BILL, EARNED, replace(COUNTED, known=False, completed=False, qualifying_minor=0), ["spend_not_counted"]),
    (BILL, EARNED, replace(COUNTED, completed=False), ["spend_not_counted"]),
    (BILL, EARNED, replace(COUNTED, qualifying_minor=20000), ["spend_miscounted"]),
    (REFUNDED, POINTS_REFUNDED, COUNTED, ["spend_not_removed"]),
    (REFUNDED, POINTS_REFUNDED, replace(MEMBERS_REFUNDED, fully_refunded=False), ["spend_not_removed"]),
    (replace(REFUNDED, refunded_minor=10000, full=False), replace(POINTS_REFUNDED, refunded_minor_seen=10000,
                                                                  full_refund_seen=False),
     replace(MEMBERS_REFUNDED, fully_refunded=False), ["spend_removed_twice"]),
])
def test_findings_name_only_what_is_certainly_wrong(bill, points, members, expected):
    assert kinds(bill, points, members) == expected


def test_members_not_asked_judges_points_alone():
    assert kinds(REFUNDED, POINTS_REFUNDED, None) == []
    assert kinds(REFUNDED, replace(POINTS_REFUNDED, reversed_points=100), None) == ["not_reversed"]


def test_a_finding_states_its_figures():
    (finding,) = findings(REFUNDED, replace(POINTS_REFUNDED, reversed_points=100), MEMBERS_REFUNDED)
    assert finding.reason == "refunded but not reversed (expected 300, found 100)"


def test_points_answer_and_members_answer_are_read_from_the_rpc_shape():
    points = PointsView.of({"visit_id": "v1", "seen": True, "noting": True, "state": "earned", "expected_points": 5,
                            "bill_minor": 500, "noted_reversed_points": 0, "earned_points": 5, "earn_postings": 1,
                            "reversed_points": 0, "reversal_due": 0, "refunds_seen": 0, "refunded_minor_seen": 0,
                            "full_refund_seen": False})
    members = MembersView.of({"visit_id": "v1", "known": True, "member_id": "m1", "completed": True,
                              "qualifying_minor": 500, "refunded_minor": 0, "fully_refunded": False, "refunds": 0,
                              "visits_counted": 1, "spend_counted_minor": 500})
    assert findings(replace(BILL, qualifying_minor=500), points, members) == []


def test_an_imported_visit_is_judged_on_its_tier_spend_only():
    unseen = replace(EARNED, seen=False, state=None, expected_points=None, earned_points=0, earn_postings=0)
    imported = replace(BILL, imported=True)
    assert kinds(BILL, unseen) == ["points_not_seen"]
    assert kinds(imported, unseen) == []  # points never hears of history: its balance came as an opening
    assert kinds(imported, unseen, replace(COUNTED, completed=False)) == ["spend_not_counted"]
