"""The rules of sending, with no I/O: consent and channel choice, quiet hours, the marketing cap, retries.

Every function takes the moment it judges (``now``) instead of reading a clock, so that the rules can be
tested at 20:59 and 21:00 alike, and so that the scheduler can be driven through time by a test.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.kit.clock import as_utc
from services.notifications.events import CHANNELS
from services.notifications.rules.addresses import address_problem

SERVICE = "service"
MARKETING = "marketing"
CATEGORIES = (SERVICE, MARKETING)

PUSH_CHANNELS = tuple(c for c in CHANNELS if c != "inbox")  # the inbox is read in the app: no consent to push needed

# why a message was not sent (recorded on the delivery, counted in metrics)
NO_CONSENT = "no_consent"  # the member did not agree to this channel, or to marketing
OPTED_OUT = "opted_out"  # the member opted out of this kind of message (marketing or service)
QUIET_HOURS = "quiet_hours"  # waiting for the morning would make the message useless (past its expiry)
CAP = "cap"  # the weekly cap of marketing messages is reached
INVALID_ADDRESS = "invalid_address"  # the phone, e-mail or account id cannot receive messages
NO_ADDRESS = "no_address"  # nothing to send to on any channel the member allows
MEMBER_CLOSED = "member_closed"  # the membership was closed (erasure): never contact again
MEMBER_MERGED = "member_merged"  # merged into another member: that one is written to instead
UNKNOWN_MEMBER = "unknown_member"  # the member does not exist (any more)
EXPIRED = "expired"  # the message's moment passed before it could be sent (retries, outages)
DO_NOT_CONTACT = "do_not_contact"  # the member asked not to be contacted: no marketing, no recalls
APPOINTMENT_AHEAD = "appointment_ahead"  # a recall to a patient who has booked since it was queued
SUPPRESSION_REASONS = (NO_CONSENT, OPTED_OUT, QUIET_HOURS, CAP, INVALID_ADDRESS, NO_ADDRESS, MEMBER_CLOSED,
                       MEMBER_MERGED, UNKNOWN_MEMBER, EXPIRED, DO_NOT_CONTACT, APPOINTMENT_AHEAD)

CAP_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class QuietHours:
    """Local hours in which nothing is sent (``21:00-08:00`` crosses midnight); start == end: none."""

    start: time | None
    end: time | None

    @classmethod
    def parse(cls, text: Any) -> QuietHours:
        if text in (None, "", False) or str(text).strip().lower() in ("off", "none", "false"):
            return cls(None, None)
        first, sep, second = str(text).partition("-")
        if not sep:
            raise ValueError(f"quiet hours must look like 21:00-08:00, not {text!r}")
        return cls(_parse_time(first), _parse_time(second))

    @property
    def enabled(self) -> bool:
        return self.start is not None and self.end is not None and self.start != self.end

    def contains(self, moment: time) -> bool:
        if not self.enabled:
            return False
        assert self.start is not None and self.end is not None
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def release(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """``moment`` itself outside quiet hours; otherwise the end of these quiet hours (UTC)."""
        local = as_utc(moment).astimezone(zone)
        if not self.contains(local.time().replace(tzinfo=None)):
            return as_utc(moment)
        assert self.start is not None and self.end is not None
        day = local.date()
        if self.start > self.end and local.time().replace(tzinfo=None) >= self.start:
            day += timedelta(days=1)  # the evening part: the quiet hours end tomorrow morning
        return at_local(day, self.end, zone)


def _parse_time(text: str) -> time:
    hours, _, minutes = text.strip().partition(":")
    return time(int(hours), int(minutes or 0))


def at_local(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """``day`` at ``clock`` in the group's zone, as UTC (a wall time skipped by DST moves forward)."""
    local = datetime.combine(day, clock, tzinfo=zone)
    return as_utc(local)


@dataclass(frozen=True)
class Contact:
    """What members tells us about reaching a member (``members.get_contact``)."""

    member_id: str
    status: str
    language: str | None
    consents: dict[str, bool]
    addresses: dict[str, str | None]
    full_name: str | None = None
    home_branch: str | None = None
    tier: str | None = None

    @classmethod
    def from_rpc(cls, data: dict[str, Any]) -> Contact:
        return cls(
            member_id=str(data["member_id"]), status=data.get("status") or "active",
            language=data.get("preferred_language"), consents=dict(data.get("consents") or {}),
            addresses={"sms": data.get("phone"), "email": data.get("email"), "wechat": data.get("wechat_openid"),
                       "line": data.get("line_user_id"), "inbox": str(data["member_id"])},
            full_name=data.get("full_name"), home_branch=data.get("home_branch"), tier=data.get("tier"),
        )


