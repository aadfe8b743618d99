"""The notifications service's settings: every default in one place, read from the ``NOTIFICATIONS`` mapping.

``deploy/config.yml`` sets them from the environment (``${NOTIFICATIONS_QUIET_HOURS:21:00-08:00}``...);
a test passes its own mapping. Provider secrets (SMTP password, SMS token, LINE and WeChat credentials)
live under ``channels`` and are never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any

from services.kit.links import secret_of
from services.notifications.events import CHANNELS
from services.notifications.rules.sending import QuietHours

DEFAULT_BIRTHDAY_COUPON = {"category": "cleaning", "value_minor": 5000, "valid_days": 30}
"""Every tier's birthday coupon unless ``birthday_coupons`` names the tier: 50 CNY off a cleaning."""

SMS_RECEIPT_PATH = "/v1/receipts/sms"
"""The gateway's route for SMS status callbacks (``gateway/routes/receipts.py``)."""

DEFAULT_SEASONS = {"03-01": "spring", "06-01": "summer", "09-01": "autumn", "12-01": "winter"}
"""Local month-day on which each season's oral-health tip goes out."""


def _clock(value: Any, default: time) -> time:
    if value in (None, ""):
        return default
    if isinstance(value, time):
        return value
    if isinstance(value, int):  # YAML 1.1 reads 19:00 as sexagesimal minutes (1140)
        return time(value // 60 % 24, value % 60)
    hours, _, minutes = str(value).partition(":")
    return time(int(hours), int(minutes or 0))


def _bool(value: Any, default: bool) -> bool:
    if value in (None, ""):
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@dataclass(frozen=True)
class Settings:
    scheduler: bool = True  # the dispatch and daily timers run (tests drive them through RPC instead)
    quiet_hours: QuietHours = field(default_factory=lambda: QuietHours.parse("21:00-08:00"))
    marketing_weekly_cap: int = 2  # marketing messages per member in any 7 days
    channel_order: tuple[str, ...] = ("wechat", "line", "sms", "email", "inbox")  # unless the member chose
    batch_size: int = 100  # deliveries claimed per batch
    send_concurrency: int = 10  # deliveries of a batch in flight at once
    dispatch_budget_seconds: float = 5.0  # a timer tick stops claiming new batches after this
    max_attempts: int = 8  # transient failures before a delivery is failed
    retry_base_seconds: float = 60.0  # first retry after ~1 min, doubling, jittered
    retry_max_seconds: float = 3600.0
    lease_seconds: float = 600.0  # a claim older than this was left by a crashed replica
    send_time: time = time(10, 0)  # local time of day-granular messages (survey, recall, birthday...)
    digest_time: time = time(19, 0)  # local time of the daily points digest
    expiring_window: timedelta = timedelta(minutes=15)  # lots expiring the same day join one message
    reminder_offsets: tuple[timedelta, ...] = (timedelta(hours=24), timedelta(hours=2))
    # a branch's own reminder schedule (``reminder_hours_by_branch: {SH01: [168, 48, 2]}``: a week, two days
    # and two hours before), else ``reminder_offsets``
    branch_reminder_offsets: dict[str, tuple[timedelta, ...]] = field(default_factory=dict)
    # the shipped post-visit advice and survey journeys' timings when first seeded (``composed.seed``); after
    # that they are the journeys' own, changed through /v1/journeys (whole hours)
    post_visit_delay: timedelta = timedelta(hours=2)
    post_visit_window: timedelta = timedelta(days=3)  # post-visit advice is pointless after this
    survey_after_days: int = 7
    recall_lead_days: int = 28  # first recall message this long before the recall is due
    recall_repeat_days: int = 42  # then again every six weeks
    recall_max_attempts: int = 4  # then the member goes to the reactivation list (customer service)
    reactivation_contact_cap: int = 2  # calls from the reactivation list per recall; then off the list
    birthday_coupons: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # tier -> coupon (None: none)
    birthday_coupon: dict[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_BIRTHDAY_COUPON))
    festivals: tuple[str, ...] = ("new_year", "spring_festival", "lantern", "dragon_boat", "mid_autumn",
                                  "double_ninth")
    seasons: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SEASONS))
    segment_b_day: int = 1  # day of the month of segment B's health reminder
    daily_batches_per_tick: int = 20  # bounded work per daily-timer tick (the rest resumes next tick)
    app_url: str = ""  # the members' app: survey and appointment links (none when empty)
    public_url: str = ""  # PUBLIC_BASE_URL, the gateway as the world reaches it: absolute links, receipt URLs
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)  # provider settings (secrets inside)
    # APPOINTMENT_LINK_SECRET (top level: records verifies with it): signs reminders' confirm/cancel links
    link_secret: str = field(default="", repr=False)

    def reminders_for(self, branch: str | None) -> tuple[timedelta, ...]:
        """How long before an appointment at ``branch`` its reminders go."""
        return self.branch_reminder_offsets.get(branch or "", self.reminder_offsets)

    def coupon_for(self, tier: str | None) -> dict[str, Any] | None:
        if tier and tier in self.birthday_coupons:
            return self.birthday_coupons[tier]
        return self.birthday_coupon


