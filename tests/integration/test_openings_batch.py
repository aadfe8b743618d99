"""A batch of opening balances goes by the batch (issue 19) yet answers row by row, on SQLite and PostgreSQL:
a mixed batch posts its good rows and answers each bad one as a row on its own would be answered; the same batch
again answers each row as the first time and posts nothing twice; several lots of a member in one batch expire on
their own dates; a member in debt has the debt paid off first; the ledgers reconcile after each."""

from __future__ import annotations

import uuid

import pytest

from services.kit.caller import Identity
from services.members.events import MemberStatusChanged
from tests.integration.points_world import World, member_key

ADMIN = Identity(kind="staff", subject="admin", role="group_admin", branches=("*",))
UNKNOWN = "00000000-0000-4000-8000-00000000abcd"  # well formed, but members never heard of it


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return World.start(start_service, rpc, backend, amqp_uri)


def frozen(world: World) -> str:
    member = world.member()
    world.known_to_points(member)  # else points would ask members, which never froze it
    world.deliver(MemberStatusChanged, member_id=uuid.UUID(member), from_status="active", to_status="frozen",
                  reason="dispute")
    return member


def in_debt(world: World, rpc) -> str:
    """A member 800 points in debt: a visit's points spent on a reward, then the visit refunded in full."""
    member = world.member()
    visit_id = world.visit(member, 1000_00)
    reward = world.reward(price=800)
    world.proxy.points.redeem(member, {"reward_id": reward["id"], "branch": "SH01"}, idempotency_key=uuid.uuid4().hex)
    world.refund(member, visit_id, 1000_00, full=True)
    assert world.proxy.points.balance(member)["debt"] == 800
    return member


def outcome(answer: dict) -> tuple:
    return answer["key"], answer["status"], answer.get("message")


def test_a_mixed_points_batch_posts_its_good_rows_and_answers_each_bad_one_on_its_own(world, rpc):
    proxy = rpc(caller=ADMIN, timeout=60)
    first, second, debtor, cold = world.member(), world.member(), in_debt(world, rpc), frozen(world)
    rows = [{"key": "import:j1:1", "member_id": first, "points": 100, "expires_on": "2099-12-31", "branch": "SH01"},
            {"key": "import:j1:2", "member_id": cold, "points": 10, "expires_on": "2099-12-31"},
            {"key": "import:j1:3", "member_id": first, "points": 50, "expires_on": "2098-06-30"},
            {"key": "import:j1:4", "member_id": UNKNOWN, "points": 10, "expires_on": "2099-12-31"},
            {"key": "import:j1:5", "member_id": "not-a-member", "points": 10, "expires_on": "2099-12-31"},
            {"key": "import:j1:6", "member_id": second, "points": 10, "expires_on": "2020-01-01"},
            {"key": "import:j1:7", "member_id": second, "points": 70, "expires_on": "2099-01-31"},
            {"key": "import:j1:8", "member_id": second, "points": 10, "expires_on": "2099-12-31", "branch": "ZZ99"},
            {"key": "import:j1:9", "member_id": debtor, "points": 1000, "expires_on": "2099-12-31"},
            {"key": "import:j1:1", "member_id": first, "points": 100, "expires_on": "2099-12-31", "branch": "SH01"}]
    batch = {"ledger": "points", "rows": rows}

    checked = proxy.points.open_balances({**batch, "dry_run": True})["items"]
    posted = proxy.points.open_balances(batch)["items"]

    refused = {"import:j1:2": "This membership is frozen: no opening balance.",
               "import:j1:4": f"No member {UNKNOWN}.", "import:j1:5": "No member not-a-member.",
               "import:j1:6": "These points expired already; leave the row out.",
               "import:j1:8": "Unknown branch 'ZZ99'."}
    assert [outcome(answer) for answer in checked] == [
        (row["key"], "invalid", refused[row["key"]]) if row["key"] in refused else (row["key"], "valid", None)
        for row in rows]
    assert [outcome(answer) for answer in posted] == [
        (row["key"], "invalid", refused[row["key"]]) if row["key"] in refused else (row["key"], "posted", None)
        for row in rows]
    assert [answer.get("member_id") for answer in posted] == [
        None if row["key"] in refused else row["member_id"] for row in rows]
    assert posted[5]["errors"] == {"expires_on": ["In the past."]}
    assert sorted((lot["points"], lot["expires_on"]) for lot in proxy.points.lots(first)["items"]) == [
        (50, "2098-06-30"), (100, "2099-12-31")]
    assert [(lot["points"], lot["expires_on"]) for lot in proxy.points.lots(second)["items"]] == [(70, "2099-01-31")]
    assert (world.balance(first), world.balance(second), world.balance(cold)) == (150, 70, 0)
    debt = world.proxy.points.balance(debtor)
    assert (debt["balance"], debt["debt"], debt["spendable"]) == (200, 0, 200)  # the debt paid off first
    assert [(p["points"], p["balance_after"]) for p in world.postings(first)] == [(100, 100), (50, 150)]
    assert world.scalar("SELECT count(*) FROM points_postings WHERE rule = 'opening'") == 4
    assert world.scalar("SELECT count(*) FROM points_members WHERE member_id = :m",
                        m=member_key(world.url, UNKNOWN)) == 0  # a member members does not know leaves no copy
    assert world.reconciled()["ok"]
    for member in (first, second, debtor):
        assert world.reconciled(member)["ok"]

    again = proxy.points.open_balances(batch)["items"]  # sent again (a resumed job): each row its first answer
    assert again == posted
    checked_again = proxy.points.open_balances({**batch, "dry_run": True})["items"]
    assert [answer["status"] for answer in checked_again] == [
        "invalid" if row["key"] in refused else "present" for row in rows]
    elsewhere = proxy.points.open_balances({"ledger": "points", "rows": [  # the same file, another job
        {**rows[0], "key": "import:j2:1"}, {**rows[6], "key": "import:j2:7"}]})["items"]
    assert [answer["status"] for answer in elsewhere] == ["present", "present"]
    assert world.scalar("SELECT count(*) FROM points_postings WHERE rule = 'opening'") == 4
    assert (world.balance(first), world.balance(second), world.balance(debtor)) == (150, 70, 200)
    assert world.reconciled()["ok"]


