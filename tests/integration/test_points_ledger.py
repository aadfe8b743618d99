"""The points ledger through its RPC and events, on SQLite and PostgreSQL, with the real broker:
earning once per key, redeeming never more than the balance, refunds that reverse exactly, lots that
are spent and expire in the right order, and reconciliation that proves it all."""

from __future__ import annotations

import uuid

import pytest

from services.kit.errors import Conflict, Invalid, NotFound
from tests.integration.points_world import World, member_key


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return World.start(start_service, rpc, backend, amqp_uri)


def test_a_visit_earns_spend_and_visit_points_once_even_when_its_event_comes_twice(world):
    member = world.member()
    visit_id = world.visit(member, 150_00)
    world.visit(member, 150_00, visit_id=visit_id)  # the same visit announced again (another event id)
    postings = world.postings(member)
    assert [(p["kind"], p["rule"], p["points"]) for p in postings] == [("earn", "spend", 150), ("earn", "visit", 10)]
    assert {p["source_ref"] for p in postings} == {visit_id}
    assert postings[0]["expires_on"] == "2027-12-31"  # the end of the year after the one earned in
    assert world.balance(member) == 160
    earned = world.earned()
    assert [(e["member_id"], e["points"], e["rule"]) for e in earned] == [(member, 150, "spend"), (member, 10, "visit")]
    assert len(world.events("visit_points_earned")) == 1 and world.events("points_earned") == []  # one event a visit
    assert world.reconciled(member)["ok"]


def test_the_same_earn_with_the_same_key_twice_posts_once(world):
    member = world.member()
    award = {"rule": "activity", "source_ref": "talk-2026-11", "branch": "SH01"}
    first = world.proxy.points.earn(member, award, idempotency_key="desk-1-0001")
    again = world.proxy.points.earn(member, award, idempotency_key="desk-1-0001")
    assert again == first and first["points"] == 50
    assert len(world.postings(member)) == 1 and world.balance(member) == 50
    with pytest.raises(Conflict):  # another key, same talk: once per member and activity
        world.proxy.points.earn(member, award, idempotency_key="desk-1-0002")
    assert world.balance(member) == 50


def test_the_same_redemption_with_the_same_key_twice_posts_once(world):
    member = world.member()
    world.give(member, 500)
    reward = world.reward(price=200, stock=5)
    request = {"reward_id": reward["id"], "branch": "SH01"}
    first = world.proxy.points.redeem(member, request, idempotency_key="redeem-0001")
    again = world.proxy.points.redeem(member, request, idempotency_key="redeem-0001")
    assert again == first and first["state"] == "pending" and first["points"] == 200
    assert world.balance(member) == 300
    assert world.proxy.points.get_reward(reward["id"])["stock"] == 4
    assert [p["kind"] for p in world.postings(member)] == ["earn", "redeem"]
    redeemed = world.events("points_redeemed")
    assert [(e["points"], e["kind"], e["reward_id"]) for e in redeemed] == [(200, "reward", reward["id"])]


def test_refund_after_partial_spending_reverses_exactly_what_was_earned_and_leaves_debt(world):
    member = world.member()
    visit_id = world.visit(member, 1000_00)  # 1000 spend + 10 visit
    reward = world.reward(price=800)
    world.proxy.points.redeem(member, {"reward_id": reward["id"], "branch": "SH01"}, idempotency_key="r-1")
    assert world.balance(member) == 210

    world.refund(member, visit_id, 250_00)  # a quarter of what was paid: a quarter of the spend points
    assert world.balance(member) == -40
    world.refund(member, visit_id, 750_00, full=True)  # the rest: everything the visit earned is gone
    postings = world.postings(member)
    reversed_points = [-p["points"] for p in postings if p["kind"] == "reverse"]
    assert reversed_points == [250, 750, 10]
    assert sum(reversed_points) == 1010  # exactly what the visit earned
    summary = world.proxy.points.balance(member)
    assert (summary["balance"], summary["debt"], summary["spendable"]) == (-800, 800, 0)
    assert world.reconciled(member)["ok"]
    events = world.events("points_reversed")
    assert sorted(e["points"] for e in events) == [10, 250, 750]
    assert {e["source_ref"] for e in events} == {visit_id}

    world.give(member, 1000)  # later points pay off the debt first
    assert world.balance(member) == 200
    assert world.proxy.points.balance(member)["debt"] == 0
    assert world.reconciled(member)["ok"]


