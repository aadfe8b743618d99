"""Providers' delivery receipts through the gateway: SMS status callbacks (form), WeChat template reports
(XML) and LINE webhooks (JSON), each signed the provider's way, move sent messages to delivered or failed;
a bad signature is refused and changes nothing; a repeated receipt changes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from tests.imitations import SMS_TOKEN
from tests.integration.notifications import conftest as notification_fixtures

providers = notification_fixtures.providers  # the provider imitations' process (session fixture)

PUBLIC = "https://care.example.test"
LINE_SECRET, WECHAT_SERVER_TOKEN = "line-channel-secret", "wechat-server-token"
DAYTIME = f"{datetime.now(UTC).year + 1}-03-10T02:00:00Z"  # 10:00 in Shanghai
OPENID, LINE_USER = "oW2dq5Nf0F9vKzZ1t4f0PaYc3Qk8", "U" + "0123456789abcdef" * 2


@pytest.fixture
def suite(start_suite, providers):
    providers.reset()
    channels = providers.channels("sms", "line", "wechat")
    channels["line"]["channel_secret"] = LINE_SECRET
    channels["wechat"]["server_token"] = WECHAT_SERVER_TOKEN
    return start_suite(notifications_config={"PUBLIC_BASE_URL": PUBLIC, "NOTIFICATIONS": {"channels": channels}},
                       PUBLIC_BASE_URL=PUBLIC)


@pytest.fixture
def sent(suite, rpc):
    """One results-ready message per provider channel, sent: {channel: delivery}."""
    member = suite.call("POST", "/v1/members", json={
        "full_name": "Anna Smith", "phone": "13800138000", "birth_date": "1990-05-01", "home_branch": "SH01",
        "preferred_language": "en", "wechat_openid": OPENID, "line_user_id": LINE_USER,
        "consents": {"sms": True, "wechat": True, "line": True}})
    assert member.status_code == 201, member.text
    ids = {}
    for channel in ("sms", "wechat", "line"):
        queued = suite.call("POST", "/v1/notifications", role="integration", headers={"Idempotency-Key": channel},
                            json={"member_id": member.json()["id"], "journey": "results_ready", "due_at": DAYTIME,
                                  "channel": channel, "cause": f"exam-{channel}"})
        assert queued.status_code == 201, queued.text
        ids[channel] = queued.json()["id"]
    rpc().notifications.dispatch_due(now=DAYTIME)
    shown = {channel: suite.call("GET", f"/v1/notifications/{id_}").json() for channel, id_ in ids.items()}
    assert {channel: d["state"] for channel, d in shown.items()} == {"sms": "sent", "wechat": "sent", "line": "sent"}
    return shown


def twilio(form: dict[str, str], token: str = SMS_TOKEN, url: str = f"{PUBLIC}/v1/receipts/sms") -> dict[str, str]:
    signed = url + "".join(key + value for key, value in sorted(form.items()))
    return {"X-Twilio-Signature": base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest())
            .decode(), "Content-Type": "application/x-www-form-urlencoded"}


def state(suite, delivery: dict) -> tuple[str, str | None, list[str]]:
    shown = suite.call("GET", f"/v1/notifications/{delivery['id']}").json()
    return shown["state"], shown["reason"], [step["state"] for step in shown["steps"]]


def test_an_sms_status_callback_marks_the_message_delivered_once_and_a_forged_one_changes_nothing(suite, sent,
                                                                                                    providers):
    sms = sent["sms"]
    (request,) = providers.accepted("sms")
    assert request["body"]["StatusCallback"] == f"{PUBLIC}/v1/receipts/sms"  # asked for, at the public address
    form = {"MessageSid": sms["provider_id"], "MessageStatus": "delivered", "AccountSid": "AC1", "To": "+86138"}
    before = state(suite, sms)

    forged = suite.http.post(suite.base_url + "/v1/receipts/sms", data=urlencode(form),
                             headers=twilio(form, token="not-our-token"), timeout=30)
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "unauthenticated"
    unsigned = suite.http.post(suite.base_url + "/v1/receipts/sms", data=form, timeout=30)
    assert unsigned.status_code == 401
    other_url = suite.http.post(suite.base_url + "/v1/receipts/sms", data=urlencode(form),
                                headers=twilio(form, url="https://elsewhere.example/v1/receipts/sms"), timeout=30)
    assert other_url.status_code == 401
    assert state(suite, sms) == before == ("sent", None, ["queued", "sent"])

    answer = suite.http.post(suite.base_url + "/v1/receipts/sms", data=urlencode(form), headers=twilio(form), timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 1, "delivered": 1, "failed": 0, "unchanged": 0, "unknown": 0, "ignored": 0}
    again = suite.http.post(suite.base_url + "/v1/receipts/sms", data=urlencode(form), headers=twilio(form), timeout=30)
    assert again.json()["unchanged"] == 1 and again.json()["delivered"] == 0
    late_failure = {**form, "MessageStatus": "failed", "ErrorCode": "30008"}
    ignored = suite.http.post(suite.base_url + "/v1/receipts/sms", data=urlencode(late_failure),
                              headers=twilio(late_failure), timeout=30)
    assert ignored.json()["ignored"] == 1
    assert state(suite, sms) == ("delivered", None, ["queued", "sent", "delivered"])
    progress = {**form, "MessageSid": "SMnotours", "MessageStatus": "sent"}
    assert suite.http.post(suite.base_url + "/v1/receipts/sms", data=urlencode(progress), headers=twilio(progress),
                           timeout=30).json()["ignored"] == 1


def wechat_query(token: str = WECHAT_SERVER_TOKEN) -> dict[str, str]:
    timestamp, nonce = "1767225600", "170382"
    return {"signature": hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest(),
            "timestamp": timestamp, "nonce": nonce, "openid": OPENID}


def test_a_wechat_template_report_fails_a_blocked_message_with_the_reason(suite, sent):
    wechat = sent["wechat"]
    report = (f"<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><FromUserName><![CDATA[{OPENID}]]>"
              f"</FromUserName><CreateTime>1767225600</CreateTime><MsgType><![CDATA[event]]></MsgType>"
              f"<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>{wechat['provider_id']}</MsgID>"
              f"<Status><![CDATA[failed:user block]]></Status></xml>").encode()
    xml = {"Content-Type": "text/xml"}
    forged = suite.http.post(suite.base_url + "/v1/receipts/wechat", params=wechat_query("guess"), data=report,
                             headers=xml, timeout=30)
    assert forged.status_code == 401 and state(suite, wechat)[0] == "sent"
    answer = suite.http.post(suite.base_url + "/v1/receipts/wechat", params=wechat_query(), data=report, headers=xml,
                             timeout=30)
    assert answer.status_code == 200 and answer.text == "success"  # what WeChat waits for
    assert state(suite, wechat) == ("failed", "WeChat: the member blocked messages from the official account",
                                    ["queued", "sent", "failed"])
    check = suite.http.get(suite.base_url + "/v1/receipts/wechat", params={**wechat_query(), "echostr": "e4711"},
                           timeout=30)
    assert check.status_code == 200 and check.text == "e4711"
    assert suite.http.get(suite.base_url + "/v1/receipts/wechat", params={**wechat_query("x"), "echostr": "e"},
                          timeout=30).status_code == 401


def test_a_line_delivery_event_marks_the_message_delivered(suite, sent):
    line = sent["line"]
    body = json.dumps({"destination": "U0", "events": [
        {"type": "delivery", "delivery": {"data": line["id"]}, "timestamp": 1767225600000},
        {"type": "follow", "source": {"type": "user", "userId": LINE_USER}}]}).encode()
    signature = base64.b64encode(hmac.new(LINE_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    headers = {"Content-Type": "application/json"}
    forged = suite.http.post(suite.base_url + "/v1/receipts/line", data=body,
                             headers={**headers, "X-Line-Signature": signature[:-4] + "AAA="}, timeout=30)
    assert forged.status_code == 401 and state(suite, line)[0] == "sent"
    answer = suite.http.post(suite.base_url + "/v1/receipts/line", data=body,
                             headers={**headers, "X-Line-Signature": signature}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["delivered"], answer.json()["ignored"]) == (1, 1)
    assert state(suite, line)[0] == "delivered"
