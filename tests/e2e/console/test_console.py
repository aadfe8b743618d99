"""The staff console in Debian's Chromium (headless, through Playwright in a child process: see
``browser.py`` for why): issue 21's Must-hold list.

The suite (members, points, records, notifications, gateway on PostgreSQL and RabbitMQ) runs in this
process as in the other end-to-end tests; the browser signs in as staff made through the API.
"""

from __future__ import annotations

from tests.e2e.conftest import STRONG_PASSWORD
from tests.harness import wait_for

SH01 = ("SH01",)


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
