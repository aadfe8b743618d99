"""Outbound webhook rules: the allowlist, the backoff inside the retry window, the signature."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.interfaces.webhooks import rules
from services.kit import signing
from services.kit.errors import Invalid

ALLOWED = ("crm.example.org", "*.partner.example.com", "127.0.0.1")


@pytest.mark.parametrize("url", ["https://crm.example.org/hooks", "https://CRM.example.org./x",
                                 "https://a.partner.example.com/x", "https://a.b.partner.example.com:8443/x",
                                 "http://127.0.0.1:9000/x"])
def test_allowed_targets(url):
    assert rules.check_target(url, ALLOWED) == url


@pytest.mark.parametrize("url", ["https://partner.example.com/x", "https://evil.example.org/x",
                                 "https://crm.example.org.evil.net/x", "http://169.254.169.254/", "http://[::1]/",
                                 "file:///etc/passwd", "https://u:p@crm.example.org/", "https:///nohost",
                                 "http://127.0.0.1:99999/", "not a url"])
def test_refused_targets(url):
    with pytest.raises(Invalid) as refused:
        rules.check_target(url, ALLOWED)
    assert "target_url" in refused.value.fields


def test_the_backoff_doubles_up_to_its_ceiling_and_ends_with_the_window():
    first = datetime(2026, 12, 6, tzinfo=UTC)
    waits = []
    now = first
    for attempts in range(1, 40):
        following = rules.next_attempt(first, attempts, now, 30, 3600, timedelta(hours=24))
        if following is None:
            break
        waits.append((following - now).total_seconds())
        now = following
    assert waits[:8] == [30, 60, 120, 240, 480, 960, 1920, 3600] and max(waits) == 3600
    assert now <= first + timedelta(hours=24) < now + timedelta(seconds=3600)


def test_a_signature_verifies_with_its_secret_only_and_not_when_stale():
    headers = signing.signature_headers("whsec_a", b'{"x":1}')
    assert signing.verify("whsec_a", headers, b'{"x":1}')
    assert signing.verify("whsec_a", {k.lower(): v for k, v in headers.items()}, b'{"x":1}')
    assert not signing.verify("whsec_b", headers, b'{"x":1}')
    assert not signing.verify("whsec_a", headers, b'{"x":2}')
    old = signing.signature_headers("whsec_a", b"{}", timestamp=1_000_000_000)
    assert not signing.verify("whsec_a", old, b"{}")
