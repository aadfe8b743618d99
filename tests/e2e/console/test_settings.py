"""The programme settings page in Debian's Chromium: a group admin changes a tier threshold with the
keyboard, sees how many members the change moves before putting it in force, and gets bad boxes marked."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.e2e.console.test_console import enrol, signed_in
from tests.harness import wait_for

pytestmark = pytest.mark.timeout(300)
SPEND = "#box-silver-spend_minor"


def bill(suite, member_id: str, amount_minor: int) -> None:
    done = suite.call("POST", "/v1/his/bills", role="integration", json={
        "bill_id": f"HIS-SET-{uuid.uuid4().hex[:8]}", "member_id": member_id, "branch": "SH01", "currency": "CNY",
        "items": [{"category": "cleaning", "code": "CL-1", "amount_minor": amount_minor}],
        "payments": [{"method": "card", "amount_minor": amount_minor}]})
    assert done.status_code in (200, 201), done.text


def tier_of(suite, member_id: str) -> str:
    return suite.call("GET", f"/v1/members/{member_id}/tier", role="front_desk", branches=("SH01",)).json()["tier"]


def type_into(browser, selector: str, text: str) -> None:
    """Keyboard only: focus the box, select what is there, type over it."""
    browser.page("focus", selector)
    browser.page("press", selector, "Control+a")
    browser.page("type", selector, text)


def test_a_group_admin_previews_then_puts_a_cheaper_silver_in_force_with_the_keyboard(suite, open_browser,
                                                                                     screenshots):
    spender, saver = enrol(suite, "Wu Fang", "13822223333"), enrol(suite, "Zhao Lei", "13822224444")
    bill(suite, spender["id"], 150_000)  # 1,500 CNY: standard today (silver is 5,000)
    bill(suite, saver["id"], 20_000)
    wait_for(lambda: suite.call("GET", f"/v1/members/{spender['id']}/tier", role="front_desk",
                                branches=("SH01",)).json()["activity"]["spend_minor"] == 150_000,
             message="members counted the bill")

    desk, _ = signed_in(suite, open_browser, "front_desk")
    assert desk.count("#nav-settings") == 0
    assert desk.goto("/console/settings") == 403

    admin, _ = signed_in(suite, open_browser, "group_admin", ("*",))
    assert admin.count("#nav-settings") == 1
    assert admin.goto("/console/settings") == 200
    assert admin.value(SPEND) == "5000"
    assert admin.count("#settings-save") == 0  # no putting in force before a preview
    # readable at 1366x768: nothing wider than the screen
    assert admin.page("evaluate", "document.documentElement.scrollWidth") <= 1366

    type_into(admin, SPEND, "1000")
    admin.page("press", SPEND, "Enter")  # Enter in a box previews (the form's first button)
    admin.page("wait_for_selector", "#settings-preview-result")
    headline = admin.text("#preview-headline")
    assert re.search(r"\b1 members up and 0 down", headline), headline
    assert admin.value(SPEND) == "1000"  # the typed value stays in its box
    assert suite.call("GET", "/v1/programme/tiers").json()["version"] == 0  # a preview stores nothing
    assert tier_of(suite, spender["id"]) == "standard"

    for language in ("en", "zh-Hans", "zh-Hant", "es"):
        admin.goto(f"/console/language?lang={language}&next=/console/settings")
        assert admin.page("evaluate", "document.documentElement.lang") == language
        admin.page("screenshot", path=str(screenshots / f"settings-{language}.png"), full_page=True)
    admin.goto("/console/language?lang=en&next=/console/settings")

    type_into(admin, SPEND, "1000")
    admin.page("press", SPEND, "Enter")
    admin.page("wait_for_selector", "#settings-save")
    admin.page("focus", "#settings-save")
    admin.page("press", "#settings-save", "Enter")
    admin.page("wait_for_selector", "#settings-saved")
    stored = suite.call("GET", "/v1/programme/tiers").json()
    assert stored["version"] == 1 and stored["programme"]["tiers"][1]["thresholds"]["spend_minor"] == 100_000
    assert stored["history"][0]["created_by"].endswith("(group_admin)")
    bill(suite, spender["id"], 100)  # the next activity applies the new threshold
    wait_for(lambda: tier_of(suite, spender["id"]) == "silver", message="silver at the next bill")


def test_bad_boxes_are_marked_and_nothing_is_stored(suite, open_browser):
    admin, _ = signed_in(suite, open_browser, "group_admin", ("*",))
    assert admin.goto("/console/settings") == 200
    type_into(admin, SPEND, "lots")
    admin.page("press", SPEND, "Enter")
    admin.page("wait_for_selector", "#err-silver-spend_minor")
    assert admin.text("#err-silver-spend_minor") == "Type a number."
    assert admin.page("get_attribute", SPEND, "aria-invalid") == "true"

    type_into(admin, SPEND, "30000")  # above gold's 20,000: gold would no longer be above silver
    admin.page("press", SPEND, "Enter")
    admin.page("wait_for_selector", "#settings-problem")
    assert admin.count("[aria-invalid=true]") >= 1 and admin.count("#settings-preview-result") == 0

    # a form posted without its CSRF token changes nothing
    form = {"idempotency_key": "k1", "expected_version": "0", "silver.spend_minor": "1000"}
    assert admin.post("/console/settings", form)["status"] == 403
    assert suite.call("GET", "/v1/programme/tiers").json()["version"] == 0
