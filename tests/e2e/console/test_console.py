"""The staff console in Debian's Chromium (headless, through Playwright in a child process: see
``browser.py`` for why): issue 21's Must-hold list.

The suite (members, points, records, notifications, gateway on PostgreSQL and RabbitMQ) runs in this
process as in the other end-to-end tests; the browser signs in as staff made through the API.
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from tests.e2e.conftest import STRONG_PASSWORD
from tests.harness import wait_for

SH01 = ("SH01",)
pytestmark = pytest.mark.timeout(300)  # a browser and the suite on a shared 2-core machine: room above 120 s


def enrol(suite, name: str, phone: str) -> dict:
    response = suite.call("POST", "/v1/members", role="front_desk", branches=SH01, json={
        "full_name": name, "phone": phone, "birth_date": "1988-04-09", "home_branch": "SH01",
        "consents": {"sms": True}}, headers={"Idempotency-Key": f"enrol-{phone}"})
    assert response.status_code == 201, response.text
    return response.json()


def signed_in(suite, open_browser, role: str, branches=SH01):
    user = suite.create_staff(role, branches)
    browser = open_browser(suite.base_url)
    browser.sign_in(user["username"], STRONG_PASSWORD)
    return browser, user


def points_of(suite, member_id: str) -> int:
    return suite.call("GET", f"/v1/members/{member_id}/points", role="front_desk", branches=SH01).json()["balance"]


def test_front_desk_finds_by_phone_earns_for_a_bill_and_sees_the_new_balance(suite, open_browser):
    member = enrol(suite, "Lin Hui", "13833334444")
    browser, _user = signed_in(suite, open_browser, "front_desk")
    # enrolling the same phone again: the warning names the member it matches
    assert browser.goto("/console/enrol") == 200
    browser.page("fill", "#enrol-name", "Lin Hui")
    browser.page("fill", "#enrol-phone", "13833334444")
    browser.page("fill", "#enrol-birth", "1988-04-09")
    browser.page("click", "#enrol-submit")
    browser.page("wait_for_selector", "#enrol-problem")
    assert member["card_number"] in browser.text("#enrol-problem")
    assert browser.page("get_attribute", "a.match", "href") == f"/console/members/{member['id']}"
    assert browser.goto("/console/") == 200
    browser.page("type", "#find", "13833334444", delay=20)  # as you type: no Enter needed for the results
    browser.page("wait_for_selector", "#results a.result")
    browser.page("press", "#find", "Enter")  # Enter opens the first result
    browser.page("wait_for_url", f"{suite.base_url}/console/members/{member['id']}")
    assert "Lin Hui" in browser.text("#member-name")
    assert browser.text("#points-balance") == "0"

    browser.page("fill", "#earn-bill", "HIS-CONSOLE-1")
    browser.page("fill", "#earn-amount", "6000")
    browser.page("select_option", "#earn-category", "implant")
    browser.page("click", "#earn-review")
    browser.page("wait_for_selector", "#confirm")
    browser.page("click", "#confirm")
    browser.page("wait_for_selector", "#done")

    def balance_shown() -> bool:
        browser.goto(f"/console/members/{member['id']}")
        return browser.page("get_attribute", "#points-balance", "data-points") == "6010"

    wait_for(balance_shown, timeout=20, message="the bill's points on member 360")  # 1 a yuan + 10 a visit
    assert points_of(suite, member["id"]) == 6010


def test_clinician_opens_the_health_record_and_front_desk_has_no_tab_and_a_403(suite, open_browser):
    member = enrol(suite, "Zhou Min", "13855556666")
    clinician, _ = signed_in(suite, open_browser, "clinician")
    assert clinician.goto(f"/console/members/{member['id']}") == 200
    assert "13855556666" not in clinician.page("content")  # masked for a clinician in the HTML, not only on screen
    clinician.page("click", "#tab-health")
    clinician.page("wait_for_selector", "#health-record")
    assert clinician.page("url") == f"{suite.base_url}/console/members/{member['id']}/health"
    audit = suite.call("GET", "/v1/audit", role="auditor", params={"member_id": member["id"]}).json()
    assert audit["items"], audit  # the opening is in the audit trail

    desk, _ = signed_in(suite, open_browser, "front_desk")
    assert desk.goto(f"/console/members/{member['id']}") == 200
    assert desk.count("#tab-health") == 0
    assert desk.goto(f"/console/members/{member['id']}/health") == 403
    assert desk.goto("/console/kpis") == 403 and desk.goto("/console/follow-ups") == 403  # the API's grants


def test_double_click_redeems_once_and_forms_without_csrf_or_session_change_nothing(suite, open_browser):
    member = enrol(suite, "Gao Yuan", "13811112222")
    reward = suite.call("POST", "/v1/rewards", json={"code": "TOOTHBRUSH", "name": "Electric toothbrush",
                                                     "kind": "product", "points_price": 300, "stock": 10},
                        headers={"Idempotency-Key": "reward-1"})
    assert reward.status_code == 201, reward.text
    given = suite.call("POST", f"/v1/members/{member['id']}/points/earn", json={
        "rule": "adjust", "source_ref": "console-test", "branch": "SH01", "points": 1000, "reason": "test"},
        headers={"Idempotency-Key": "adjust-1"})
    assert given.status_code == 201, given.text
    browser, user = signed_in(suite, open_browser, "front_desk")
    browser.goto(f"/console/members/{member['id']}")
    browser.page("select_option", "#redeem-reward", reward.json()["id"])
    browser.page("click", "#redeem-review")
    browser.page("wait_for_selector", "#confirm")
    browser.page("dblclick", "#confirm")
    browser.page("wait_for_selector", "#done")
    redemptions = suite.call("GET", f"/v1/members/{member['id']}/points/redemptions").json()["items"]
    assert len(redemptions) == 1, redemptions
    assert points_of(suite, member["id"]) == 700

    # forms without the session's CSRF token change nothing
    browser.goto(f"/console/members/{member['id']}")
    csrf = browser.value("#top-up-form input[name=csrf_token]")
    key = browser.value("#top-up-form input[name=idempotency_key]")
    top_up = {"amount": "500", "idempotency_key": key}
    assert browser.post(f"/console/members/{member['id']}/desk/top-up", top_up)["status"] == 403  # no CSRF token
    assert browser.post(f"/console/members/{member['id']}/desk/top-up",
                        {**top_up, "csrf_token": csrf + "x"})["status"] == 403  # a wrong one
    wallet = suite.call("GET", f"/v1/members/{member['id']}/wallet").json()
    assert wallet["balance"]["amount"] == 0

    # the same top-up through the page: review, confirm, the balance shown
    browser.page("fill", "#top-up-amount", "500")
    browser.page("click", "#top-up-review")
    browser.page("click", "#confirm")
    browser.page("wait_for_selector", "#done")
    assert suite.call("GET", f"/v1/members/{member['id']}/wallet").json()["balance"]["amount"] == 50_000
    assert "500.00" in browser.text("#wallet-balance")

    revoked = suite.call("POST", f"/v1/staff/{user['id']}/sessions/revoke")
    assert revoked.status_code == 200, revoked.text
    answer = browser.post(f"/console/members/{member['id']}/desk/top-up",
                          {**top_up, "idempotency_key": "another", "csrf_token": csrf})
    assert answer["status"] == 403  # the session ended: its own valid token changes nothing
    assert suite.call("GET", f"/v1/members/{member['id']}/wallet").json()["balance"]["amount"] == 50_000
    assert browser.goto(f"/console/members/{member['id']}") == 200  # a page: back to the sign-in form
    assert browser.page("url").startswith(f"{suite.base_url}/console/login")


def test_kpi_dashboard_equals_the_kpi_api_follow_ups_are_worked_and_screens_in_every_language(suite, open_browser, screenshots):
    today = date.today().isoformat()
    members = [enrol(suite, f"Patient {i}", f"1390000000{i}") for i in range(3)]
    for i, member in enumerate(members):
        bill = {"bill_id": f"HIS-KPI-{i}-{uuid.uuid4().hex[:6]}", "member_id": member["id"], "branch": "SH01",
                "currency": "CNY", "items": [{"category": "cleaning", "code": "CL-1", "amount_minor": 50_000 * (i + 1)}],
                "payments": [{"method": "card", "amount_minor": 50_000 * (i + 1)}]}
        done = suite.call("POST", "/v1/his/bills", role="integration", json=bill)
        assert done.status_code in (200, 201), done.text
    browser, _ = signed_in(suite, open_browser, "branch_manager")
    api = suite.call("GET", "/v1/kpis", role="branch_manager", branches=SH01,
                     params={"period": "month", "on": today, "branch": "SH01"}).json()
    figures = api["branches"][0]["figures"]
    assert figures["completed_visits"] == 3
    assert browser.goto(f"/console/kpis?period=month&on={today}&branch=SH01") == 200
    shown = browser.page("evaluate", "Object.fromEntries(Array.from(document.querySelectorAll('#kpi-table tr[data-kpi]'))"
                                     ".map(r => [r.dataset.kpi, r.dataset.value]))")
    assert shown and all(shown[name] == ("" if figures[name] is None else str(figures[name])) for name in shown), \
        (shown, figures)

    # each bill made a callback task: customer service works them in the console's queue
    caller, _ = signed_in(suite, open_browser, "customer_service")
    assert caller.goto("/console/follow-ups") == 200
    assert caller.count("#follow-ups tbody tr") == 3
    caller.page("select_option", "#follow-ups tbody tr:first-child select[name=outcome]", "reached")
    caller.page("fill", "#follow-ups tbody tr:first-child input[name=notes]", "Doing well")
    caller.page("click", "#follow-ups tbody tr:first-child button")
    wait_for(lambda: caller.count("#follow-ups tbody tr") == 2, message="the worked task leaves the queue")
    queue = suite.call("GET", "/v1/follow-ups?branch=SH01", role="customer_service", branches=SH01).json()
    assert len(queue["items"]) == 2

    for language in ("en", "zh-Hans", "zh-Hant", "es"):
        browser.goto(f"/console/language?lang={language}&next=/console/kpis")
        assert browser.page("evaluate", "document.documentElement.lang") == language
        browser.page("screenshot", path=str(screenshots / f"kpis-{language}.png"), full_page=True)
        browser.goto(f"/console/members/{members[2]['id']}")
        browser.page("screenshot", path=str(screenshots / f"member-360-{language}.png"), full_page=True)
