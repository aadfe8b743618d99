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
