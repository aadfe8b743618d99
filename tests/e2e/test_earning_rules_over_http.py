"""The points earning rules through the gateway: a group admin changes the spend rate, the next bill earns by it;
a stale version is a 409, a bad rule a 422 naming its field; branch managers only read."""

from __future__ import annotations

from tests.e2e.console.test_settings import bill
from tests.e2e.test_campaigns_over_http import balance
from tests.e2e.test_points_over_http import DESK, MANAGER, as_, enrol
from tests.harness import wait_for

ADMIN = ("group_admin", ("*",))
PATH = "/v1/programme/earning"


def test_a_spend_rate_changed_over_http_applies_to_the_next_bill(suite):
    read = as_(suite, MANAGER, "GET", PATH)
    assert read.status_code == 200 and (read.json()["version"], read.json()["source"]) == (0, "file"), read.text
    assert as_(suite, MANAGER, "PUT", PATH, key="mgr-r1",
               json={"spend_points_per_unit": 5, "expected_version": 0}).status_code == 403
    assert as_(suite, DESK, "GET", PATH).status_code == 403
    bad = as_(suite, ADMIN, "PUT", PATH, key="adm-r0", json={"tier_multipliers": {"gold": "0.5"},
                                                             "expected_version": 0})
    assert bad.status_code == 422 and "tier_multipliers.gold" in bad.json()["error"]["fields"], bad.text
    assert as_(suite, ADMIN, "PUT", PATH, json={"visit_points": 1, "expected_version": 0}).status_code == 422

    member = enrol(suite)
    bill(suite, member, 100_00)  # the file's rules: 100 for the spend + 10 for the visit
    wait_for(lambda: balance(suite, member) == 110, message="the bill earned by the file's rules")

    changed = as_(suite, ADMIN, "PUT", PATH, key="adm-r1", json={"spend_points_per_unit": 5, "expected_version": 0})
    assert changed.status_code == 200 and changed.json()["version"] == 1, changed.text
    assert changed.json()["rules"]["spend_points_per_unit"] == 5 and changed.json()["stored"] == [
        "spend_points_per_unit"]
    replayed = as_(suite, ADMIN, "PUT", PATH, key="adm-r1", json={"spend_points_per_unit": 5, "expected_version": 0})
    assert replayed.status_code == 200 and replayed.json() == changed.json()
    stale = as_(suite, ADMIN, "PUT", PATH, key="adm-r2", json={"spend_points_per_unit": 7, "expected_version": 0})
    assert stale.status_code == 409, stale.text

    bill(suite, member, 100_00)  # 100 yuan x 5 + 10 for the visit
    wait_for(lambda: balance(suite, member) == 110 + 510, message="the next bill earned by the changed rate")
    assert as_(suite, DESK, "GET", "/v1/points/programme").json()["spend_points_per_unit"] == 5