def test_a_refund_arriving_before_its_visit_is_applied_when_the_visit_earns(world):
    member = world.member()
    early = str(uuid.uuid4())
    world.refund(member, early, 0, full=True)
    world.visit(member, 300_00, visit_id=early)
    assert world.balance(member) == 0
    assert sorted(p["kind"] for p in world.postings(member)) == ["earn", "earn", "reverse", "reverse"]


def lots_by_expiry(world, member):
    """(expiry date, points left) of a member's open lots, in spending order."""
    return [(lot["expires_on"], lot["remaining"]) for lot in world.proxy.points.lots(member)["items"]]


def test_lots_earned_in_two_years_are_spent_first_to_expire_and_expire_by_amount(world):
    member = world.member()
    world.visit(member, 100_00, completed_at="2025-06-01T02:00:00Z", kind="emergency")  # 100 + 10 to 2026-12-31
    world.visit(member, 200_00, completed_at="2026-03-01T02:00:00Z")  # 200 + 10 to 2027-12-31
    assert lots_by_expiry(world, member) == [("2026-12-31", 100), ("2026-12-31", 10), ("2027-12-31", 200),
                                             ("2027-12-31", 10)]

    reward = world.reward(price=150)
    world.proxy.points.redeem(member, {"reward_id": reward["id"], "branch": "SH01"}, idempotency_key="r-lots")
    # 110 from the lots expiring first, the other 40 from the oldest lot of the next year
    assert lots_by_expiry(world, member) == [("2027-12-31", 160), ("2027-12-31", 10)]

    world.proxy.points.run_daily_jobs({"day": "2027-12-02"})  # 29 days ahead: each lot announced once
    world.proxy.points.run_daily_jobs({"day": "2027-12-03"})
    warned = world.events("points_expiring")
    assert sorted((w["points"], w["expires_on"]) for w in warned) == [(10, "2027-12-31"), (160, "2027-12-31")]

    world.proxy.points.run_daily_jobs({"day": "2027-12-31"})  # still spendable on its last day
    assert world.balance(member) == 170
    outcome = world.proxy.points.run_daily_jobs({"day": "2028-01-01"})
    assert outcome["expire_lots"]["processed"] == 2
    assert world.proxy.points.lots(member)["items"] == []
    expired = [p for p in world.postings(member) if p["kind"] == "expire"]
    assert [(p["points"], p["source_ref"]) for p in expired] == [(-170, "2027-12-31")]
    assert [e["points"] for e in world.events("points_expired")] == [170]
    assert world.balance(member) == 0 and world.reconciled(member)["ok"]
    again = world.proxy.points.run_daily_jobs({"day": "2028-01-01"})
    assert again["expire_lots"]["skipped"] == "done"


def test_points_past_their_date_are_never_spent_even_before_the_nightly_job(world):
    member = world.member()
    world.visit(member, 100_00, completed_at="2024-06-01T02:00:00Z")  # expired at the end of 2025
    world.visit(member, 50_00)
    assert world.proxy.points.balance(member)["spendable"] == 60
    reward = world.reward(price=100)
    with pytest.raises(Conflict):
        world.proxy.points.redeem(member, {"reward_id": reward["id"], "branch": "SH01"}, idempotency_key="r-old")
    assert world.proxy.points.get_reward(reward["id"])["stock"] == 100


@pytest.mark.parametrize("concurrency", [50])
def test_fifty_concurrent_redemptions_against_a_balance_for_ten_let_exactly_ten_through(world, concurrency):
    member = world.member()
    world.give(member, 1000)
    reward = world.reward(price=100, stock=1000)
    replies = [world.proxy.points.redeem.call_async(member, {"reward_id": reward["id"], "branch": "SH01"},
                                                    idempotency_key=f"rush-{n}") for n in range(concurrency)]
    outcomes = []
    for reply in replies:
        try:
            outcomes.append(reply.result()["state"])
        except Conflict:
            outcomes.append("conflict")
    assert outcomes.count("pending") == 10 and outcomes.count("conflict") == concurrency - 10
    assert world.balance(member) == 0
    assert world.proxy.points.get_reward(reward["id"])["stock"] == 990
    assert world.scalar("SELECT min(balance_after) FROM points_postings") == 0
    assert world.reconciled(member)["ok"]


