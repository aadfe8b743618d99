"""The console's programme pages without a browser: the campaign form to the terms points takes and back,
points' field errors on their boxes, the campaigns list's pages, and every word those pages look up by code
(states, triggers, actions...) in every language."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from gateway.console import campaign_form
from gateway.console.campaigns import DONE, PAGE_SIZE, _page_after
from gateway.console.i18n import MESSAGES, WORDS
from gateway.console.journeys import ACTIONS, OFFERED
from services.kit.config import LANGUAGES
from services.notifications.models import JOURNEY_STATES, RUN_STATES
from services.notifications.rules.composed import EXIT_EVENTS, TRIGGER_EVENTS
from services.points.rules.programme import (
    CAMPAIGN_STATES,
    SATISFACTION,
    VISIT_RULES,
    WALLET_ORDERS,
    parse_campaign,
    plain,
)
from services.records.events import PAYMENT_METHODS

EMPTY = {**{name: "" for name in campaign_form.TEXTS}, **{name: [] for name in campaign_form.LISTS}}


def posted(**values: str | list[str]) -> MultiDict:
    return MultiDict([(name, item) for name, value in values.items()
                      for item in (value if isinstance(value, list) else [value])])


def test_a_typed_form_becomes_the_terms_points_reads_money_in_minor_units_and_empty_boxes_left_out():
    typed = campaign_form.typed_from(posted(code=" clean-x2 ", name="Cleaning month", starts_on="2026-11-01",
                                            ends_on="", multiplier="1.5", bonus_points="", min_spend="1,280.50",
                                            days_of_month="1, 18", weekdays=["6", "7"], categories=["cleaning"]))
    terms, problems = campaign_form.terms_from(typed)
    assert problems == {}
    assert terms == {"code": "clean-x2", "name": "Cleaning month", "starts_on": "2026-11-01", "multiplier": "1.5",
                     "min_spend_minor": 128_050, "days_of_month": [1, 18], "weekdays": [6, 7],
                     "categories": ["cleaning"]}
    campaign = parse_campaign(terms)  # the programme file's own rule reads it
    assert (campaign.multiplier_bp, campaign.min_spend_minor, campaign.weekdays) == (15_000, 128_050, (6, 7))


def test_a_stored_campaign_shows_in_the_form_as_it_was_typed_and_reads_back_the_same():
    campaign = plain(parse_campaign({"code": "member-day", "name": "Member day", "days_of_month": [18],
                                     "multiplier": "2", "bonus_points": 50, "min_spend_minor": 50_000,
                                     "tiers": ["gold"], "kinds": ["first", "return"]}))
    typed = campaign_form.typed_of(campaign)
    assert (typed["multiplier"], typed["min_spend"], typed["days_of_month"], typed["bonus_points"]) == \
        ("2", "500", "18", "50")
    terms, problems = campaign_form.terms_from(typed)
    assert problems == {} and plain(parse_campaign(terms)) == campaign
    assert campaign_form.typed_of({**campaign, "multiplier_bp": 10_000})["multiplier"] == ""  # 1x: the default


@pytest.mark.parametrize(("box", "text", "problem"), [
    ("days_of_month", "1, x", "days_list"), ("bonus_points", "lots", "not_a_number"),
    ("bonus_points", "2.5", "whole_number"), ("bonus_points", "-1", "not_negative"),
    ("min_spend", "10.005", "money_two_decimals"), ("min_spend", "-3", "not_negative"),
])
def test_boxes_that_cannot_be_read_are_named_with_a_message_id_in_every_language(box, text, problem):
    _terms, problems = campaign_form.terms_from({**EMPTY, "code": "c", "name": "n", box: text})
    assert problems == {box: problem}
    assert set(MESSAGES[problem]) == set(LANGUAGES)


def test_points_field_errors_land_on_their_boxes_and_the_rest_is_said_above_the_form():
    on_boxes, rest = campaign_form.field_errors({
        "multiplier": ["must be at least 1 with at most four decimals"], "ends_on": ["is before starts_on"],
        "min_spend_minor": ["must be at least 0"], "campaign": ["a campaign needs a multiplier above 1 or bonus points"]})
    assert on_boxes == {"multiplier": ["must be at least 1 with at most four decimals"],
                        "ends_on": ["is before starts_on"], "min_spend": ["must be at least 0"]}
    assert rest == ["a campaign needs a multiplier above 1 or bonus points"]


def test_the_campaigns_list_pages_by_the_last_code_shown():
    items = [{"code": f"c{i}"} for i in range(PAGE_SIZE + 3)]
    first, cursor = _page_after(items, None)
    assert len(first) == PAGE_SIZE and cursor == f"c{PAGE_SIZE - 1}"
    second, last = _page_after(items, cursor)
    assert [item["code"] for item in second] == [f"c{PAGE_SIZE + i}" for i in range(3)] and last is None
    assert _page_after(items[:3], None) == (items[:3], None)


def test_every_code_the_programme_pages_look_up_has_its_words_in_every_language():
    messages = {f"campaign_done_{done}" for done in DONE} | {
        f"journey_{action}{suffix}" for action in ACTIONS for suffix in ("", "_title", "_explain")} | {
        f"journey_done_{action}" for action in ACTIONS}
    assert messages <= set(MESSAGES), sorted(messages - set(MESSAGES))
    words = ({f"campaign_{state}" for state in CAMPAIGN_STATES} | {f"journey_{state}" for state in JOURNEY_STATES}
             | {f"run_{state}" for state in RUN_STATES} | {f"trigger_{event}" for event in (*TRIGGER_EVENTS, "schedule")}
             | {f"trigger_{event}" for event in EXIT_EVENTS} | {f"pay_{method}" for method in PAYMENT_METHODS}
             | {f"earn_rule_{rule}" for rule in VISIT_RULES} | {f"wallet_{order}" for order in WALLET_ORDERS}
             | {f"weekday_{day}" for day in range(1, 8)} | {f"kind_{kind}" for kind in ("wait", "message", "task")}
             | {"journey_category_service", "journey_category_marketing", "campaign_source_file",
                "campaign_source_api"} | set(SATISFACTION))
    assert words <= set(WORDS), sorted(words - set(WORDS))
    assert set(OFFERED) == set(JOURNEY_STATES) and all(set(offered) <= set(ACTIONS) for offered in OFFERED.values())
