"""One interface for every channel, and how provider answers are read (transient or permanent).

A channel adapter takes a rendered ``Message`` and either returns a ``Receipt`` (the provider took it)
or raises ``TransientFailure`` (try again later: rate limits, timeouts, 5xx; ``retry_after`` when the
provider said how long) or ``PermanentFailure`` (this message will never go: a refused number, an
unfollowed account, a template the provider does not know). The scheduler decides what to do with each.
Adapters never log addresses or message bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    """One rendered message for one address."""

    delivery_id: str
    member_id: str
    journey: str
    to: str
    subject: str
    text: str  # the short form: SMS, LINE, WeChat
    body: str = ""  # the long form: e-mail text part, the inbox
    html: str | None = None  # e-mail
    language: str = "en"
    link: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    provider_id: str | None
    delivered: bool = False  # the member has it already (the inbox); else "sent" until a receipt says more


class ChannelFailure(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status


class TransientFailure(ChannelFailure):
    """Worth trying again later (rate limited, timed out, provider error)."""


class PermanentFailure(ChannelFailure):
    """Never worth trying again as it is (refused address, bad template, account blocked)."""


class Channel(Protocol):
    name: str
    idempotent: bool  # resending after a crash cannot make a duplicate (provider retry keys, the inbox)

    def send(self, message: Message) -> Receipt: ...


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from an HTTP ``Retry-After`` (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def classify_http(status: int, reason: str, retry_after: str | None = None) -> ChannelFailure:
    """The failure an HTTP error status means: 408, 425, 429 and 5xx are transient, other 4xx permanent."""
    wait = parse_retry_after(retry_after)
    if status in (408, 425, 429) or status >= 500:
        return TransientFailure(f"HTTP {status}: {reason}", retry_after=wait, status=status)
    return PermanentFailure(f"HTTP {status}: {reason}", status=status)
