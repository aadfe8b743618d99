"""The programme pages in Debian's Chromium (issue 21 item 2, issue 20 item 7): a group admin creates, edits and
ends a campaign from the console (a stale edit is told someone else changed it), pauses and activates a care
journey and sees its dry run; a branch manager sees what the API lets them; front desk gets 403; forms without
their CSRF token change nothing. Screenshots of the new pages in each language."""

from __future__ import annotations

from datetime import date

import pytest

from tests.e2e.console.test_console import signed_in
from tests.e2e.test_journeys_over_http import definition

pytestmark = pytest.mark.timeout(300)
LANGUAGES = ("en", "zh-Hans", "zh-Hant", "es")
ADMIN = ("*",)


def campaign(suite, code: str) -> dict:
    answer = suite.call("GET", f"/v1/campaigns/{code}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def journey(suite, journey_id: str) -> dict:
    return suite.call("GET", f"/v1/journeys/{journey_id}").json()


def compose(suite, key: str, languages=LANGUAGES) -> str:
    made = suite.call("POST", "/v1/journeys", json=definition(languages), headers={"Idempotency-Key": key})
    assert made.status_code == 201, made.text
    return made.json()["id"]


def confirm(browser, link: str) -> None:
    """Follow an action's link to its confirmation page and confirm with the keyboard."""
    browser.page("click", link)
    browser.page("wait_for_selector", "#confirm")
    browser.page("press", "#confirm", "Enter")
    browser.page("wait_for_selector", "#done")


def screens(browser, screenshots, name: str, path: str) -> None:
    for language in LANGUAGES:
        browser.goto(f"/console/language?lang={language}&next={path}")
        assert browser.page("evaluate", "document.documentElement.lang") == language
        assert browser.page("evaluate", "document.documentElement.scrollWidth") <= 1366  # readable at 1366x768
        browser.page("screenshot", path=str(screenshots / f"{name}-{language}.png"), full_page=True)
    browser.goto(f"/console/language?lang=en&next={path}")


def test_a_group_admin_creates_edits_and_ends_a_campaign_and_a_stale_edit_says_someone_else_changed_it(
        suite, open_browser, screenshots):
    admin, _ = signed_in(suite, open_browser, "group_admin", ADMIN)
    assert admin.goto("/console/settings") == 200
    admin.page("click", "#sub-campaigns")  # from the programme settings
    admin.page("wait_for_selector", "#campaign-states")
    admin.page("click", "#campaign-new")
    admin.page("wait_for_selector", "#campaign-form")

    today = date.today().isoformat()
    admin.page("fill", "#f-code", "spring-x2")
    admin.page("fill", "#f-name", "Spring cleaning")
    admin.page("fill", "#f-starts_on", today)
    admin.page("fill", "#f-multiplier", "0.5")  # below 1: points refuses it, naming the field
    admin.page("check", "#f-categories-cleaning")
    admin.page("press", "#f-multiplier", "Enter")
    admin.page("wait_for_selector", "#err-multiplier")
    assert admin.page("get_attribute", "#f-multiplier", "aria-invalid") == "true"
    assert admin.value("#f-name") == "Spring cleaning" and admin.page("is_checked", "#f-categories-cleaning")
    assert suite.call("GET", "/v1/campaigns/spring-x2").status_code == 404  # nothing stored

    admin.page("fill", "#f-multiplier", "2")
    admin.page("dblclick", "#campaign-save")  # a double click creates one campaign, not a "code taken"
    admin.page("wait_for_selector", "#done")
    created = campaign(suite, "spring-x2")
    assert (created["version"], created["multiplier_bp"], created["categories"], created["state"]) == \
        (1, 20_000, ["cleaning"], "active")
    assert admin.text("#campaign-multiplier") == "×2"

    admin.goto("/console/new-campaign")  # the same code again: marked on its box
    admin.page("fill", "#f-code", "spring-x2")
    admin.page("fill", "#f-name", "Another spring")
    admin.page("fill", "#f-bonus_points", "5")
    admin.page("press", "#f-bonus_points", "Enter")
    admin.page("wait_for_selector", "#err-code")
    assert "taken" in admin.text("#err-code") and campaign(suite, "spring-x2")["name"] == "Spring cleaning"

    assert admin.goto("/console/campaigns?state=active") == 200
    assert admin.page("get_attribute", "#campaigns tr[data-code=spring-x2]", "data-state") == "active"
    screens(admin, screenshots, "campaigns", "/console/campaigns")

    # a stale edit: the form was drawn at version 1, someone else stores version 2 meanwhile
    admin.goto("/console/campaigns/spring-x2")
    admin.page("click", "#campaign-edit")
    admin.page("wait_for_url", f"{suite.base_url}/console/campaigns/spring-x2/edit")
    assert admin.value("#f-multiplier") == "2"
    screens(admin, screenshots, "campaign-edit", "/console/campaigns/spring-x2/edit")
    admin.page("fill", "#f-bonus_points", "100")  # the screenshots reloaded the form: still version 1
    other = suite.call("PUT", "/v1/campaigns/spring-x2", headers={"Idempotency-Key": "other-admin"},
                       json={"name": "Spring cleaning", "starts_on": today, "multiplier": "3",
                             "categories": ["cleaning"], "expected_version": 1})
    assert other.status_code == 200, other.text
    admin.page("click", "#campaign-save")
    admin.page("wait_for_selector", "#campaign-problem")
    assert "Someone else changed this campaign" in admin.text("#campaign-problem")
    assert admin.value("#f-bonus_points") == "100"  # what was typed stays
    stored = campaign(suite, "spring-x2")
    assert (stored["version"], stored["multiplier_bp"], stored["bonus_points"]) == (2, 30_000, 0)

    admin.page("click", "#campaign-reload")
    admin.page("wait_for_url", f"{suite.base_url}/console/campaigns/spring-x2/edit")
    assert admin.value("#f-multiplier") == "3"
    admin.page("fill", "#f-bonus_points", "100")
    admin.page("click", "#campaign-save")
    admin.page("wait_for_selector", "#done")
    stored = campaign(suite, "spring-x2")
    assert (stored["version"], stored["bonus_points"]) == (3, 100)
    assert [v["version"] for v in stored["versions"]] == [1, 2, 3]

    confirm(admin, "#campaign-end")
    assert campaign(suite, "spring-x2")["state"] == "ended"
    assert admin.count("#campaign-edit") == 0 and admin.count("#campaign-ended") == 1

    assert admin.goto("/console/settings/earning") == 200  # a group admin changes them (test_earning_rules.py)
    assert admin.count("#earning-save") == 1 and admin.count("#earning-read-only") == 0
    assert admin.goto("/console/settings/points") == 200
    assert admin.count("#points-read-only") == 1 and admin.count("#rule-spend") == 1
    screens(admin, screenshots, "earning-rules", "/console/settings/earning")
    screens(admin, screenshots, "points-in-force", "/console/settings/points")


def test_journeys_are_paused_and_activated_with_their_dry_run_and_a_refused_activation_says_why(
        suite, open_browser, screenshots):
    journey_id = compose(suite, "console-journey-1")
    incomplete = compose(suite, "console-journey-2", ("en",))  # messages in English only: cannot run yet
    manager, _ = signed_in(suite, open_browser, "branch_manager")  # SH01, as the journeys' branches
    assert manager.goto("/console/journeys") == 200
    assert manager.page("get_attribute", f"#journeys tr[data-id='{journey_id}']", "data-state") == "draft"
    manager.page("click", f"#journeys tr[data-id='{journey_id}'] a")
    manager.page("wait_for_selector", "#journey-steps")
    assert manager.count("#journey-steps li") == 3
    assert manager.page("get_attribute", "#dry-run-reach", "data-members") == "0"

    confirm(manager, "#journey-activate")
    assert journey(suite, journey_id)["state"] == "active"
    assert manager.page("get_attribute", "#journey-state", "data-state") == "active"
    confirm(manager, "#journey-pause")
    assert journey(suite, journey_id)["state"] == "paused"
    confirm(manager, "#journey-activate")
    assert journey(suite, journey_id)["state"] == "active"
    screens(manager, screenshots, "journey", f"/console/journeys/{journey_id}")
    screens(manager, screenshots, "journeys", "/console/journeys")

    manager.goto(f"/console/journeys/{incomplete}")
    manager.page("click", "#journey-activate")
    manager.page("click", "#confirm")
    manager.page("wait_for_selector", "#journey-problems")
    assert "steps.1.message.texts.es" in manager.text("#journey-problems")
    assert journey(suite, incomplete)["state"] == "draft"

    # a form without its CSRF token changes nothing
    key = {"idempotency_key": "no-csrf"}
    assert manager.post(f"/console/journeys/{journey_id}/pause", key)["status"] == 403
    assert journey(suite, journey_id)["state"] == "active"

    # a branch manager reads campaigns but may not create or end them (the API's grants)
    assert manager.goto("/console/campaigns") == 200 and manager.count("#campaign-new") == 0
    assert manager.goto("/console/new-campaign") == 403
    assert manager.count("#nav-settings") == 0 and manager.goto("/console/settings") == 403
    assert manager.goto("/console/settings/earning") == 200 and manager.count("#sub-tiers") == 0
    assert manager.count("#earning-read-only") == 1 and manager.count("#earning-save") == 0  # read, not changed

    # another branch's manager: the journey is not theirs (notifications says so)
    elsewhere, _ = signed_in(suite, open_browser, "branch_manager", ("SH02",))
    assert elsewhere.goto(f"/console/journeys/{journey_id}") == 403
    assert elsewhere.goto("/console/journeys") == 200 and elsewhere.count(f"tr[data-id='{journey_id}']") == 0


def test_front_desk_gets_403_and_forms_without_csrf_create_no_campaign(suite, open_browser):
    desk, _ = signed_in(suite, open_browser, "front_desk")
    assert desk.count("#nav-campaigns") == 0 and desk.count("#nav-journeys") == 0
    for path in ("/console/campaigns", "/console/new-campaign", "/console/journeys", "/console/settings/earning",
                 "/console/settings/points"):
        assert desk.goto(path) == 403, path

    admin, _ = signed_in(suite, open_browser, "group_admin", ADMIN)
    form = {"idempotency_key": "no-csrf", "code": "sneaky", "name": "Sneaky", "bonus_points": "10"}
    assert admin.post("/console/campaigns", form)["status"] == 403
    assert suite.call("GET", "/v1/campaigns/sneaky").status_code == 404
