"""Campaigns created, changed and ended through points' RPCs: checked by the programme file's own rule, versioned,
audited, merged into what visits earn from the moment the change answered."""

from __future__ import annotations

import uuid

import pytest

from services.kit.caller import Identity
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from tests.integration.overlap import LockWaits
from tests.integration.points_world import World

ADMIN = Identity(kind="staff", subject="u0", role="group_admin", branches=("*",))
MANAGER = Identity(kind="staff", subject="u2", role="branch_manager", branches=("SH01",))
FILE = {"campaigns": [{"code": "member-day", "name": "Member day", "days_of_month": [18], "multiplier": 2}]}


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return World.start(start_service, rpc, backend, amqp_uri, POINTS_PROGRAMME=FILE)


def double(code: str, **terms: object) -> dict:
    return {"code": code, "name": "Double points week", "multiplier": "2", "categories": ["treatment"], **terms}


def key() -> str:
    return uuid.uuid4().hex


def lines(world: World, member: str) -> list[tuple[str, int]]:
    return [(p["rule"], p["points"]) for p in world.postings(member)]


def test_a_created_campaign_multiplies_visits_earned_after_it_and_an_ended_one_no_longer_does(world, rpc):
    admin = rpc(caller=ADMIN).points
    member = world.member()
    world.visit(member, 100_00)  # before: the file's campaigns only (the 20th is no member day)
    assert lines(world, member) == [("spend", 100), ("visit", 10)]

    created = admin.create_campaign(double("x2-nov", starts_on="2026-11-01"), idempotency_key=key())
    assert (created["source"], created["state"], created["version"], created["multiplier_bp"]) == \
        ("api", "active", 1, 20_000)
    assert created["created_by"] == "staff:u0 (group_admin)"
    world.visit(member, 100_00)
    assert lines(world, member)[2:] == [("spend", 100), ("visit", 10), ("campaign", 100)]

    quote = world.proxy.points.quote(member, {
        "branch": "SH01", "kind": "return", "completed_at": "2026-11-20T02:00:00Z",
        "items": [{"category": "treatment", "code": "T1", "amount": {"amount": 50_00, "currency": "CNY"}}],
        "payments": [{"method": "cash", "amount": {"amount": 50_00, "currency": "CNY"}}]})
    assert [(line["rule"], line["points"]) for line in quote["lines"]] == [("spend", 50), ("visit", 10),
                                                                          ("campaign", 50)]

    ending = key()
    ended = admin.end_campaign("x2-nov", idempotency_key=ending)
    assert (ended["state"], ended["ended_by"]) == ("ended", "staff:u0 (group_admin)")
    assert admin.end_campaign("x2-nov", idempotency_key=ending) == ended  # a retry: the same answer
    assert admin.end_campaign("x2-nov", idempotency_key=key())["ended_at"] == ended["ended_at"]  # ends once
    world.visit(member, 100_00)
    assert lines(world, member)[5:] == [("spend", 100), ("visit", 10)]
    with pytest.raises(Conflict):
        admin.update_campaign("x2-nov", double("x2-nov", multiplier=3), idempotency_key=key())


def test_an_edit_is_a_new_version_and_the_old_terms_stay_readable(world, rpc):
    admin = rpc(caller=ADMIN).points
    admin.create_campaign(double("spring", starts_on="2099-03-01", ends_on="2099-03-31"), idempotency_key=key())
    changed = admin.update_campaign("spring", {**double("spring", starts_on="2099-03-01", ends_on="2099-04-15"),
                                               "expected_version": 1}, idempotency_key=key())
    assert (changed["version"], changed["ends_on"], changed["state"]) == (2, "2099-04-15", "scheduled")
    got = rpc(caller=MANAGER).points.get_campaign("spring")
    assert [(v["version"], v["terms"]["ends_on"], v["created_by"]) for v in got["versions"]] == [
        (1, "2099-03-31", "staff:u0 (group_admin)"), (2, "2099-04-15", "staff:u0 (group_admin)")]
    listed = admin.list_campaigns({"state": "scheduled"})["items"]
    assert [c["code"] for c in listed] == ["spring"]
    everything = {c["code"]: (c["source"], c["state"]) for c in admin.list_campaigns()["items"]}
    assert everything == {"member-day": ("file", "active"), "spring": ("api", "scheduled")}


def test_bad_terms_name_the_field_and_store_nothing(world, rpc):
    admin = rpc(caller=ADMIN).points
    cases = [
        (double("bad-1", multiplier="0.5"), "multiplier"),
        (double("bad-2", starts_on="2026-12-10", ends_on="2026-12-01"), "ends_on"),
        (double("bad-3", segments=["Z"]), "segments"),
        (double("bad-4", bonus_points=1.5), "bonus_points"),
        (double("bad-5", colour="red"), "campaign"),
        ({"code": "bad-6", "multiplier": 2}, "name"),
        (double("bad 7"), "code"),
        (double("bad-8", multiplier="Infinity"), "multiplier"),
        (double("bad-9", multiplier=1_000_000_000), "multiplier"),
        (double("bad-10", bonus_points=10**20), "bonus_points"),
        (double("bad-11", name="nul\x00name"), "name"),
    ]
    for terms, field in cases:
        with pytest.raises(Invalid) as raised:
            admin.create_campaign(terms, idempotency_key=key())
        assert field in raised.value.fields, (terms, raised.value.fields)
    with pytest.raises(Conflict):  # the code of a campaign of the programme file
        admin.create_campaign(double("member-day"), idempotency_key=key())
    admin.create_campaign(double("once"), idempotency_key=key())
    with pytest.raises(Conflict):
        admin.create_campaign(double("once"), idempotency_key=key())
    with pytest.raises(Conflict):  # the file's campaigns are read-only here
        admin.end_campaign("member-day", idempotency_key=key())
    with pytest.raises(NotFound):
        admin.end_campaign("nothing", idempotency_key=key())
    with pytest.raises(Forbidden):
        rpc(caller=MANAGER).points.create_campaign(double("mine"), idempotency_key=key())
    with pytest.raises(Invalid):  # a change of terms that a retry could repeat needs a key
        admin.create_campaign(double("keyless"))
    assert world.scalar("SELECT count(*) FROM points_campaigns") == 1
    assert world.scalar("SELECT count(*) FROM points_campaign_versions") == 1


@pytest.mark.backends("postgresql")  # on SQLite one transaction runs at a time: nothing can overlap
def test_two_edits_of_one_version_at_once_one_wins_the_other_is_told_it_changed(world, rpc):
    admin = rpc(caller=ADMIN).points
    codes = [f"race-{n}" for n in range(10)]
    for code in codes:
        admin.create_campaign(double(code), idempotency_key=key())
    with LockWaits(world.url) as waits:  # two edits of version 1 of each campaign, all sent at once
        replies = [(code, admin.update_campaign.call_async(
            code, {**double(code, multiplier=multiplier), "expected_version": 1}, idempotency_key=key()))
            for code in codes for multiplier in (3, 4)]
        outcomes: dict[str, list[str]] = {code: [] for code in codes}
        for code, reply in replies:
            try:
                reply.result()
                outcomes[code].append("won")
            except Conflict:
                outcomes[code].append("conflict")
    assert all(sorted(found) == ["conflict", "won"] for found in outcomes.values()), outcomes
    waited = waits.count("transactionid", "tuple")
    assert waited >= 1, "no edit waited for another's lock: they did not overlap"
    for code in codes:
        got = admin.get_campaign(code)
        assert [v["version"] for v in got["versions"]] == [1, 2] and got["version"] == 2
