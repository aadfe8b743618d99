"""The member page (``/m/``) in Debian's Chromium on a phone-sized screen: a member signs in with the code the
local SMS provider imitation received, sees their tier, points and what expires when, and coupons, changes
language and contact preferences; another member's ids, a form without its CSRF token and a phone that is no
member's change nothing and tell nothing (issue 21, item 3)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.console.i18n import Translator
from tests.e2e.console.test_console import SH01, enrol
from tests.harness import wait_for
from tests.integration.notifications import conftest as notification_fixtures

providers = notification_fixtures.providers  # the provider imitations' process (session fixture)
pytestmark = pytest.mark.timeout(300)
PHONE = {"width": 390, "height": 844}  # a phone's viewport


@pytest.fixture
def suite(start_suite, providers):
    providers.reset()
    return start_suite(notifications_config={"NOTIFICATIONS": {"channels": providers.channels("sms")}})


def code_sent_to(providers, phone: str) -> str:
    def sent() -> list[dict]:
        return [r["body"] for r in providers.accepted("sms") if r["body"]["To"] == phone]

    wait_for(lambda: sent(), timeout=20, message=f"a sign-in code SMS to {phone}")
    (message,) = sent()
    return re.search(r"\b(\d{6})\b", message["Body"]).group(1)


def member_view(suite, member_id: str) -> dict:
    return suite.call("GET", f"/v1/members/{member_id}", role="group_admin").json()


def sign_in(browser, providers, suite, phone_typed: str, phone: str) -> None:
    assert browser.goto("/m/") == 200  # the sign-in page, after the redirect
    assert browser.page("url").endswith("/m/sign-in")
    browser.page("fill", "#phone", phone_typed)
    browser.page("click", "#send-code")
    browser.page("wait_for_selector", "#code")
    browser.page("fill", "#code", code_sent_to(providers, phone))
    browser.page("click", "#check-code")
    browser.page("wait_for_url", suite.base_url + "/m/")


def test_a_member_signs_in_with_the_sms_code_sees_balances_and_changes_language(suite, open_browser, providers,
                                                                                  screenshots):
    member = enrol(suite, "Gao Yan", "13877778888")  # consents to SMS: yes ...
    suite.call("PATCH", f"/v1/members/{member['id']}", role="group_admin", json={"consents": {"sms": False}},
               headers={"Idempotency-Key": "no-sms"})  # ... then no: a code she asks for comes all the same
    given = suite.call("POST", f"/v1/members/{member['id']}/points/earn", role="branch_manager", branches=SH01,
                       headers={"Idempotency-Key": "give"}, json={"rule": "adjust", "points": 1200, "reason": "test",
                                                                   "source_ref": "t", "branch": "SH01"})
    assert given.status_code == 201, given.text
    coupon = suite.call("POST", f"/v1/members/{member['id']}/coupons", role="customer_service",
                        headers={"Idempotency-Key": "c1"}, json={"source": "manual", "title": "Cleaning 50 off",
                                                                 "value": {"amount": 5000, "currency": "CNY"}})
    assert coupon.status_code == 201, coupon.text
    other = enrol(suite, "Other Person", "13866660000")
    tomorrow = (datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=1)).isoformat()
    slots = suite.call("POST", "/v1/appointments/slots", role="front_desk", branches=SH01,
                       json={"branch": "SH01", "doctor_id": "dr-wang", "on": tomorrow, "start": "15:00",
                             "end": "16:00", "slot_minutes": 30}).json()["items"]
    booked = suite.call("POST", "/v1/appointments", role="front_desk", branches=SH01,
                        json={"member_id": member["id"], "slot_id": slots[0]["id"]}, headers={"Idempotency-Key": "b"})
    assert booked.status_code == 201, booked.text

    browser = open_browser(suite.base_url)
    browser.page("set_viewport_size", PHONE)
    sign_in(browser, providers, suite, "138 7777 8888", "+8613877778888")
    assert browser.text("#member-name") == "Gao Yan"
    assert browser.page("get_attribute", "#points-balance", "data-points") == "1200"
    lots = suite.call("GET", f"/v1/members/{member['id']}/points/lots", role="front_desk", branches=SH01).json()
    expires = next(lot["expires_on"] for lot in lots["items"] if lot["remaining"] > 0)
    assert Translator("en").date(expires) in browser.text("#lots")
    assert coupon.json()["code"] in browser.text("#coupons")
    shanghai = Translator("en", "CNY", ZoneInfo("Asia/Shanghai"))  # the group's zone: the slot was 15:00 there
    assert shanghai.moment(booked.json()["starts_at"]).endswith("15:00")
    assert shanghai.moment(booked.json()["starts_at"]) in browser.text("#appointments")
    assert browser.count("#progress-spend") == 1  # progress to the next tier, per path
    assert not browser.page("evaluate", "document.documentElement.scrollWidth > window.innerWidth")  # fits the phone
    cookie = next(c for c in browser.send(op="cookies") if c["name"] == "careloop_member")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/m")
    browser.page("screenshot", path=str(screenshots / "member-page-en.png"), full_page=True)

    # another member's ids are not the page's to take: the page stays hers, the other member is untouched
    assert browser.goto(f"/m/?member_id={other['id']}") == 200
    assert browser.text("#member-name") == "Gao Yan"
    csrf = browser.value("#preferences input[name=csrf_token]")
    key = browser.value("#preferences input[name=idempotency_key]")
    posted = browser.post("/m/preferences", {"csrf_token": csrf, "idempotency_key": key, "member_id": other["id"],
                                             "marketing": "yes"})
    assert posted["status"] == 303
    assert member_view(suite, other["id"])["consents"]["marketing"] is False
    assert member_view(suite, member["id"])["consents"]["marketing"] is True
    # a form without its CSRF token changes nothing
    assert browser.post("/m/preferences", {"idempotency_key": "k2", "sms": "yes"})["status"] == 403
    assert member_view(suite, member["id"])["consents"]["sms"] is False

    # preferences through the form, then the language: the page and her messages follow it
    assert browser.goto("/m/") == 200
    browser.page("check", "#pref-sms")
    browser.page("check", "#pref-dnc")
    browser.page("click", "#save-preferences")
    browser.page("wait_for_selector", "#saved")
    assert member_view(suite, member["id"])["consents"]["sms"] is True
    prefs = suite.call("GET", f"/v1/members/{member['id']}/notification-preferences", role="group_admin").json()
    assert prefs["do_not_contact"] is True
    browser.page("click", "#lang-zh-Hans")
    browser.page("wait_for_selector", "html[lang=zh-Hans]")
    assert "积分" in browser.text("#points h2")
    assert Translator("zh-Hans").date(expires) in browser.text("#lots")
    assert member_view(suite, member["id"])["preferred_language"] == "zh-Hans"
    browser.page("screenshot", path=str(screenshots / "member-page-zh-Hans.png"), full_page=True)

    # sign-out ends the session: the page asks for a sign-in again
    browser.page("click", "#sign-out")
    browser.page("wait_for_url", suite.base_url + "/m/sign-in")
    assert browser.goto("/m/") == 200 and browser.page("url").endswith("/m/sign-in")


def test_a_closed_membership_ends_the_member_s_session(suite, open_browser, providers):
    member = enrol(suite, "Ma Li", "13877779999")
    browser = open_browser(suite.base_url)
    browser.page("set_viewport_size", PHONE)
    sign_in(browser, providers, suite, "13877779999", "+8613877779999")
    closed = suite.call("POST", f"/v1/members/{member['id']}/close", json={"reason": "erasure_request"},
                        role="branch_manager", branches=SH01)
    assert closed.status_code == 200, closed.text
    assert browser.goto("/m/") == 200 and browser.page("url").endswith("/m/sign-in")
    assert "careloop_member" not in {c["name"] for c in browser.send(op="cookies")}


def test_a_phone_that_is_no_member_is_answered_alike_and_gets_no_sms(suite, open_browser, providers):
    browser = open_browser(suite.base_url)
    browser.page("set_viewport_size", PHONE)
    assert browser.goto("/m/sign-in") == 200
    browser.page("fill", "#phone", "13900001234")
    browser.page("click", "#send-code")
    browser.page("wait_for_selector", "#code")
    assert "/m/code?c=" in browser.page("url")
    for attempt in range(5):  # the fifth wrong code locks the number: the page says so, in 429
        browser.page("fill", "#code", f"12345{attempt}")
        browser.page("click", "#check-code")
        browser.page("wait_for_selector", f"#problem >> text={'Too many' if attempt == 4 else 'not right'}")
    assert "15 minutes" in browser.text("#problem")
    assert not [r for r in providers.requests("sms") if r["body"].get("To") == "+8613900001234"]
    assert browser.goto("/m/") == 200 and browser.page("url").endswith("/m/sign-in")
