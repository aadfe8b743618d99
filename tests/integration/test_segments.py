"""Nightly segmentation over real data on SQLite and PostgreSQL: A/B/C by revenue share or visit
frequency, RFM, churn risk, segment_changed only on change, lists by branch a page at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.kit.caller import Identity
from services.kit.clock import utcnow
from services.kit.errors import Forbidden, Invalid
from tests.integration.members_world import start_world, today


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return start_world(start_service, rpc, backend, amqp_uri)


def members_of(world, segment, **kwargs):
    seen, cursor = [], None
    while True:
        page = world.proxy.members.segment_members(segment, limit=2, cursor=cursor, **kwargs)
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return seen


def test_the_night_grades_by_revenue_share_and_frequency_and_announces_changes(world, rpc):
    ten_days_ago = utcnow() - timedelta(days=10)
    spenders = [world.enrol(branch="HZ01" if k == 9 else "SH01") for k in range(1, 11)]
    for k, member in enumerate(spenders, start=1):
        world.visit(member, k * 100_000, completed_at=ten_days_ago)
    frequent, quarterly, lapsed, never = world.enrol(), world.enrol(), world.enrol(), world.enrol()
    for day in range(24):
        world.visit(frequent, 0, completed_at=utcnow() - timedelta(days=12 + day * 14))
    for quarter in range(4):
        world.visit(quarterly, 0, completed_at=utcnow() - timedelta(days=20 + quarter * 90))
    world.visit(lapsed, 0, completed_at=utcnow() - timedelta(days=300))

    night = world.night(today())["jobs"]["segments"]
    assert night["finished"] and night["processed"] == 14
    s = spenders
    assert {m["member_id"] for m in members_of(world, "A")} == {s[8], s[9], frequent}
    assert {m["member_id"] for m in members_of(world, "B")} == {s[5], s[6], s[7], quarterly}
    assert {m["member_id"] for m in members_of(world, "C")} == {*s[:5], lapsed, never}
    assert [m["member_id"] for m in members_of(world, "A", branch="HZ01")] == [s[8]]
    assert [m["member_id"] for m in members_of(world, "C", churn_risk=True)] == [lapsed]
    top = world.proxy.members.member_segment(s[9])["grading"]
    assert top["segment"] == "A" and top["rfm"]["m"] == 5 and top["churn_risk"] is False
    assert world.proxy.members.member_segment(never)["grading"]["rfm"] == {"r": 1, "f": 1, "m": 1}

    announced = {e["member_id"]: (e["from_segment"], e["to_segment"], e["churn_risk"])
                 for e in world.events("segment_changed")}
    assert announced == {s[8]: (None, "A", False), s[9]: (None, "A", False), frequent: (None, "A", False),
                         s[5]: (None, "B", False), s[6]: (None, "B", False), s[7]: (None, "B", False),
                         quarterly: (None, "B", False), lapsed: (None, "C", True)}

    # the next night, one member spent a lot: only changes are written and announced
    world.visit(s[0], 2_000_000, completed_at=utcnow() - timedelta(days=1))
    before = len(world.events("segment_changed"))
    world.night(today() + timedelta(days=1))
    later = world.events("segment_changed")[before:]
    assert (s[0], "C", "A") in {(e["member_id"], e["from_segment"], e["to_segment"]) for e in later}
    assert s[1] not in {e["member_id"] for e in later}
    assert world.night(today() + timedelta(days=1))["jobs"]["segments"]["skipped"] == "done"


def test_frozen_members_leave_the_lists(world):
    member = world.enrol()
    for n in range(4):
        world.visit(member, 0, completed_at=utcnow() - timedelta(days=5 + n))
    world.night(today())
    assert [m["member_id"] for m in members_of(world, "B")] == [member]
    world.proxy.members.freeze_member(member, {"reason": "dispute"})
    assert members_of(world, "B") == []


def test_segment_lists_respect_the_caller_s_branches(world, rpc):
    manager = rpc(caller=Identity(kind="staff", subject="m1", role="branch_manager", branches=("SH01",))).members
    assert manager.segment_members("A", branch="SH01")["items"] == []
    with pytest.raises(Forbidden):
        manager.segment_members("A")
    with pytest.raises(Forbidden):
        manager.segment_members("A", branch="HZ01")
    with pytest.raises(Invalid):
        manager.segment_members("D", branch="SH01")
    with pytest.raises(Invalid):
        manager.segment_members("A", branch="XX99")
