"""A sign-in code's failure is logged with the provider's reason but never with a phone number in it."""

from __future__ import annotations

import pytest

from gateway.member.sending import NUMBER


@pytest.mark.parametrize(("reason", "logged"), [
    ("The 'To' number +8613800138000 is not a valid phone number.", "The 'To' number [number] is not a valid phone number."),
    ("HTTP 400: invalid recipient 138 0013 8000 (code 21211)", "HTTP 400: invalid recipient [number] (code 21211)"),
    ("HTTP 503: busy (code 20429)", "HTTP 503: busy (code 20429)"),
])
def test_a_number_in_a_provider_s_reason_is_masked(reason: str, logged: str) -> None:
    assert NUMBER.sub("[number]", reason) == logged
