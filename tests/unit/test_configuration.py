"""Configuration: the group file, and the process config with environment substitution."""

from pathlib import Path

import pytest

from services.kit.config import group_from_config, load_config
from services.kit.errors import Invalid

REPO = Path(__file__).resolve().parents[2]


def test_demo_group_has_three_branches_and_a_zone():
    group = group_from_config({})
    assert set(group.branches) == {"SH01", "SH02", "HZ01"}
    assert group.zone.key == "Asia/Shanghai"
    assert group.currency == "CNY"
    assert group.region_of("SH01") == "CN" and group.region_of(None) == "CN"


def test_unknown_branch_is_invalid_with_the_field():
    with pytest.raises(Invalid) as raised:
        group_from_config({}).branch("XX99")
    assert "branch" in raised.value.fields


def test_process_config_substitutes_environment(monkeypatch):
    monkeypatch.setenv("AMQP_URI", "pyamqp://u:p@broker:5672/careloop")
    monkeypatch.setenv("MAX_WORKERS", "25")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = load_config(REPO / "deploy" / "config.yml")
    assert config["AMQP_URI"] == "pyamqp://u:p@broker:5672/careloop"
    assert config["max_workers"] == 25
    assert config["SERVICE_CONTAINER_CLS"] == "services.kit.container.Container"
    assert not config["DATABASE_URL"]  # empty: the service's SQLite file


def test_notification_settings_come_from_the_environment(monkeypatch):
    from services.notifications.channels import PROVIDERS
    from services.notifications.settings import settings_from_config

    for name in ("SMTP_HOST", "SMS_ACCOUNT_SID", "LINE_CHANNEL_ACCESS_TOKEN", "WECHAT_APP_ID",
                 "NOTIFICATIONS_QUIET_HOURS", "NOTIFICATIONS_CHANNEL_ORDER"):
        monkeypatch.delenv(name, raising=False)
    defaults = settings_from_config(load_config(REPO / "deploy" / "config.yml"))
    assert str(defaults.quiet_hours.start) == "21:00:00" and str(defaults.quiet_hours.end) == "08:00:00"
    assert defaults.channel_order == ("wechat", "line", "sms", "email", "inbox")
    assert not any(PROVIDERS[name].configured(defaults.channels[name]) for name in PROVIDERS)  # inbox only

    monkeypatch.setenv("NOTIFICATIONS_QUIET_HOURS", "22:00-07:00")
    monkeypatch.setenv("SMS_ACCOUNT_SID", "AC1")
    monkeypatch.setenv("SMS_AUTH_TOKEN", "secret")
    monkeypatch.setenv("SMS_FROM", "+14155550100")
    configured = settings_from_config(load_config(REPO / "deploy" / "config.yml"))
    assert str(configured.quiet_hours.start) == "22:00:00"
    assert PROVIDERS["sms"].configured(configured.channels["sms"])
    assert configured.channels["sms"]["from"] == "+14155550100"  # text, not the number 14155550100


GROUP_HEAD = """code: g
name: G
time_zone: Asia/Shanghai
currency: CNY
branches:
"""


def _group_file(tmp_path, branches: str):
    from services.kit.config import _load_group

    path = tmp_path / "group.yml"
    path.write_text(GROUP_HEAD + branches)
    return _load_group(str(path))


def test_demo_branches_name_whom_to_alert_about_negative_feedback():
    alerts = group_from_config({}).branch("SH01").alerts
    assert alerts.email == ("manager.sh01@example.com",) and alerts.sms == ("+8613800000101",)
    assert alerts.configured


def test_a_branch_without_alerts_still_loads_with_nobody_to_alert(tmp_path):
    group = _group_file(tmp_path, "  B1: {name: One}\n")
    assert group.branch("B1").alerts.email == () and group.branch("B1").alerts.sms == ()
    assert not group.branch("B1").alerts.configured


def test_alerts_accept_one_address_or_a_list_and_drop_repeats(tmp_path):
    group = _group_file(tmp_path, "  B1: {name: One, alerts: {email: a@example.com, "
                                  "sms: ['+8613800000001', '+8613800000001']}}\n")
    assert group.branch("B1").alerts.email == ("a@example.com",)
    assert group.branch("B1").alerts.sms == ("+8613800000001",)


@pytest.mark.parametrize(("alerts", "complaint"), [
    ("{email: [not-an-address]}", "alerts.email entry 'not-an-address' is not an e-mail address"),
    ("{sms: ['13800000001']}", "alerts.sms entry '13800000001' is not an E.164 mobile number"),
    ("{wechat: [someone]}", "alerts has unknown channels ['wechat']"),
    ("[a@example.com]", "alerts must be a mapping"),
])
def test_a_bad_alert_address_stops_the_start_up_naming_the_branch(tmp_path, alerts, complaint):
    with pytest.raises(ValueError) as raised:
        _group_file(tmp_path, f"  B1: {{name: One, alerts: {alerts}}}\n")
    assert "branch B1" in str(raised.value) and complaint in str(raised.value)


def test_a_default_language_careloop_does_not_speak_stops_the_start_up(tmp_path):
    # before, members enrolled with it and every member_enrolled then broke its contract
    with pytest.raises(ValueError, match="default_language must be one of en, zh-Hans, zh-Hant, es"):
        _group_file(tmp_path, "  B1: {name: One}\ndefault_language: fr\n")
