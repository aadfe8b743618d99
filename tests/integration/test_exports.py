"""The warehouse's export cursor under concurrent writes (``kit.exports``), through the points and members
services' RPC on a real database: a posting (or a member's change) stamped first but committed last is in the
next export exactly once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import insert, update

from services.kit.clock import utcnow
from services.kit.errors import Invalid
from services.members.models import Member
from services.members.service import MembersService
from services.points.models import PointsPosting
from tests.harness import store_for, wait_for
from tests.integration.points_world import World

MEMBERS = ({"full_name": "Slow Writer", "phone": "13700099001", "birth_date": "1980-01-02", "home_branch": "SH01"},
           {"full_name": "Quick Writer", "phone": "13700099002", "birth_date": "1981-02-03", "home_branch": "SH01"})

LAG = 3  # seconds: far longer than the few steps between stamping the slow posting and committing it


def adjust(world: World, member: str, points: int, key: str) -> dict[str, Any]:
    return world.proxy.points.earn(member, {"rule": "adjust", "points": points, "reason": "export test",
                                            "source_ref": key, "branch": "SH01"}, idempotency_key=key)


def export(world: World, since: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Every page of the postings export from ``since``: the rows and the cursor to continue from."""
    rows, more = [], True
    while more:
        page = world.proxy.points.export_postings({"since": since, "limit": 2})
        rows += page["items"]
        since, more = page["cursor"], page["more"]
    return rows, since


def exported(world: World, since: str | None, count: int) -> Any:
    """The export from ``since`` once it holds ``count`` rows (else nothing, to wait on)."""
    rows, after = export(world, since)
    return len(rows) >= count and (rows, after)


def open_posting(world: World, member: str) -> tuple[Any, Any]:
    """A posting written in a transaction left open (stamped now, committed when the test says)."""
    store = store_for(world.url)
    session = store.open_session()
    session.execute(insert(PointsPosting).values(
        member_id=member, kind="earn", rule="adjust", points=7, balance_after=107, source="test",
        source_ref="slow", branch="SH01", operator="test:slow writer", created_at=utcnow()))
    session.flush()
    return store, session


def settled_points(world: World, member: str) -> None:
    """The member has a points account (the open posting refers to it)."""
    world.known_to_points(member)
    adjust(world, member, 100, f"opening:{member}")


@pytest.mark.backends("postgresql")  # on SQLite one transaction writes at a time: nothing commits out of order
def test_a_posting_committed_after_a_later_one_is_in_the_next_export_exactly_once(start_service, rpc, backend,
                                                                                   amqp_uri):
    world = World.start(start_service, rpc, backend, amqp_uri, EXPORT_SAFETY_LAG_SECONDS=LAG)
    slow_member, quick_member = world.member(), world.member()
    settled_points(world, slow_member)
    settled_points(world, quick_member)
    _, cursor = wait_for(lambda: exported(world, None, 2), timeout=LAG + 10, message="the openings past the lag")

    store, session = open_posting(world, slow_member)  # stamped first...
    try:
        quick = adjust(world, quick_member, 5, "quick")  # ...this one stamped after it, committed before it
        held_back, cursor_now = export(world, cursor)
        assert held_back == [] and cursor_now == cursor  # the lag holds the committed one back too
        session.commit()
    finally:
        store.close_session(session)
        store.dispose()

    rows, after = wait_for(lambda: exported(world, cursor, 2), timeout=LAG + 10, message="both past the lag")
    assert [(row["member_id"], row["points"]) for row in rows] == [(slow_member, 7), (quick_member, 5)]
    assert rows[1]["id"] == quick["id"]
    assert export(world, after) == ([], after)  # and never again


@pytest.mark.backends("postgresql")  # on SQLite one transaction writes at a time: nothing commits out of order
def test_without_a_lag_a_posting_committed_out_of_order_is_lost_which_is_why_there_is_one(start_service, rpc,
                                                                                       backend, amqp_uri):
    world = World.start(start_service, rpc, backend, amqp_uri, EXPORT_SAFETY_LAG_SECONDS=0)
    slow_member, quick_member = world.member(), world.member()
    settled_points(world, slow_member)
    settled_points(world, quick_member)
    _, cursor = export(world, None)
    store, session = open_posting(world, slow_member)
    try:
        adjust(world, quick_member, 5, "quick")
        rows, cursor = export(world, cursor)
        assert [row["points"] for row in rows] == [5]
        session.commit()
    finally:
        store.close_session(session)
        store.dispose()
    assert export(world, cursor)[0] == []  # the slow posting sorts before the cursor: never exported


@pytest.mark.parametrize("since", ["not a cursor", "eyJ0IjoxfQ", "eyJzIjp7InQiOiIyMDI2LTAxLTAxVDAwOjAwOjAwWiJ9fQ"])
def test_a_cursor_that_is_not_an_export_s_is_refused_with_a_clear_error(start_service, rpc, backend, amqp_uri,
                                                                         since):
    world = World.start(start_service, rpc, backend, amqp_uri)
    with pytest.raises(Invalid, match="export cursor"):
        world.proxy.points.export_postings({"since": since})


def test_an_export_pages_through_and_the_next_one_holds_only_what_was_written_since(start_service, rpc, backend,
                                                                                    amqp_uri):
    world = World.start(start_service, rpc, backend, amqp_uri, EXPORT_SAFETY_LAG_SECONDS=0)
    member = world.member()
    settled_points(world, member)
    for number in range(3):
        adjust(world, member, number + 1, f"page-{number}")
    rows, cursor = export(world, None)  # pages of 2
    assert [row["points"] for row in rows] == [100, 1, 2, 3]
    assert export(world, cursor) == ([], cursor)
    later = adjust(world, member, 9, "later")
    rows, after = export(world, cursor)
    assert [row["id"] for row in rows] == [later["id"]] and after != cursor
    assert export(world, after) == ([], after)


