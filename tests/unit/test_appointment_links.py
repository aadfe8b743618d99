"""Appointment links without a broker: the token scheme (kit.links), what a link's use does (records' rule),
the waitlist's horizon, and the links in the four languages' confirmation and reminder."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from services.kit import links
from services.kit.config import group_from_config
from services.kit.errors import Conflict, Gone, NotFound
from services.notifications.links import appointment_links
from services.notifications.settings import Settings, settings_from_config
from services.notifications.templates import LANGUAGES, Renderer
from services.records.rules import links as rules
from services.records.rules.practice import practice_from_config
from services.records.rules.waitlist import offerable

SECRET = "s" * 32
NOW = datetime(2027, 3, 10, 2, 0, tzinfo=UTC)
START = NOW + timedelta(days=1)


def claims(**changes) -> links.Claims:
    return replace(links.Claims(subject=str(uuid.uuid4()), action="confirm", expires_at=START, nonce="n1c"),
                   **changes)


def test_a_token_names_what_it_was_signed_for_until_it_expires():
    signed = claims()
    assert links.verify(SECRET, links.sign(SECRET, signed), NOW) == signed
    with pytest.raises(Gone, match="expired"):
        links.verify(SECRET, links.sign(SECRET, signed), START)


@pytest.mark.parametrize("spoil", [
    lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # the signature changed
    lambda token: "eyJkIjoiY2FuY2VsIn0" + token[token.index("."):],  # another payload, our signature
    lambda token: token[: token.index(".")],  # cut short
    lambda token: token + "x",
    lambda token: "",
    lambda token: "../../etc/passwd",
])
def test_a_token_changed_in_any_way_names_nothing(spoil):
    token = links.sign(SECRET, claims())
    with pytest.raises(NotFound, match="not valid"):
        links.verify(SECRET, spoil(token), NOW)


def test_a_token_of_another_key_or_with_no_key_names_nothing():
    token = links.sign(SECRET, claims())
    with pytest.raises(NotFound):
        links.verify("t" * 32, token, NOW)
    with pytest.raises(NotFound):
        links.verify("", token, NOW)
    with pytest.raises(ValueError):
        links.secret_of({links.SECRET_SETTING: "short"})
    assert links.secret_of({}) == ""


def test_after_a_rotation_links_signed_with_a_replaced_secret_still_act_until_it_is_removed():
    old, new = "o" * 32, "n" * 32
    before, after = links.sign(old, claims(nonce="old")), links.sign(new, claims(nonce="new"))
    rotated = links.keys_of({links.SECRET_SETTING: new, links.PREVIOUS_SETTING: f" {old} , {'x' * 40}"})
    assert rotated == links.Keys(new, (old, "x" * 40))
    assert links.verify(rotated, before, NOW).nonce == "old"
    assert links.verify(rotated, after, NOW).nonce == "new"
    with pytest.raises(NotFound):  # the old secret removed: its links are void
        links.verify(links.keys_of({links.SECRET_SETTING: new}), before, NOW)
    with pytest.raises(NotFound):  # links off: a replaced secret alone accepts nothing
        links.verify(links.keys_of({links.PREVIOUS_SETTING: old}), before, NOW)
    with pytest.raises(ValueError, match=links.PREVIOUS_SETTING):
        links.keys_of({links.SECRET_SETTING: new, links.PREVIOUS_SETTING: f"{old},short"})


@pytest.mark.parametrize(("action", "status", "confirmed", "outcome"), [
    ("confirm", "booked", False, rules.CONFIRMED),
    ("confirm", "booked", True, rules.ALREADY_DONE),
    ("cancel", "booked", False, rules.CANCELLED),
    ("cancel", "booked", True, rules.CANCELLED),  # a patient may change their mind after confirming
    ("cancel", "cancelled", False, rules.ALREADY_DONE),
])
def test_what_a_link_does_to_the_appointment_as_it_is(action, status, confirmed, outcome):
    assert rules.decide(action, status, confirmed, START, NOW) == outcome


@pytest.mark.parametrize(("action", "status"), [("confirm", "cancelled"), ("confirm", "checked_in"),
                                                ("cancel", "checked_in"), ("cancel", "no_show")])
def test_a_link_cannot_undo_what_happened(action, status):
    with pytest.raises(Conflict, match="call the clinic"):
        rules.decide(action, status, False, START, NOW)


def test_a_link_does_nothing_once_the_appointment_started():
    with pytest.raises(Gone, match="already started"):
        rules.decide("cancel", "booked", False, NOW, NOW)


@pytest.mark.parametrize(("days", "horizon", "offered"), [(0, 14, True), (14, 14, True), (15, 14, False),
                                                          (2, 1, False), (-1, 14, False)])
def test_a_freed_slot_is_offered_only_within_the_horizon(days, horizon, offered):
    today = date(2027, 3, 10)
    assert offerable(today + timedelta(days=days), today, horizon) is offered


def test_a_branch_may_have_its_own_waitlist_horizon():
    practice = practice_from_config({"RECORDS_PRACTICE": {"waitlist_horizon_days_by_branch": {"SH01": 3}}})
    assert practice.waitlist_horizon("SH01") == 3 and practice.waitlist_horizon("SH02") == 14


CONTEXT = {"appointment_id": str(uuid.uuid4()), "branch": "SH01", "starts_at": "2027-03-11T02:00:00Z",
           "ends_at": "2027-03-11T02:30:00Z", "service_category": "cleaning", "doctor_id": "dr-wang"}


def link_settings() -> Settings:
    return settings_from_config({"PUBLIC_BASE_URL": "https://care.example.com/", links.SECRET_SETTING: SECRET})


def test_reminders_get_a_confirm_and_a_cancel_link_each_its_own_expiring_at_the_start():
    delivery = uuid.uuid4()
    made = appointment_links("appointment_reminder", CONTEXT, delivery, link_settings())
    assert set(made) == {"confirm_url", "cancel_url"}
    for action in ("confirm", "cancel"):
        url = made[f"{action}_url"]
        assert url.startswith("https://care.example.com/a/")
        found = links.verify(SECRET, url.rsplit("/", 1)[1], NOW)
        assert (found.subject, found.action, found.expires_at) == (CONTEXT["appointment_id"], action,
                                                                   datetime(2027, 3, 11, 2, 0, tzinfo=UTC))
        assert found.nonce.startswith(delivery.hex)
    assert made["confirm_url"] != made["cancel_url"]
    assert appointment_links("appointment_reminder", CONTEXT, uuid.uuid4(), link_settings()) != made


def test_no_links_without_the_secret_or_the_public_url_or_for_other_journeys():
    assert appointment_links("appointment_reminder", CONTEXT, uuid.uuid4(), Settings()) == {}
    no_url = settings_from_config({links.SECRET_SETTING: SECRET})
    assert appointment_links("appointment_reminder", CONTEXT, uuid.uuid4(), no_url) == {}
    assert appointment_links("birthday", CONTEXT, uuid.uuid4(), link_settings()) == {}
    assert SECRET not in repr(link_settings())


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("journey", ["appointment_confirmation", "appointment_reminder"])
@pytest.mark.parametrize("channel", ["sms", "email"])
def test_the_four_languages_show_both_links(language, journey, channel):
    renderer = Renderer(group_from_config({}))
    made = appointment_links(journey, CONTEXT, uuid.uuid4(), link_settings())
    rendered = renderer.render(journey, channel, language, {**CONTEXT, "rescheduled": False, "hours_before": 24,
                                                            **made})
    for url in made.values():
        assert url in rendered.text and url in rendered.body
    plain = renderer.render(journey, channel, language, {**CONTEXT, "rescheduled": False, "hours_before": 24})
    assert "/a/" not in plain.text and "/a/" not in plain.body


def test_a_service_with_a_too_short_link_secret_does_not_start():
    from nameko.containers import ServiceContainer

    class Linking:
        name = "linking"
        secret = links.LinkSecret()

    container = ServiceContainer(Linking, {links.SECRET_SETTING: "short"})
    with pytest.raises(ValueError, match="at least 32 characters"):
        container.start()
    container.kill()
    started = ServiceContainer(Linking, {links.SECRET_SETTING: SECRET})
    started.start()
    try:
        assert next(iter(started.dependencies)).get_dependency(None) == links.Keys(SECRET)
    finally:
        started.stop()
