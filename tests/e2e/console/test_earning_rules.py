"""The earning rules page in Debian's Chromium: a group admin changes the spend rate with the keyboard and the
next bill earns by it; a bad box is marked; the front desk gets a 403."""

from __future__ import annotations

import pytest

from tests.e2e.console.test_console import enrol, points_of, signed_in
from tests.e2e.console.test_settings import bill, type_into
from tests.harness import wait_for

pytestmark = pytest.mark.timeout(300)
PAGE = "/console/settings/earning"
SPEND = "#box-spend_points_per_unit"


def test_a_group_admin_changes_the_spend_rate_with_the_keyboard_and_the_next_bill_earns_by_it(suite, open_browser,
                                                                                              screenshots):
    member = enrol(suite, "Qian Yu", "13866667777")
    desk, _ = signed_in(suite, open_browser, "front_desk")
    assert desk.goto(PAGE) == 403

    admin, _ = signed_in(suite, open_browser, "group_admin", ("*",))
    assert admin.goto(PAGE) == 200
    assert admin.value(SPEND) == "1" and admin.value("#box-tier_multipliers-gold") == "1.5"
    assert admin.page("evaluate", "document.documentElement.scrollWidth") <= 1366  # readable at 1366x768
    for language in ("en", "zh-Hans", "zh-Hant", "es"):
        admin.goto(f"/console/language?lang={language}&next={PAGE}")
        assert admin.page("evaluate", "document.documentElement.lang") == language
        admin.page("screenshot", path=str(screenshots / f"earning-{language}.png"), full_page=True)
    admin.goto(f"/console/language?lang=en&next={PAGE}")

    type_into(admin, SPEND, "many")  # a bad box: marked, nothing stored
    admin.page("press", SPEND, "Enter")
    admin.page("wait_for_selector", "#err-spend_points_per_unit")
    assert admin.page("get_attribute", SPEND, "aria-invalid") == "true"
    assert admin.value(SPEND) == "many"  # the typed value stays in its box
    assert suite.call("GET", "/v1/programme/earning").json()["version"] == 0

    type_into(admin, SPEND, "4")
    admin.page("press", SPEND, "Enter")  # Enter in a box submits the form
    admin.page("wait_for_selector", "#earning-saved")
    stored = suite.call("GET", "/v1/programme/earning").json()
    assert (stored["version"], stored["stored"], stored["rules"]["spend_points_per_unit"]) == (
        1, ["spend_points_per_unit"], 4)  # only the box that changed: the other rules keep following the file
    assert stored["versions"][0]["created_by"].endswith("(group_admin)")
    assert admin.value(SPEND) == "4"

    # someone else changes the rules meanwhile: saving the form drawn from version 1 is refused, not overwritten
    changed = suite.call("PUT", "/v1/programme/earning", headers={"Idempotency-Key": "api-6"},
                         json={"spend_points_per_unit": 6, "expected_version": 1})
    assert changed.status_code == 200 and changed.json()["version"] == 2, changed.text
    type_into(admin, SPEND, "9")
    admin.page("press", SPEND, "Enter")
    admin.page("wait_for_selector", "#earning-problem")
    assert "changed meanwhile" in admin.text("#earning-problem")
    # a form posted without its CSRF token changes nothing
    assert admin.post(PAGE, {"idempotency_key": "k1", "expected_version": "2", "spend_points_per_unit": "8"})[
        "status"] == 403
    assert suite.call("GET", "/v1/programme/earning").json()["rules"]["spend_points_per_unit"] == 6

    bill(suite, member["id"], 100_00)  # 100 CNY x 6 points + 10 for the visit
    wait_for(lambda: points_of(suite, member["id"]) == 610, message="the next bill earned by the new rate")