def export_members(proxy: Any, since: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Every page of the members export from ``since``: the rows and the cursor to continue from."""
    rows, more = [], True
    while more:
        page = proxy.members.export_members({"since": since, "limit": 1})
        rows += page["items"]
        since, more = page["cursor"], page["more"]
    return rows, since


def members_exported(proxy: Any, since: str | None, count: int) -> Any:
    rows, after = export_members(proxy, since)
    return len(rows) >= count and (rows, after)


@pytest.mark.backends("postgresql")  # on SQLite one transaction writes at a time: nothing commits out of order
def test_a_member_changed_by_a_transaction_committed_out_of_order_is_exported_once(start_service, rpc, backend):
    container = start_service(MembersService, backend, EXPORT_SAFETY_LAG_SECONDS=LAG)
    proxy = rpc()
    slow, quick = (proxy.members.enrol(person)["id"] for person in MEMBERS)
    _, cursor = wait_for(lambda: members_exported(proxy, None, 2), timeout=LAG + 10, message="the enrolments")

    store = store_for(container.database_url)
    session = store.open_session()
    try:  # the slow member's change is stamped first and committed last
        session.execute(update(Member).where(Member.id == slow).values(preferred_language="zh-Hant", updated_at=utcnow()))
        session.flush()
        proxy.members.update_member(quick, {"preferred_language": "es"}, idempotency_key="quick")
        held_back, cursor_now = export_members(proxy, cursor)
        assert held_back == [] and cursor_now == cursor  # the lag holds the committed one back too
        session.commit()
    finally:
        store.close_session(session)
        store.dispose()

    rows, after = wait_for(lambda: members_exported(proxy, cursor, 2), timeout=LAG + 10, message="both past the lag")
    assert [(row["id"], row["preferred_language"]) for row in rows] == [(slow, "zh-Hant"), (quick, "es")]
    assert export_members(proxy, after) == ([], after)  # and never again


def test_the_members_an_export_page_names_are_read_in_one_call_and_bad_input_is_refused(start_service, rpc,
                                                                                        backend):
    start_service(MembersService, backend)
    proxy = rpc()
    first, second = (proxy.members.enrol(person)["id"] for person in MEMBERS)
    found = proxy.members.export_members_by_id([second, "not an id", "00000000-0000-0000-0000-000000000000", first])
    assert sorted((member["id"], member["phone"]) for member in found["items"]) == sorted(
        [(first, "+8613700099001"), (second, "+8613700099002")])
    for bad in ("not a list", [first] * 5001):
        with pytest.raises(Invalid, match="at most 5000"):
            proxy.members.export_members_by_id(bad)


def export_lots(world: World, since: str | None, limit: int = 1) -> tuple[list[tuple[str, int, int]], str | None]:
    """Every page of the points-lots export from ``since``: (member, points left, points earned) of each lot, and
    the cursor to continue from."""
    rows, more = [], True
    while more:
        page = world.proxy.points.export_points_lots({"since": since, "limit": limit})
        rows += [(item["member_id"], item["points"], item["earned"]) for item in page["items"]]
        since, more = page["cursor"], page["more"]
    return rows, since


def test_a_changed_balance_is_in_the_next_lots_export_and_an_unchanged_one_is_not(start_service, rpc, backend,
                                                                                  amqp_uri):
    """The lots export finds the accounts that changed through their postings (pts0013: no index on the accounts'
    ``updated_at``, so that a balance's update is HOT): a member's lots come again after each change, in full, and
    a member that did not change does not."""
    world = World.start(start_service, rpc, backend, amqp_uri, EXPORT_SAFETY_LAG_SECONDS=0)
    first, second = world.member(), world.member()
    world.give(first, 100)
    world.give(second, 50)
    world.give(first, 30)  # the first member comes once, at its last change (after the second member)
    rows, cursor = export_lots(world, None)  # pages of one member
    assert rows == [(second, 50, 50), (first, 100, 100), (first, 30, 30)]
    assert export_lots(world, cursor) == ([], cursor)
    reward = world.reward(price=120)
    world.proxy.points.redeem(first, {"reward_id": reward["id"], "branch": "SH01"}, idempotency_key="lots-r-1")
    rows, after = export_lots(world, cursor)  # the 100 spent and 20 of the 30: only the first member, as it is now
    assert rows == [(first, 10, 30)] and after != cursor
    assert export_lots(world, after) == ([], after)
    world.give(second, 5)
    rows, last = export_lots(world, after, limit=1000)
    assert sorted(rows) == [(second, 5, 5), (second, 50, 50)] and export_lots(world, last) == ([], last)


def test_a_lots_export_cursor_handed_out_before_it_read_postings_still_continues(start_service, rpc, backend,
                                                                                 amqp_uri):
    """A cursor of the lots export as it was (an account's ``(updated_at, member_id)``) is taken as its time: the
    members changed at that time or after come, none is missed."""
    from services.kit.exports import _cursor

    world = World.start(start_service, rpc, backend, amqp_uri, EXPORT_SAFETY_LAG_SECONDS=0)
    member = world.member()
    world.give(member, 40)
    [posting] = world.postings(member)
    old = _cursor(datetime.fromisoformat(posting["created_at"].replace("Z", "+00:00")), uuid.UUID(member))
    rows, cursor = export_lots(world, old)
    assert rows == [(member, 40, 40)] and export_lots(world, cursor) == ([], cursor)