def test_stock_is_never_oversold(world):
    members = [world.member() for _ in range(4)]
    for member in members:
        world.give(member, 1000)
    reward = world.reward(price=100, stock=3)
    replies = [world.proxy.points.redeem.call_async(member, {"reward_id": reward["id"], "branch": "SH01"},
                                                    idempotency_key=f"stock-{n}-{member}")
               for n in range(3) for member in members]
    succeeded = 0
    for reply in replies:
        try:
            reply.result()
            succeeded += 1
        except Conflict as error:
            assert "out of stock" in error.message
    assert succeeded == 3
    assert world.proxy.points.get_reward(reward["id"])["stock"] == 0
    assert sum(world.balance(m) for m in members) == 4000 - 300


@pytest.mark.parametrize(("call", "error", "field"), [
    (lambda p, m, r: p.earn(m, {"rule": "adjust", "points": 1.5, "reason": "x", "source_ref": "x", "branch": "SH01"},
                            idempotency_key="k"), Invalid, "points"),
    (lambda p, m, r: p.earn(m, {"rule": "adjust", "points": "100", "reason": "x", "source_ref": "x",
                                "branch": "SH01"}, idempotency_key="k"), Invalid, "points"),
    (lambda p, m, r: p.earn(m, {"rule": "activity", "source_ref": "t", "branch": "SH01", "points": 500},
                            idempotency_key="k"), Invalid, "points"),
    (lambda p, m, r: p.earn(m, {"rule": "activity", "source_ref": "t", "branch": "NOPE"}, idempotency_key="k"),
     Invalid, "branch"),
    (lambda p, m, r: p.earn(m, {"rule": "activity", "source_ref": "t", "branch": "SH01"}), Invalid,
     "idempotency_key"),
    (lambda p, m, r: p.redeem(m, {"reward_id": r, "branch": "SH01", "quantity": -1}, idempotency_key="k"),
     Invalid, "quantity"),
    (lambda p, m, r: p.redeem(m, {"reward_id": str(uuid.uuid4()), "branch": "SH01"}, idempotency_key="k"),
     NotFound, None),
    (lambda p, m, r: p.redeem(m, {"reward_id": "not-an-id", "branch": "SH01"}, idempotency_key="k"), NotFound, None),
    (lambda p, m, r: p.redeem(str(uuid.uuid4()), {"reward_id": r, "branch": "SH01"}, idempotency_key="k"),
     NotFound, None),
    (lambda p, m, r: p.deduct_cash(m, {"bill_id": "B1", "bill": {"amount": 100.5, "currency": "CNY"},
                                       "points": 10, "branch": "SH01"}), Invalid, "bill"),
    (lambda p, m, r: p.deduct_cash(m, {"bill_id": "B1", "bill": {"amount": -100, "currency": "CNY"},
                                       "points": 10, "branch": "SH01"}), Invalid, "bill"),
    (lambda p, m, r: p.deduct_cash(m, {"bill_id": "B1", "bill": {"amount": 10000, "currency": "USD"},
                                       "points": 10, "branch": "SH01"}), Invalid, "bill"),
    (lambda p, m, r: p.deduct_cash(m, {"bill_id": "B1", "bill": {"amount": 10000, "currency": "CNY"},
                                       "points": -10, "branch": "SH01"}), Invalid, "points"),
    (lambda p, m, r: p.deduct_cash(m, {"bill_id": "B1", "bill": {"amount": 10000, "currency": "CNY"},
                                       "points": 5001, "branch": "SH01"}), Conflict, "points"),
])
def test_bad_input_gets_a_clear_error_and_posts_nothing(world, call, error, field):
    member = world.member()
    world.give(member, 10_000)
    reward = world.reward(price=100)
    before = world.scalar("SELECT count(*) FROM points_postings")
    outbox = world.scalar("SELECT count(*) FROM kit_outbox")
    with pytest.raises(error) as raised:
        call(world.proxy.points, member, reward["id"])
    assert raised.value.message
    if field:
        assert field in raised.value.fields
    assert world.scalar("SELECT count(*) FROM points_postings") == before
    assert world.scalar("SELECT count(*) FROM kit_outbox") == outbox
    assert world.proxy.points.get_reward(reward["id"])["stock"] == 100