def settings_from_config(config: dict[str, Any]) -> Settings:
    """The ``NOTIFICATIONS`` mapping of a nameko config as ``Settings`` (missing keys: the defaults)."""
    raw = dict(config.get("NOTIFICATIONS") or {})
    base = Settings()
    public_url = str(config.get("PUBLIC_BASE_URL") or "").rstrip("/")  # top level: the gateway reads it too
    order = raw.get("channel_order") or base.channel_order
    if isinstance(order, str):
        order = [part.strip() for part in order.split(",") if part.strip()]
    unknown = set(order) - set(CHANNELS)
    if unknown:
        raise ValueError(f"NOTIFICATIONS.channel_order names unknown channels {sorted(unknown)}")
    offsets = raw.get("reminder_hours")
    return Settings(
        scheduler=_bool(raw.get("scheduler"), base.scheduler),
        quiet_hours=QuietHours.parse(raw["quiet_hours"]) if "quiet_hours" in raw else base.quiet_hours,
        marketing_weekly_cap=int(raw.get("marketing_weekly_cap", base.marketing_weekly_cap)),
        channel_order=tuple(order),
        batch_size=int(raw.get("batch_size", base.batch_size)),
        send_concurrency=int(raw.get("send_concurrency", base.send_concurrency)),
        dispatch_budget_seconds=float(raw.get("dispatch_budget_seconds", base.dispatch_budget_seconds)),
        max_attempts=int(raw.get("max_attempts", base.max_attempts)),
        retry_base_seconds=float(raw.get("retry_base_seconds", base.retry_base_seconds)),
        retry_max_seconds=float(raw.get("retry_max_seconds", base.retry_max_seconds)),
        lease_seconds=float(raw.get("lease_seconds", base.lease_seconds)),
        send_time=_clock(raw.get("send_time"), base.send_time),
        digest_time=_clock(raw.get("digest_time"), base.digest_time),
        expiring_window=timedelta(seconds=float(raw.get("expiring_window_seconds",
                                                        base.expiring_window.total_seconds()))),
        reminder_offsets=(tuple(timedelta(hours=float(h)) for h in offsets) if offsets
                          else base.reminder_offsets),
        branch_reminder_offsets={str(branch): tuple(timedelta(hours=float(h)) for h in hours)
                                 for branch, hours in (raw.get("reminder_hours_by_branch") or {}).items()},
        post_visit_delay=timedelta(hours=float(raw.get("post_visit_delay_hours", 2))),
        post_visit_window=timedelta(days=float(raw.get("post_visit_window_days", 3))),
        survey_after_days=int(raw.get("survey_after_days", base.survey_after_days)),
        recall_lead_days=int(raw.get("recall_lead_days", base.recall_lead_days)),
        recall_repeat_days=int(raw.get("recall_repeat_days", base.recall_repeat_days)),
        recall_max_attempts=int(raw.get("recall_max_attempts", base.recall_max_attempts)),
        reactivation_contact_cap=int(raw.get("reactivation_contact_cap", base.reactivation_contact_cap)),
        birthday_coupons=dict(raw.get("birthday_coupons") or {}),
        birthday_coupon=(raw["birthday_coupon"] if "birthday_coupon" in raw else base.birthday_coupon),
        festivals=tuple(raw.get("festivals") or base.festivals),
        seasons=dict(raw.get("seasons") or base.seasons),
        segment_b_day=int(raw.get("segment_b_day", base.segment_b_day)),
        daily_batches_per_tick=int(raw.get("daily_batches_per_tick", base.daily_batches_per_tick)),
        app_url=str(raw.get("app_url") or "").rstrip("/"),
        public_url=public_url,
        link_secret=secret_of(config),
        channels=_with_callbacks({name: dict(value or {}) for name, value in (raw.get("channels") or {}).items()},
                                 public_url),
    )


def _with_callbacks(channels: dict[str, dict[str, Any]], public_url: str) -> dict[str, dict[str, Any]]:
    """SMS asks for status callbacks at the gateway's receipt route when the public URL is known (unless
    ``status_callback`` names another address)."""
    sms = channels.get("sms")
    if sms is not None and public_url and not sms.get("status_callback"):
        sms["status_callback"] = f"{public_url}{SMS_RECEIPT_PATH}"
    return channels
