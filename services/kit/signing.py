"""The webhook signature scheme, both ways: what the gateway verifies on inbound webhooks
(``gateway.auth.webhooks``) and what the interfaces service puts on outbound deliveries.

    X-CareLoop-Timestamp: 1767225600                 (Unix seconds, when it was sent)
    X-CareLoop-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-CareLoop-Timestamp"
SIGNATURE_HEADER = "X-CareLoop-Signature"


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def signature_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The timestamp and signature headers of one request (re-signed on every attempt)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(secret, stamp, body)}


def verify(secret: str, headers: Mapping[str, str], body: bytes, tolerance: float = 300) -> bool:
    """Whether a request carries a valid signature of ``body`` by ``secret``, signed within ``tolerance`` s
    (what a receiver of CareLoop's deliveries checks; header names in any case)."""
    headers = {name.lower(): value for name, value in headers.items()}
    stamp = headers.get(TIMESTAMP_HEADER.lower(), "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance:
        return False
    given = [part.strip() for part in headers.get(SIGNATURE_HEADER.lower(), "").split(",")]
    return any(hmac.compare_digest(sign(secret, stamp, body), candidate) for candidate in given)
