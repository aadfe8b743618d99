"""A member's sign-in code by SMS (``notifications.send_sign_in_code``): sent at once in the member's language,
in quiet hours and without any consent (transactional, asked for a moment ago); only services may ask; a
provider that does not take it is ``Unavailable``, one that refuses the number ``Invalid``; nothing is queued."""

from __future__ import annotations

import pytest

from services.kit.caller import Identity
from services.kit.errors import Forbidden, Invalid, Unavailable

PHONE = "+8613800138111"


def test_a_code_goes_at_once_in_the_member_s_language_with_no_consent_and_nothing_queued(suite):
    s = suite(channels=("sms",), quiet_hours="00:00-23:59")  # quiet all day: a code goes all the same
    member = s.enrol(full_name="Lin Ma", phone=PHONE, birth_date="1990-01-02", home_branch="SH01",
                     consents={"sms": False, "marketing": False})
    sent = s.rpc.notifications.send_sign_in_code({"phone": PHONE, "code": "042917", "language": "zh-Hant",
                                                  "minutes": 5})
    assert sent["language"] == "zh-Hant" and sent["provider_id"].startswith("SM")
    (request,) = [r for r in s.providers.accepted("sms") if r["body"]["To"] == PHONE]
    assert "042917" in request["body"]["Body"] and "5 分鐘" in request["body"]["Body"]
    assert [d["journey"] for d in s.deliveries(member["id"])] == ["welcome"]  # no delivery of the code


def test_only_services_send_codes_and_provider_answers_become_errors_a_caller_can_act_on(suite, rpc):
    s = suite(channels=("sms",))
    staff = rpc(caller=Identity(kind="staff", subject="u1", role="group_admin", branches=("*",)))
    with pytest.raises(Forbidden):
        staff.notifications.send_sign_in_code({"phone": PHONE, "code": "123456", "minutes": 5})
    with pytest.raises(Invalid):
        s.rpc.notifications.send_sign_in_code({"phone": "13800138111", "code": "12ab", "minutes": 5})
    s.providers.script("sms", {"status": 503, "body": {"message": "busy"}})
    with pytest.raises(Unavailable):
        s.rpc.notifications.send_sign_in_code({"phone": PHONE, "code": "123456", "minutes": 5})
    s.providers.script("sms", {"status": 400, "body": {"code": 21614, "message": "not a mobile", "status": 400}})
    with pytest.raises(Invalid):
        s.rpc.notifications.send_sign_in_code({"phone": PHONE, "code": "123456", "minutes": 5})


def test_without_sms_set_up_no_code_can_be_sent(suite):
    s = suite(channels=("email",))
    with pytest.raises(Unavailable):
        s.rpc.notifications.send_sign_in_code({"phone": PHONE, "code": "123456", "minutes": 5})
