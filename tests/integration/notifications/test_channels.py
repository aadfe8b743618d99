"""Each channel adapter against a local imitation of its provider's real API: what it sends, and how it
reads the answers (accepted, rate limited, refused, token expired). No broker or database needed except
for the inbox."""

from __future__ import annotations

import socket
import uuid

import pytest

from services.notifications.channels.base import Message, PermanentFailure, TransientFailure
from services.notifications.channels.email import EmailChannel
from services.notifications.channels.inbox import InboxChannel
from services.notifications.channels.line import LineChannel
from services.notifications.channels.sms import SmsChannel
from services.notifications.channels.wechat import WeChatChannel
from tests.harness import store_for

LINE_USER = "U" + "0123456789abcdef" * 2
OPENID = "oW2dq5Nf0F9vKzZ1t4f0PaYc3Qk8"


def message(to: str, **extra) -> Message:
    return Message(delivery_id=str(uuid.uuid4()), member_id=str(uuid.uuid4()), journey="appointment_reminder",
                   to=to, subject="Reminder", text="Your appointment is tomorrow at 10:30.",
                   body="Dear Anna,\n\nyour appointment is tomorrow at 10:30.", language="en", **extra)


def test_sms_posts_a_twilio_form_with_basic_auth_and_returns_the_sid(imitations):
    sms = SmsChannel(imitations.channels("sms")["sms"])
    receipt = sms.send(message("+8613800138000"))
    (request,) = imitations.requests("sms")
    assert request["body"]["To"] == "+8613800138000" and request["body"]["From"] == "+14155550100"
    assert request["body"]["Body"] == "Your appointment is tomorrow at 10:30."
    assert receipt.provider_id == request["body"]["sid"] and not receipt.delivered


@pytest.mark.parametrize(("answer", "failure", "reason", "retry_after"), [
    ({"status": 429, "headers": {"Retry-After": "7"}, "body": {"code": 20429, "message": "Too Many Requests"}},
     TransientFailure, "HTTP 429: Too Many Requests (code 20429)", 7.0),
    ({"status": 503, "body": {"message": "Service Unavailable"}}, TransientFailure, "HTTP 503: Service Unavailable",
     None),
    ({"status": 400, "body": {"code": 21211, "message": "The 'To' number is not valid."}}, PermanentFailure,
     "SMS provider error 21211: not a valid phone number", None),
    ({"status": 400, "body": {"code": 21610, "message": "Attempt to send to unsubscribed recipient"}},
     PermanentFailure, "SMS provider error 21610: the member replied STOP to our messages", None),
    ({"status": 400, "body": {"code": 30000, "message": "Message body is too long"}}, PermanentFailure,
     "HTTP 400: Message body is too long (code 30000)", None),
])
def test_sms_provider_answers_are_classified(imitations, answer, failure, reason, retry_after):
    imitations.script("sms", answer)
    with pytest.raises(failure) as raised:
        SmsChannel(imitations.channels("sms")["sms"]).send(message("+8613800138000"))
    assert type(raised.value) is failure
    assert raised.value.reason == reason and raised.value.retry_after == retry_after


def test_sms_with_wrong_credentials_is_kept_for_a_retry(imitations):
    settings = {**imitations.channels("sms")["sms"], "auth_token": "wrong"}
    with pytest.raises(TransientFailure) as raised:
        SmsChannel(settings).send(message("+8613800138000"))
    assert "credentials" in raised.value.reason


def test_sms_provider_that_cannot_be_reached_is_transient():
    settings = {"base_url": "http://127.0.0.1:9", "account_sid": "AC1", "auth_token": "t", "from": "+1415"}
    with pytest.raises(TransientFailure):
        SmsChannel(settings).send(message("+8613800138000"))


def test_line_push_carries_the_token_and_a_retry_key_and_a_repeat_is_not_a_duplicate(imitations):
    line = LineChannel(imitations.channels("line")["line"])
    once = message(LINE_USER, link="https://app.example/appointments/1")
    first = line.send(once)
    again = line.send(once)  # a resend after a timeout or a crash: LINE answers 409 and sends nothing
    assert [r["status"] for r in imitations.requests("line")] == [200, 409]
    assert {r["retry_key"] for r in imitations.requests("line")} == {once.delivery_id}
    pushed = imitations.requests("line")[0]["body"]
    assert pushed["to"] == LINE_USER and pushed["messages"][0]["type"] == "text"
    assert pushed["messages"][0]["text"].endswith("https://app.example/appointments/1")
    assert first.provider_id and again.provider_id


@pytest.mark.parametrize(("answer", "failure"), [
    ({"status": 429, "body": {"message": "Too Many Requests"}}, TransientFailure),
    ({"status": 429, "body": {"message": "You have reached your monthly limit."}}, PermanentFailure),
    ({"status": 400, "body": {"message": "The property, 'to', in the request body is invalid (line: -, column: -)"}},
     PermanentFailure),
    ({"status": 500, "body": {"message": "Internal Server Error"}}, TransientFailure),
])
def test_line_answers_are_classified(imitations, answer, failure):
    imitations.script("line", answer)
    with pytest.raises(failure):
        LineChannel(imitations.channels("line")["line"]).send(message(LINE_USER))