def test_a_mixed_wallet_batch_keeps_paid_and_bonus_apart_and_posts_each_row_once(world, rpc):
    proxy = rpc(caller=ADMIN, timeout=60)
    first, second, cold = world.member(), world.member(), frozen(world)
    proxy.points.top_up(second, {"amount": {"amount": 300_00, "currency": "CNY"}, "branch": "SH01"},
                        idempotency_key=uuid.uuid4().hex)
    money = {"currency": "CNY", "branch": "SH01"}
    rows = [{"key": "import:w1:1", "member_id": first, "principal_minor": 100_00, "bonus_minor": 10_00, **money},
            {"key": "import:w1:2", "member_id": UNKNOWN, "principal_minor": 1_00, "bonus_minor": 0, **money},
            {"key": "import:w1:3", "member_id": cold, "principal_minor": 1_00, "bonus_minor": 0, **money},
            {"key": "import:w1:4", "member_id": first, "principal_minor": 50_00, "bonus_minor": 0, **money},
            {"key": "import:w1:5", "member_id": second, "principal_minor": 0, "bonus_minor": 5_00, **money}]
    batch = {"ledger": "wallet", "rows": rows}

    posted = proxy.points.open_balances(batch)["items"]

    assert [outcome(answer) for answer in posted] == [
        ("import:w1:1", "posted", None), ("import:w1:2", "invalid", f"No member {UNKNOWN}."),
        ("import:w1:3", "invalid", "This membership is frozen: no opening balance."),
        ("import:w1:4", "posted", None), ("import:w1:5", "posted", None)]
    assert [tuple(posting) for posting in world.rows(
        "SELECT principal_after, bonus_after FROM wallet_postings WHERE member_id = :m ORDER BY id",
        m=member_key(world.url, first))] == [(100_00, 10_00), (150_00, 10_00)]
    wallet = proxy.points.wallet(second)  # a top-up before: the opening lands beside it
    assert (wallet["principal"]["amount"], wallet["bonus"]["amount"]) == (300_00, 5_00)
    assert world.reconciled()["ok"]
    for member in (first, second):
        assert world.reconciled(member)["ok"]

    assert proxy.points.open_balances(batch)["items"] == posted  # sent again: nothing posted twice
    assert world.scalar("SELECT count(*) FROM wallet_postings WHERE kind = 'opening'") == 3
    wallet = proxy.points.wallet(first)
    assert (wallet["principal"]["amount"], wallet["bonus"]["amount"]) == (150_00, 10_00)
    assert world.reconciled(first)["ok"]