def test_cash_deduction_takes_at_most_half_a_bill_once_per_bill_and_settles_with_the_visit(world):
    member = world.member()
    world.give(member, 20_000)
    limit = world.proxy.points.cash_deduction_limit(member, {"bill": {"amount": 300_00, "currency": "CNY"}})
    assert (limit["max_points"], limit["max_amount"]) == (15_000, {"amount": 150_00, "currency": "CNY"})
    deduction = {"bill_id": "B-77", "bill": {"amount": 300_00, "currency": "CNY"}, "points": 15_000, "branch": "SH01"}
    first = world.proxy.points.deduct_cash(member, deduction)
    assert first["amount"] == {"amount": 150_00, "currency": "CNY"} and first["state"] == "pending"
    assert world.proxy.points.deduct_cash(member, deduction) == first  # the bill id is the key
    with pytest.raises(Conflict):
        world.proxy.points.deduct_cash(member, {**deduction, "points": 100}, idempotency_key="other")
    assert world.balance(member) == 5_000
    world.visit(member, 150_00, bill_id="B-77", payments=[{"method": "cash", "amount_minor": 150_00},
                                                          {"method": "points", "amount_minor": 150_00}])
    assert world.proxy.points.redemptions(member)["items"][0]["state"] == "fulfilled"
    assert world.balance(member) == 5_000 + 150 + 10  # only the cash part earns


def test_cancelling_a_pending_redemption_puts_points_back_in_their_lots_and_the_reward_in_stock(world):
    member = world.member()
    world.visit(member, 100_00, completed_at="2025-06-01T02:00:00Z")  # 110 to 2026-12-31
    world.visit(member, 100_00)  # 110 to 2027-12-31
    reward = world.reward(price=150, stock=2)
    redemption = world.proxy.points.redeem(member, {"reward_id": reward["id"], "branch": "SH01"},
                                           idempotency_key="to-cancel")
    cancelled = world.proxy.points.cancel_redemption(redemption["id"], {"reason": "changed their mind"},
                                                     idempotency_key="cancel-1")
    assert cancelled["state"] == "cancelled" and cancelled["return_posting_id"]
    assert lots_by_expiry(world, member) == [("2026-12-31", 100), ("2026-12-31", 10), ("2027-12-31", 100),
                                             ("2027-12-31", 10)]
    assert world.proxy.points.get_reward(reward["id"])["stock"] == 2
    assert world.balance(member) == 220 and world.reconciled(member)["ok"]
    fulfilled = world.proxy.points.redeem(member, {"reward_id": reward["id"], "branch": "SH01"},
                                          idempotency_key="to-keep")
    world.proxy.points.fulfil_redemption(fulfilled["id"], idempotency_key="handed-over")
    with pytest.raises(Conflict):
        world.proxy.points.cancel_redemption(fulfilled["id"], {"reason": "too late"}, idempotency_key="cancel-2")


def test_history_pages_by_cursor_newest_first(world):
    member = world.member()
    for n in range(5):
        world.give(member, n + 1)
    first = world.proxy.points.history(member, limit=2)
    second = world.proxy.points.history(member, limit=2, cursor=first["next_cursor"])
    third = world.proxy.points.history(member, limit=2, cursor=second["next_cursor"])
    assert [p["points"] for p in first["items"] + second["items"] + third["items"]] == [5, 4, 3, 2, 1]
    assert third["next_cursor"] is None


def test_unknown_member_is_not_found(world):
    for member_id in (str(uuid.uuid4()), "nobody"):
        with pytest.raises(NotFound):
            world.proxy.points.balance(member_id)


def test_reconciliation_finds_a_balance_changed_behind_the_ledger(world):
    members = [world.member() for _ in range(3)]
    for member in members:
        world.give(member, 100)
    assert world.reconciled()["ok"] and world.reconciled()["checked"] == 3
    world.execute("UPDATE points_accounts SET balance = 1000 WHERE member_id = :m",
                  m=member_key(world.url, members[1]))
    report = world.reconciled()
    assert not report["ok"] and report["mismatch_count"] == 1
    assert report["mismatches"][0] == {"ledger": "points", "member_id": members[1], "balance": 1000,
                                       "sum_of_postings": 100, "sum_of_open_lots": 100}
    outcome = world.proxy.points.run_daily_jobs({})
    assert outcome["reconcile"]["finished"]


