"""Care journeys: which message each event or day calls for, to whom, when, and once for which cause. No I/O.

A journey turns a fact (an enrolment, a booking, a birthday) into ``Plan``s. A plan's ``cause`` makes it
unique: ``<journey>:<cause>`` is the delivery's dedupe key, so the same cause never yields a second
message however often the fact is seen (redelivered events, a scan run twice, two replicas).
``cause_ref`` names what can take the message back (an appointment cancelled, a visit cancelled).
Contexts carry ids and facts only, never personal data: names and addresses are read at send time.

Welcome, tier-upgrade congratulations, post-visit advice and the first-visit survey are no longer planned here:
they are composed journeys seeded as defaults (``rules.composed.shipped``, ``composed.seed``), run by the one
engine of composed journeys, their templates and samples still listed below. The journeys planned here do not
fit that model (a trigger, waits, messages, tasks, exits), each for its reason:

- appointment confirmation and reminders: a per-branch schedule of reminders counted back from a start time
  that moves with every reschedule, and signed confirm/cancel links made per message at send time;
- the points digest and the expiry warning: one message for many postings or lots, its figures summed when
  it goes (``digests``), not one message per fact;
- recalls: escalation state per member and recall type (attempts, postponement while a visit is booked, the
  reactivation list and its contact cap, ``recalls``);
- birthday, festivals, seasonal tips: daily scans over members' birthdays, lunar calendars and configured
  seasons, paged resumably (``scans``); the birthday's coupon depends on the member's tier;
- segment B's monthly reminder: it would be a schedule journey with a segment condition, but such a run asks
  members for the member's segment again at its first step (one RPC per member, every month), where the scan
  takes the segment list as it pages it;
- the tier review notice: it would need a trigger of its own (members' ``tier_review_notice``) and a lapse at
  its effective day; not done yet;
- the waitlist offers: records' offers, lapsing with the offer and taken back by it when the slot goes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.kit.clock import as_utc, isoformat
from services.notifications.events import JOURNEY_CODES
from services.notifications.rules.sending import MARKETING, SERVICE, at_local
from services.notifications.settings import Settings


@dataclass(frozen=True)
class Journey:
    code: str
    category: str  # service (care, account) or marketing (consent, opt-out and weekly cap apply)
    manual: bool = False  # staff and other services may schedule it with ``schedule``
    sample: dict[str, Any] = field(default_factory=dict)  # a context for previews


_APPOINTMENT = {"appointment_id": "a-1001", "branch": "SH01", "starts_at": "2026-12-01T02:30:00Z",
                "ends_at": "2026-12-01T03:30:00Z", "service_category": "cleaning", "doctor_id": "d-7"}

JOURNEYS: dict[str, Journey] = {j.code: j for j in (
    Journey("welcome", SERVICE, sample={"home_branch": "SH01"}),
    Journey("tier_upgrade", SERVICE, sample={"from_tier": "silver", "to_tier": "gold"}),
    Journey("tier_review_notice", SERVICE,
            sample={"current_tier": "gold", "next_tier": "silver", "effective_on": "2026-12-24"}),
    Journey("points_digest", SERVICE, sample={"day": "2026-11-23", "points": 320, "postings": 2}),
    Journey("points_expiring", SERVICE, sample={"expires_on": "2026-12-31", "points": 1200}),
    Journey("appointment_confirmation", SERVICE, sample={**_APPOINTMENT, "rescheduled": False}),
    Journey("appointment_reminder", SERVICE, sample={**_APPOINTMENT, "hours_before": 24}),
    Journey("post_visit_advice", SERVICE, sample={"visit_id": "v-1", "branch": "SH01",
                                                  "categories": ["implant"], "completed_at": "2026-11-23T03:00:00Z"}),
    Journey("satisfaction_survey", SERVICE, sample={"visit_id": "v-1", "branch": "SH01",
                                                    "completed_at": "2026-11-23T03:00:00Z"}),
    Journey("recall", SERVICE, sample={"recall_type": "cleaning", "due_on": "2027-05-20", "attempt": 1}),
    Journey("birthday", MARKETING, sample={"day": "2026-11-23", "coupon": {
        "coupon_id": "c-1", "code": "BDAY-7K2Q", "title": "Birthday gift", "category": "cleaning",
        "value_minor": 5000, "currency": "CNY", "rate_bp": None, "valid_until": "2026-12-23"}}),
    Journey("festival", MARKETING, sample={"festival": "mid_autumn", "day": "2026-09-25"}),
    Journey("seasonal_tip", MARKETING, sample={"season": "winter", "day": "2026-12-01"}),
    Journey("segment_b_monthly", MARKETING, sample={"month": "2026-12"}),
    Journey("results_ready", SERVICE, manual=True, sample={"branch": "SH01"}),
    Journey("member_day", MARKETING, manual=True, sample={"day": "2026-12-08"}),
    Journey("waitlist_offer", SERVICE, sample={"offer_id": "o-1", "branch": "SH01", "doctor_id": "d-7",
                                               "starts_at": "2026-12-01T02:30:00Z", "service_category": "cleaning",
                                               "expires_at": "2026-11-30T06:00:00Z"}),
    Journey("waitlist_gone", SERVICE, sample={"offer_id": "o-1", "branch": "SH01",
                                              "starts_at": "2026-12-01T02:30:00Z"}),
    # a composed journey's message: its words travel in the context (``rules.composed``), its category is the
    # journey's own (``Plan.kind``)
    Journey("composed", SERVICE, sample={"journey_id": "j-1", "version": 1, "branch": "SH01", "texts": {
        "en": {"subject": "After your implant", "text": "Dear {{ member.name }}, rest today and call {{ branch.name }}."},
        "zh-Hans": {"subject": "种植后须知", "text": "{{ member.name }}，您好：今天请多休息。"},
        "zh-Hant": {"subject": "植牙後須知", "text": "{{ member.name }}，您好：今天請多休息。"},
        "es": {"subject": "Después de su implante", "text": "Estimado/a {{ member.name }}, descanse hoy."}}}),
)}
COMPOSED = "composed"
OUTREACH_JOURNEYS = ("recall", COMPOSED)
"""Service messages we start rather than the member (a recall, a composed journey's): "do not contact" stops
them as it stops marketing; confirmations, reminders, results and offers the member asked for still go."""

if tuple(JOURNEYS) != JOURNEY_CODES:  # the codes the events carry (events.py) name exactly these journeys
    raise RuntimeError(f"journeys.JOURNEYS and events.JOURNEY_CODES differ: {set(JOURNEYS) ^ set(JOURNEY_CODES)}")


@dataclass(frozen=True)
class Plan:
    """A message to queue: one member, one journey, one cause."""

    journey: str
    member_id: str
    cause: str
    due_at: datetime
    expires_at: datetime | None = None
    context: dict[str, Any] = field(default_factory=dict)
    cause_ref: str | None = None
    channel: str | None = None  # None: the member's best channel, chosen at send time
    kind: str | None = None  # service or marketing, when not the journey's own (a composed journey's choice)

    @property
    def dedupe_key(self) -> str:
        key = f"{self.journey}:{self.cause}"
        return f"{key}:{self.channel}" if self.channel else key

    @property
    def category(self) -> str:
        return self.kind or JOURNEYS[self.journey].category


def parse_time(value: str) -> datetime:
    """An ISO 8601 UTC time from an event (``...Z``) as an aware datetime."""
    return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def day_at(day: date, settings: Settings, zone: ZoneInfo, now: datetime) -> datetime:
    """The send time of ``day`` (local), or now if that moment already passed (a late scan)."""
    return max(at_local(day, settings.send_time, zone), as_utc(now))


def end_of_day(day: date, zone: ZoneInfo) -> datetime:
    return at_local(day + timedelta(days=1), datetime.min.time(), zone)


def appointment_messages(appointment: dict[str, Any], now: datetime, settings: Settings,
                         rescheduled: bool = False) -> list[Plan]:
    """Confirmation now and reminders before the start (only those still ahead), for this start time.

    ``appointment``: records' ``appointment_booked`` or ``appointment_rescheduled`` in domain values, with the
    ``service_category`` learnt at booking (a reschedule does not repeat it).
    """
    starts_at = appointment["starts_at"]
    if starts_at <= as_utc(now):
        return []
    member_id, appointment_id = str(appointment["member_id"]), str(appointment["appointment_id"])
    context = {"appointment_id": appointment_id, "branch": appointment["branch"], "starts_at": isoformat(starts_at),
               "ends_at": isoformat(appointment["ends_at"]), "service_category": appointment["service_category"],
               "doctor_id": appointment["doctor_id"]}
    cause = f"{appointment_id}:{isoformat(starts_at)}"
    ref = f"appointment:{appointment_id}"
    plans = [Plan("appointment_confirmation", member_id, cause, as_utc(now), expires_at=starts_at,
                  context={**context, "rescheduled": rescheduled}, cause_ref=ref)]
    for offset in settings.reminders_for(appointment["branch"]):
        due = starts_at - offset
        # a reminder whose moment already passed at booking adds nothing to the confirmation just sent
        if due > as_utc(now):
            hours = int(offset.total_seconds() // 3600)
            plans.append(Plan("appointment_reminder", member_id, f"{cause}:{hours}h", due, expires_at=starts_at,
                              context={**context, "hours_before": hours}, cause_ref=ref))
    return plans


def digest_slot(earned_at: datetime, settings: Settings, zone: ZoneInfo) -> tuple[date, datetime]:
    """The local day whose digest counts a posting earned at ``earned_at``, and when that digest goes.

    The digest of day D covers postings from D-1 at the digest time up to D at the digest time.
    """
    local = as_utc(earned_at).astimezone(zone)
    day = local.date()
    if local.time().replace(tzinfo=None) >= settings.digest_time:
        day += timedelta(days=1)
    return day, at_local(day, settings.digest_time, zone)


def points_digest(member_id: str, day: date, due_at: datetime, zone: ZoneInfo) -> Plan:
    return Plan("points_digest", member_id, f"{member_id}:{day.isoformat()}", due_at,
                expires_at=end_of_day(day + timedelta(days=2), zone), context={"day": day.isoformat()})


def points_expiring(event: dict[str, Any], now: datetime, settings: Settings, zone: ZoneInfo) -> Plan:
    """One warning per member and expiry date, however many lots expire that day."""
    member_id, expires_on = str(event["member_id"]), event["expires_on"]
    return Plan("points_expiring", member_id, f"{member_id}:{expires_on.isoformat()}",
                as_utc(now) + settings.expiring_window, expires_at=at_local(expires_on, datetime.min.time(), zone),
                context={"expires_on": expires_on.isoformat()})


def birthday_month_days(day: date) -> list[str]:
    """The birthdays greeted on ``day``: its own, and 29 February on 28 February of a common year."""
    days = [day.strftime("%m-%d")]
    if (day.month, day.day) == (2, 28) and not _leap(day.year):
        days.append("02-29")
    return days


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def birthday(member: dict[str, Any], day: date, now: datetime, settings: Settings, zone: ZoneInfo) -> Plan:
    coupon = settings.coupon_for(member.get("tier"))
    return Plan("birthday", member["member_id"], f"{member['member_id']}:{day.year}", day_at(day, settings, zone, now),
                expires_at=end_of_day(day + timedelta(days=2), zone),
                context={"day": day.isoformat(), "tier": member.get("tier"), "coupon_spec": coupon})


def festival(member_id: str, code: str, day: date, now: datetime, settings: Settings, zone: ZoneInfo) -> Plan:
    return Plan("festival", member_id, f"{code}:{day.year}:{member_id}", day_at(day, settings, zone, now),
                expires_at=end_of_day(day, zone), context={"festival": code, "day": day.isoformat()})


def seasonal_tip(member_id: str, season: str, day: date, now: datetime, settings: Settings, zone: ZoneInfo) -> Plan:
    return Plan("seasonal_tip", member_id, f"{season}:{day.year}:{member_id}", day_at(day, settings, zone, now),
                expires_at=end_of_day(day + timedelta(days=6), zone), context={"season": season, "day": day.isoformat()})


def segment_b_monthly(member_id: str, day: date, now: datetime, settings: Settings, zone: ZoneInfo) -> Plan:
    month = day.strftime("%Y-%m")
    return Plan("segment_b_monthly", member_id, f"{member_id}:{month}", day_at(day, settings, zone, now),
                expires_at=end_of_day(day + timedelta(days=6), zone), context={"month": month})


def first_recall_attempt(next_recall_on: date, today: date, settings: Settings) -> date:
    """The day of the first recall message: the lead time before the recall is due, never in the past."""
    return max(next_recall_on - timedelta(days=settings.recall_lead_days), today)


def next_recall_attempt(attempts: int, today: date, settings: Settings) -> date | None:
    """The day of the next recall message after ``attempts`` were sent; None when they are used up."""
    if attempts >= settings.recall_max_attempts:
        return None
    return today + timedelta(days=settings.recall_repeat_days)


def recall(member_id: str, recall_type: str, due_on: date, attempt: int, day: date, now: datetime,
           settings: Settings, zone: ZoneInfo) -> Plan:
    # the day too: an attempt held back because the patient had booked (``recalls.postpone``) goes out again
    # as the same attempt on a later day
    return Plan("recall", member_id, f"{member_id}:{recall_type}:{due_on.isoformat()}:{attempt}:{day.isoformat()}",
                day_at(day, settings, zone, now), expires_at=end_of_day(day + timedelta(days=6), zone),
                context={"recall_type": recall_type, "due_on": due_on.isoformat(), "attempt": attempt},
                cause_ref=f"recall:{member_id}:{recall_type}")


def link_for(journey: str, context: dict[str, Any], app_url: str) -> str | None:
    """Where in the members' app a message points (none when the app's address is not configured)."""
    if not app_url:
        return None
    if journey == "satisfaction_survey" and context.get("visit_id"):
        return f"{app_url}/surveys/visits/{context['visit_id']}"
    if journey.startswith("appointment_") and context.get("appointment_id"):
        return f"{app_url}/appointments/{context['appointment_id']}"
    if journey == "recall":
        return f"{app_url}/appointments/new?recall={context.get('recall_type', '')}"
    if journey in ("points_digest", "points_expiring"):
        return f"{app_url}/points"
    if journey == "birthday":
        return f"{app_url}/coupons"
    if journey == "waitlist_offer" and context.get("offer_id"):
        return f"{app_url}/waitlist/offers/{context['offer_id']}"
    return None


def waitlist_offer(event: dict[str, Any], now: datetime) -> Plan:
    """A cancelled slot offered to a waiting patient (records' ``waitlist_slot_offered``): now, until it lapses."""
    member_id, offer_id = str(event["member_id"]), str(event["offer_id"])
    return Plan("waitlist_offer", member_id, offer_id, now, expires_at=as_utc(event["expires_at"]),
                cause_ref=f"waitlist_offer:{offer_id}",
                context={"offer_id": offer_id, "branch": event["branch"], "doctor_id": event["doctor_id"],
                         "starts_at": isoformat(event["starts_at"]), "service_category": event["service_category"],
                         "expires_at": isoformat(event["expires_at"])})


def waitlist_gone(event: dict[str, Any], now: datetime) -> Plan:
    """The offered slot went to another patient (records' ``waitlist_offer_closed``); sent before the slot."""
    member_id, offer_id = str(event["member_id"]), str(event["offer_id"])
    return Plan("waitlist_gone", member_id, offer_id, now, expires_at=as_utc(event["starts_at"]),
                context={"offer_id": offer_id, "branch": event["branch"], "starts_at": isoformat(event["starts_at"])})


def manual(request: dict[str, Any], now: datetime) -> Plan:
    """A message staff or a service asked for: once per given cause (a result id), else once per request."""
    due = as_utc(request["due_at"]) if request.get("due_at") else as_utc(now)
    cause = request.get("cause") or uuid.uuid4().hex
    context = dict(request.get("context") or {})
    return Plan(request["journey"], str(request["member_id"]), f"{request['member_id']}:{cause}", due,
                expires_at=as_utc(request["expires_at"]) if request.get("expires_at") else None,
                context=context, channel=request.get("channel"))


def birthday_coupon_request(spec: dict[str, Any], day: date, currency: str, title: str) -> dict[str, Any]:
    """What ``points.issue_coupon`` is asked for: the tier's coupon from the birthday, for ``valid_days``."""
    request: dict[str, Any] = {"source": "birthday", "title": title[:120], "category": spec.get("category"),
                               "valid_from": day.isoformat(),
                               "valid_until": (day + timedelta(days=int(spec.get("valid_days") or 30))).isoformat()}
    if spec.get("value_minor"):
        request["value"] = {"amount": int(spec["value_minor"]), "currency": spec.get("currency") or currency}
    else:
        request["rate_bp"] = int(spec.get("rate_bp") or 0)
    return request


def reward_coupon_request(reward: dict[str, Any], day: date, currency: str) -> dict[str, Any]:
    """What ``points.issue_coupon`` is asked for a composed message's coupon: the terms of a coupon reward of
    points' catalogue (``points.get_reward``), valid from ``day`` for the reward's days."""
    terms = reward.get("coupon") or {}
    request: dict[str, Any] = {"source": "campaign", "title": str(reward.get("name") or "Coupon")[:120],
                               "category": terms.get("category"), "valid_from": day.isoformat(),
                               "valid_until": (day + timedelta(days=int(terms.get("valid_days") or 30))).isoformat()}
    if terms.get("value"):
        request["value"] = {"amount": int(terms["value"]["amount"]),
                            "currency": terms["value"].get("currency") or currency}
    else:
        request["rate_bp"] = int(terms.get("rate_bp") or 0)
    return request


def sample_coupon(request: dict[str, Any]) -> dict[str, Any]:
    """A coupon as a preview shows it: the request's terms with a sample code."""
    return coupon_facts({"code": "SAMPLE-0000"}, request)


def coupon_facts(issued: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The coupon as templates show it (points answers money as ``{"amount", "currency"}``)."""
    value = issued.get("value") or request.get("value")
    return {"coupon_id": str(issued.get("id") or issued.get("coupon_id") or ""), "code": issued.get("code"),
            "title": issued.get("title") or request["title"], "category": issued.get("category", request["category"]),
            "value_minor": value["amount"] if value else None, "currency": value["currency"] if value else None,
            "rate_bp": issued.get("rate_bp") or request.get("rate_bp"),
            "valid_until": issued.get("valid_until") or request["valid_until"]}