@dataclass(frozen=True)
class Preferences:
    """What the member chose in notifications: channel order and opt-outs (consents live in members)."""

    channels: tuple[str, ...] | None = None
    marketing_opt_out: bool = False
    service_opt_out: bool = False
    do_not_contact: bool = False  # no marketing and no outreach (recalls), whatever the consents say


@dataclass(frozen=True)
class Send:
    channel: str
    address: str


@dataclass(frozen=True)
class Suppress:
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Defer:
    until: datetime
    reason: str


def choose_channel(contact: Contact, prefs: Preferences, requested: str | None, available: set[str] | frozenset[str],
                   default_order: tuple[str, ...]) -> Send | Suppress:
    """The first channel, in the member's order, that is set up, consented to and has a valid address."""
    order = (requested,) if requested else (prefs.channels or default_order)
    refusals: dict[str, str] = {}
    for channel in order:
        if channel not in available:
            refusals[channel] = "channel not set up"
            continue
        if channel in PUSH_CHANNELS and not contact.consents.get(channel, False):
            refusals[channel] = NO_CONSENT
            continue
        address = contact.addresses.get(channel)
        if not address:
            refusals[channel] = NO_ADDRESS
            continue
        problem = address_problem(channel, address)
        if problem:
            refusals[channel] = INVALID_ADDRESS
            continue
        return Send(channel, address)
    detail = ", ".join(f"{channel}: {why}" for channel, why in refusals.items()) or "no channel to try"
    reasons = set(refusals.values())
    # name the most actionable reason: a wrong address can be fixed, a missing consent asked for
    for reason in (INVALID_ADDRESS, NO_CONSENT, NO_ADDRESS):
        if reason in reasons:
            return Suppress(reason, detail)
    return Suppress(NO_ADDRESS, detail)


def decide(*, category: str, contact: Contact, prefs: Preferences, requested_channel: str | None,
           available: set[str] | frozenset[str], default_order: tuple[str, ...], now: datetime, zone: ZoneInfo,
           quiet: QuietHours, expires_at: datetime | None, marketing_sent: int, cap: int,
           outreach: bool = False) -> Send | Suppress | Defer:
    """Send now (on which channel), wait (quiet hours) or suppress (why) one message to one member.

    ``outreach``: a service message we start, not the member (a recall): "do not contact" stops it too."""
    if contact.status == "closed":
        return Suppress(MEMBER_CLOSED, "the membership is closed")
    if contact.status == "merged":
        return Suppress(MEMBER_MERGED, "merged into another member")
    if expires_at is not None and as_utc(now) >= as_utc(expires_at):
        return Suppress(EXPIRED, "its moment passed before it could be sent")
    if prefs.do_not_contact and (category == MARKETING or outreach):
        return Suppress(DO_NOT_CONTACT, "the member asked not to be contacted")
    if category == MARKETING:
        if prefs.marketing_opt_out:
            return Suppress(OPTED_OUT, "the member opted out of marketing messages")
        if not contact.consents.get("marketing", False):
            return Suppress(NO_CONSENT, "no consent to marketing messages")
    elif prefs.service_opt_out:
        return Suppress(OPTED_OUT, "the member opted out of service messages")
    choice = choose_channel(contact, prefs, requested_channel, available, default_order)
    if isinstance(choice, Suppress):
        return choice
    release = quiet.release(now, zone)
    if release > as_utc(now):
        if expires_at is not None and release >= as_utc(expires_at):
            return Suppress(QUIET_HOURS, "quiet hours last until after the message's moment")
        return Defer(release, QUIET_HOURS)
    if category == MARKETING and marketing_sent >= cap:
        return Suppress(CAP, f"{marketing_sent} marketing messages in the last 7 days (cap {cap})")
    return choice


def release_time(due: datetime, quiet: QuietHours, zone: ZoneInfo) -> datetime:
    """When a message due at ``due`` may go: ``due`` itself, or the morning after quiet hours."""
    return quiet.release(due, zone)


def retry_delay(attempt: int, base: float, cap: float, retry_after: float | None = None,
                rand: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, capped, jittered.

    Jitter takes the wait uniformly from the upper half of the exponential step, so that messages failed
    together (a provider outage) do not come back together. A provider's Retry-After is a floor.
    """
    step = min(cap, base * 2 ** max(attempt - 1, 0))
    rand = rand or random.Random()
    delay = step / 2 + rand.random() * step / 2
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def cap_window_start(now: datetime) -> datetime:
    """Marketing messages sent after this moment count against the weekly cap (a rolling 7 days)."""
    return as_utc(now) - CAP_WINDOW