def nightly_reconciliation(world: World) -> dict:
    """The nightly reconciliation run to its end (every account, every wallet, every link): its totals."""
    from services.kit.jobs import run_batches
    from services.points.reconciliation import nightly_step
    from tests.harness import store_for

    totals: dict = {}
    store = store_for(world.url)
    try:
        assert run_batches(store, "points_reconciliation", uuid.uuid4().hex, nightly_step(2, totals.update)).finished
    finally:
        store.dispose()
    return totals


@pytest.mark.backends("postgresql")  # pts0014 dropped the ledger's own foreign keys on PostgreSQL only
def test_reconciliation_finds_ledger_rows_that_name_rows_that_are_not_there(world):
    """What the foreign keys dropped by pts0014 guarded is checked at night: a posting or a lot whose member has no
    account, a lot whose posting is not there, a move whose lot or posting is not there."""
    from services.points.reconciliation import check_links
    from tests.harness import store_for

    member = world.member()
    world.give(member, 100)
    world.give(member, 20)
    assert nightly_reconciliation(world)["mismatches"] == 0
    world.execute("INSERT INTO points_postings (member_id, kind, points, balance_after, source, operator, created_at) "
                  "VALUES (:m, 'earn', 5, 5, 'test', 'test', now())", m=str(uuid.uuid4()))
    stray = world.scalar("SELECT max(id) FROM points_postings")
    world.execute("INSERT INTO points_lots (member_id, posting_id, kind, points, remaining, warned, created_at) "
                  "VALUES (:m, :p, 'earn', 1, 0, false, now())", m=member, p=stray + 1000)
    world.execute("INSERT INTO points_lot_moves (lot_id, posting_id, points) VALUES (:l, :p, 1)",
                  l=world.scalar("SELECT max(id) FROM points_lots") + 1000, p=stray)
    totals = nightly_reconciliation(world)
    assert totals["mismatches"] == 3 and totals["checked"] == 1  # the balances themselves still agree
    store = store_for(world.url)
    try:
        with store.transaction() as session:
            found = [(m["table"], m["broken"]) for table in ("points_postings", "points_lots", "points_lot_moves")
                     for m in check_links(session, table, 0, 10_000)[0].mismatches]
    finally:
        store.dispose()
    assert found == [("points_postings", "no account"), ("points_lots", "no posting"), ("points_lot_moves", "no lot")]
    assert world.reconciled(member)["ok"]


def test_expiry_in_small_batches_gives_each_member_one_posting_and_resumes_where_it_stopped(world):
    from datetime import date

    from services.kit.clock import utcnow
    from services.kit.config import group_from_config
    from services.kit.jobs import run_batches
    from services.kit.outbox import write_event
    from services.points.awards import Context
    from services.points.events import EVENTS
    from services.points.expiry import expire_lots_step
    from services.points.rules.programme import DEFAULT_PROGRAMME
    from tests.harness import store_for

    members = [world.member() for _ in range(3)]
    for member in members:
        for _ in range(3):  # 10 spend + 10 visit points a visit: six lots of 10, all past their date
            world.visit(member, 10_00, completed_at="2024-06-01T02:00:00Z")
    group = group_from_config({})
    ctx = Context(DEFAULT_PROGRAMME, group.zone, group.currency, utcnow(), "service:points")
    store = store_for(world.url)
    try:
        step = expire_lots_step(ctx, date(2026, 1, 1),
                                lambda session, kind, payload: write_event(session, kind, EVENTS.wire(kind, payload)),
                                batch=7)
        first = run_batches(store, "points_expiry", "2026-01-01", step, max_batches=1)
        assert (first.finished, first.processed) == (False, 6)  # one whole member; the next is left whole
        rest = run_batches(store, "points_expiry", "2026-01-01", step)
        assert rest.finished and rest.processed == 12
    finally:
        store.dispose()
    for member in members:
        expired = [p["points"] for p in world.postings(member) if p["kind"] == "expire"]
        assert expired == [-60] and world.balance(member) == 0
    assert sorted(e["points"] for e in world.events("points_expired")) == [60, 60, 60]
    assert world.reconciled()["ok"]


