"""Whether an address can receive a message on its channel, without asking the provider. No I/O.

A wrong address is caught here and the message suppressed as ``invalid_address`` instead of spending a
provider call (and money, for SMS) on a certain failure.
"""

from __future__ import annotations

import re
from email.utils import parseaddr

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
LINE_USER_ID = re.compile(r"^U[0-9a-f]{32}$")  # LINE user ids: "U" and 32 lowercase hex digits
WECHAT_OPENID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")  # openids are 28 characters of this alphabet today
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def address_problem(channel: str, address: str) -> str | None:
    """None if ``address`` looks deliverable on ``channel``, else what is wrong with it."""
    if channel == "sms":
        return None if E164.match(address) else "not an E.164 phone number"
    if channel == "email":
        _name, parsed = parseaddr(address)
        return None if parsed == address and EMAIL.match(address) else "not an e-mail address"
    if channel == "line":
        return None if LINE_USER_ID.match(address) else "not a LINE user id"
    if channel == "wechat":
        return None if WECHAT_OPENID.match(address) else "not a WeChat openid"
    if channel == "inbox":
        return None
    return f"unknown channel {channel}"
