"""Providers' delivery receipts read and verified by each provider's own signature scheme."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest

from services.notifications.rules import receipts as rules

URL = "https://care.example.test/v1/receipts/sms"
TOKEN = "sms-secret-token"


def twilio_signed(form: dict[str, str], token: str = TOKEN, url: str = URL) -> tuple[str, str]:
    data = url + "".join(k + v for k, v in sorted(form.items()))
    return urlencode(form), base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def test_twilio_signature_matches_the_documented_example():
    # Twilio's "Validating Signatures from Twilio" example: URL, parameters, auth token 12345 -> signature
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
              ("From", "+14158675309"), ("To", "+18005551212")]
    assert rules.sms_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


@pytest.mark.parametrize(("status", "code", "state", "reason"), [
    ("delivered", None, "delivered", None),
    ("read", None, "delivered", None),
    ("undelivered", "30003", "failed", "SMS provider: undelivered (error 30003: the handset is unreachable "
                                       "(switched off or out of coverage))"),
    ("failed", "30999", "failed", "SMS provider: failed (error 30999)"),
    ("sent", None, None, None),
    ("queued", None, None, None),
])
def test_sms_status_callbacks_say_delivered_failed_or_nothing_yet(status, code, state, reason):
    form = {"MessageSid": "SM1", "MessageStatus": status, "AccountSid": "AC1"}
    if code:
        form["ErrorCode"] = code
    body, signature = twilio_signed(form)
    receipt = rules.sms_receipt(TOKEN, URL, signature, body)
    if state is None:
        assert receipt is None
    else:
        assert (receipt.state, receipt.provider_id, receipt.reason) == (state, "SM1", reason)


@pytest.mark.parametrize("tamper", ["body", "url", "token", "missing"])
def test_an_sms_callback_not_signed_by_our_token_is_refused(tamper):
    body, signature = twilio_signed({"MessageSid": "SM1", "MessageStatus": "delivered"})
    token, url = TOKEN, URL
    if tamper == "body":
        body = body.replace("delivered", "failed")
    elif tamper == "url":
        url = "https://elsewhere.example/v1/receipts/sms"
    elif tamper == "token":
        token = "another-token"
    else:
        signature = None
    with pytest.raises(rules.BadSignature):
        rules.sms_receipt(token, url, signature, body)


def wechat_query(token: str = "wx-server-token") -> dict[str, str]:
    timestamp, nonce = "1767225600", "8412"
    return {"timestamp": timestamp, "nonce": nonce, "openid": "o1",
            "signature": hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()}


def report(status: str, msg_id: str = "200163836") -> str:
    return (f"<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>"
            f"<CreateTime>1395658920</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>{msg_id}</MsgID>"
            f"<Status><![CDATA[{status}]]></Status></xml>")


@pytest.mark.parametrize(("status", "state", "reason"), [
    ("success", "delivered", None),
    ("failed:user block", "failed", "WeChat: the member blocked messages from the official account"),
    ("failed: system failed", "failed", "WeChat: WeChat could not deliver it (system failed)"),
])
def test_wechat_template_reports(status, state, reason):
    receipt = rules.wechat_receipt("wx-server-token", wechat_query(), report(status))
    assert (receipt.state, receipt.provider_id, receipt.reason) == (state, "200163836", reason)


def test_wechat_other_events_are_no_receipts_and_bad_signatures_or_entities_are_refused():
    follow = ("<xml><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>")
    assert rules.wechat_receipt("wx-server-token", wechat_query(), follow) is None
    with pytest.raises(rules.BadSignature):
        rules.wechat_receipt("wx-server-token", wechat_query("not-our-token"), report("success"))
    with pytest.raises(rules.BadSignature):
        rules.wechat_receipt("", wechat_query(""), report("success"))
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><MsgType>&a;</MsgType></xml>'
    with pytest.raises(rules.Unreadable):
        rules.wechat_receipt("wx-server-token", wechat_query(), bomb)


def test_line_delivery_events_name_our_delivery_and_the_signature_is_the_channel_secret():
    body = json.dumps({"destination": "U0", "events": [
        {"type": "delivery", "delivery": {"data": "7b4c0e2a-0000-4000-8000-000000000001"}},
        {"type": "follow", "source": {"userId": "U1"}}]})
    signature = base64.b64encode(hmac.new(b"line-secret", body.encode(), hashlib.sha256).digest()).decode()
    found, others = rules.line_receipts("line-secret", signature, body)
    assert [(r.state, r.delivery_id) for r in found] == [("delivered", "7b4c0e2a-0000-4000-8000-000000000001")]
    assert others == 1
    with pytest.raises(rules.BadSignature):
        rules.line_receipts("line-secret", signature, body.replace("follow", "unfollow"))