def test_the_catalogue_shows_each_tier_what_it_may_redeem_and_refuses_the_rest(world):
    member = world.member()
    world.give(member, 1000)
    everyone = world.reward(price=100)
    gold_only = world.reward(price=100, tiers=["gold", "diamond"])
    world.reward(price=100, active=False)
    assert [r["id"] for r in world.proxy.points.rewards({"tier": "standard"})["items"]] == [everyone["id"]]
    assert {r["id"] for r in world.proxy.points.rewards({"tier": "gold"})["items"]} == {everyone["id"], gold_only["id"]}
    assert len(world.proxy.points.rewards({"include_inactive": True})["items"]) == 3
    with pytest.raises(Conflict) as raised:
        world.proxy.points.redeem(member, {"reward_id": gold_only["id"], "branch": "SH01"}, idempotency_key="t1")
    assert "not available to standard members" in raised.value.message
    assert world.balance(member) == 1000


def test_reconciliation_while_points_are_earned_reports_no_mismatch_that_is_not_there(start_service, rpc, amqp_uri):
    """Balances, postings and lots are read in one snapshot: an earn committing during the check is
    either wholly in it or wholly out (three statements at READ COMMITTED once saw it half)."""
    import time

    import eventlet

    world = World.start(start_service, rpc, "postgresql", amqp_uri)  # SQLite's one lock would hide it
    members = [world.member() for _ in range(8)]
    for member in members:
        world.give(member, 1)
    spans: list[tuple[float, float]] = []
    stop = False

    def earn_until_stopped(member: str) -> None:
        proxy = rpc()
        while not stop:
            started = time.monotonic()
            proxy.points.earn(member, {"rule": "adjust", "points": 3, "reason": "busy desk", "source_ref": "test",
                                       "branch": "SH01"}, idempotency_key=uuid.uuid4().hex)
            spans.append((started, time.monotonic()))

    earners = [eventlet.spawn(earn_until_stopped, member) for member in members]
    reports, checks = [], []
    try:
        while len(reports) < 60:
            started = time.monotonic()
            reports.append(world.reconciled())
            checks.append((started, time.monotonic()))
    finally:
        stop = True
        for earner in earners:
            earner.wait()
    overlapping = sum(1 for a, b in checks if any(s < b and a < e for s, e in spans))
    assert overlapping >= 30, f"only {overlapping} of {len(checks)} checks ran while an earn was under way"
    assert all(report["ok"] for report in reports), [r["mismatches"] for r in reports if not r["ok"]][:3]


def test_an_earn_reads_no_lot_unless_the_member_has_a_debt_to_pay(world, backend):
    """The earn's one statement pays a debt from what it credits; a member without one must cost it no read of the
    lots table (before ``ix_points_lots_debt`` and the one-time filter, each earn scanned every lot of every
    member: 2–5.5 ms at 7,000–20,000 lots in the flow benchmark, growing with the table; issue 17)."""
    if backend != "postgresql":
        pytest.skip("the one-statement earn is PostgreSQL's")
    import json
    from datetime import UTC, date, datetime

    from sqlalchemy import text

    from services.points import ledger
    from tests.harness import store_for

    member = world.member()
    world.give(member, 500)  # the account and a lot exist
    params = {"member": member, "points": 10, "rule": "activity", "dedupe_key": "explain-1", "source": "manual",
              "source_ref": "explain", "branch": "SH01", "operator": "test", "reason": None, "basis_minor": None,
              "expires_on": date(2027, 12, 31), "now": datetime.now(UTC)}
    store = store_for(world.url)
    try:
        with store.engine.connect() as connection:
            plan = connection.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + ledger._EARN_SQL), params).scalar_one()
            connection.rollback()
    finally:
        store.dispose()
    nodes, stack = [], [(plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    reads = [node for node in nodes if node.get("Relation Name") == "points_lots" and "Scan" in node["Node Type"]]
    assert reads and all(node["Actual Loops"] == 0 for node in reads), [
        (node["Node Type"], node["Actual Loops"]) for node in reads]