@pytest.mark.parametrize("endpoint", ["stable", "classic"])
def test_wechat_fetches_a_token_once_and_sends_a_template_message(imitations, endpoint):
    wechat = WeChatChannel({**imitations.channels("wechat")["wechat"], "token_endpoint": endpoint})
    first = wechat.send(message(OPENID, link="https://app.example/x"))
    wechat.send(message(OPENID))
    assert len(imitations.requests("wechat_token")) == 1  # cached until it nears expiry
    sent = imitations.requests("wechat_send")[0]["body"]
    assert sent["touser"] == OPENID and sent["template_id"] == "tmpl-notice-1" and sent["url"] == "https://app.example/x"
    assert sent["data"]["first"]["value"] == "Reminder"
    assert sent["data"]["keyword1"]["value"] == "Your appointment is tomorrow at 10:30."
    assert first.provider_id


def test_wechat_refreshes_a_token_the_platform_no_longer_accepts(imitations):
    wechat = WeChatChannel(imitations.channels("wechat")["wechat"])
    wechat.send(message(OPENID))
    imitations.revoke_tokens()  # another process fetched a new one, or it expired early
    assert wechat.send(message(OPENID)).provider_id
    assert len(imitations.requests("wechat_token")) == 2
    assert [r["status"] for r in imitations.requests("wechat_send")] == [200, 200, 200]


@pytest.mark.parametrize(("errcode", "failure", "reason"), [
    (45009, TransientFailure, "WeChat API call limit reached (errcode 45009)"),
    (-1, TransientFailure, "WeChat system busy (errcode -1)"),
    (43004, PermanentFailure, "WeChat: the member does not follow the official account (errcode 43004)"),
    (40003, PermanentFailure, "WeChat: not an openid of this account (errcode 40003)"),
])
def test_wechat_error_codes_are_classified(imitations, errcode, failure, reason):
    imitations.script("wechat_send", {"status": 200, "body": {"errcode": errcode, "errmsg": "x rid: 1"}})
    with pytest.raises(failure) as raised:
        WeChatChannel(imitations.channels("wechat")["wechat"]).send(message(OPENID))
    assert raised.value.reason == reason


def test_wechat_with_a_wrong_secret_keeps_messages_for_later(imitations):
    settings = {**imitations.channels("wechat")["wechat"], "app_secret": "wrong"}
    with pytest.raises(TransientFailure) as raised:
        WeChatChannel(settings).send(message(OPENID))
    assert "40013" in raised.value.reason
    assert imitations.requests("wechat_send") == []


def test_email_is_a_multipart_message_with_our_message_id(imitations):
    email = EmailChannel(imitations.channels("email")["email"])
    sent = message("anna@example.com", html="<p>your appointment</p>")
    receipt = email.send(sent)
    (mail,) = imitations.mail()
    assert mail["to"] == ["anna@example.com"] and mail["from"] == "care@smile-dental.example"
    assert mail["subject"] == "Reminder" and mail["message_id"] == receipt.provider_id
    assert mail["text"].startswith("Dear Anna") and "<p>your appointment</p>" in mail["html"]


def test_email_reuses_an_open_connection_and_replaces_one_that_died(imitations):
    email = EmailChannel(imitations.channels("email")["email"])
    email.send(message("anna@example.com"))
    email.send(message("bert@example.com"))
    first, second = imitations.mail()
    assert first["peer"] == second["peer"]  # one connection, two messages
    email._idle[0].sock.shutdown(socket.SHUT_RDWR)  # the server (or a NAT) dropped the idle connection
    email.send(message("cora@example.com"))
    assert imitations.mail()[2]["peer"] != second["peer"] and len(imitations.mail()) == 3
    email.close()


@pytest.mark.parametrize(("to", "failure", "code"), [
    ("unknown@example.com", PermanentFailure, "SMTP 550"),
    ("busy@example.com", TransientFailure, "SMTP 451"),
])
def test_email_recipient_refusals_are_classified_by_code(imitations, to, failure, code):
    with pytest.raises(failure) as raised:
        EmailChannel(imitations.channels("email")["email"]).send(message(to))
    assert raised.value.reason.startswith(code)


def test_email_server_away_is_transient():
    with pytest.raises(TransientFailure):
        EmailChannel({"host": "127.0.0.1", "port": 9, "security": "none", "from": "a@b.example"}).send(
            message("anna@example.com"))


def test_inbox_stores_a_message_once_per_delivery(databases, backend):
    store = store_for(databases.fresh(backend, "notifications"))
    try:
        inbox = InboxChannel(store)
        once = message("ignored")
        first, again = inbox.send(once), inbox.send(once)
        assert first.delivered and first.provider_id == again.provider_id
    finally:
        store.dispose()
