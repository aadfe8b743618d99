"""Journeys that managers compose (SOPs, no code): what a definition must hold before it runs, which facts
start it, what a run does next, and what a dry run counts. No I/O.

A definition (``schemas.JourneyDefinitionSchema``, stored as JSON per version)::

    {"name": "Implant post-op", "category": "service", "branches": ["SH01"],
     "trigger": {"event": "visit_completed", "categories": ["implant"], "tiers": [], "segments": []},
     "steps": [{"wait": {"days": 3}},
               {"message": {"texts": {"en": {"subject": "...", "text": "..."}, "zh-Hans": ..., ...}}},
               {"task": {"queue": "consultant", "due_in_days": 0, "note": "Call about the implant"}}],
     "exits": ["appointment_booked"]}

or a schedule instead of an event: ``"trigger": {"schedule": {"every": "week", "weekday": 1}, "segments": ["B"]}``.
A run walks the steps in order: messages and tasks are taken at once, a wait makes the run due later. "Do not
contact" always ends a run (whatever ``exits`` says); the exits listed end it when that fact happens to the
member while the run is going.

A message is a manager's words (``texts``) or a shipped template (``"template": "post_visit_advice"``: the
template files' words in four languages, reading the trigger's facts); it may carry a coupon (``"coupon":
{"reward_id": ...}``, a coupon reward of points' catalogue, issued when the message goes) and lapse
(``"expires_after"``, from the trigger's time). A wait may end at a local time (``{"days": 7, "at": "10:00"}``).
The shipped journeys that fit this model are such definitions (``shipped``), seeded as journeys like any other.

A journey of waits and messages only, with no exits and no tier or segment condition, is **planned** when its
run starts: nothing that could happen while it waits would change what it sends (what can take a message back
— the cause cancelled, a retirement, do not contact at send time — reaches the queued message itself), so its
messages are queued at once, due when their waits end, and the run is finished. Others are **walked** by the
scheduler step by step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

from services.kit.clock import isoformat, local_date
from services.notifications.rules.sending import at_local

TRIGGER_EVENTS = ("visit_completed", "appointment_booked", "appointment_cancelled", "tier_changed",
                  "member_enrolled")
"""The events a composed journey may start on (each one's handler in ``service.py`` records its fact)."""
EXIT_EVENTS = ("appointment_booked", "visit_completed")
"""Facts that may end a member's run (``exits``); "do not contact" ends every run without being listed."""
DO_NOT_CONTACT = "do_not_contact"
EVERY = ("day", "week", "month", "once")
MAX_WAIT = timedelta(days=366)
MAX_STEPS = 20
FACT_RETENTION = timedelta(days=14)
DRY_RUN_WINDOW = timedelta(days=7)
TEMPLATE_FIELDS = ("subject", "text")
VARIABLES = ("member", "branch", "group", "link", "channel", "coupon")
"""What a composed message may say: ``{{ member.name }}``, ``{{ branch.name }}``, ``{{ branch.phone }}``,
``{{ branch.address }}``, ``{{ group.name }}``, ``{{ link }}``; with a coupon, ``{{ coupon.code }}``,
``{{ coupon.value_minor }}``, ``{{ coupon.currency }}``, ``{{ coupon.rate_bp }}``, ``{{ coupon.valid_until }}``,
``{{ coupon.title }}``."""
TEMPLATES = {"welcome": "member_enrolled", "tier_upgrade": "tier_changed", "post_visit_advice": "visit_completed",
             "satisfaction_survey": "visit_completed"}
"""Shipped templates a composed message may use instead of its own words, each with the trigger whose facts it
reads (a tier upgrade's tiers, a visit's categories)."""
VISIT_KINDS = ("first", "return", "emergency", "free_clinic", "event")  # records' (``records.events.VISIT_KINDS``)

_SANDBOX = SandboxedEnvironment()
UTC_ZONE = ZoneInfo("UTC")


def wait_of(step: dict[str, Any]) -> timedelta:
    """A wait's length (one ending at a local time: its whole days)."""
    wait = step["wait"]
    return timedelta(days=int(wait.get("days") or 0), hours=int(wait.get("hours") or 0))


def after(moment: datetime, span: dict[str, Any], zone: ZoneInfo) -> datetime:
    """``moment`` plus a wait or a lapse: ``days`` and ``hours``, or ``days`` later at the local time ``at``."""
    if span.get("at"):
        day = local_date(moment, zone) + timedelta(days=int(span.get("days") or 0))
        return at_local(day, time.fromisoformat(span["at"]), zone)
    return moment + timedelta(days=int(span.get("days") or 0), hours=int(span.get("hours") or 0))


def kind_of(step: dict[str, Any]) -> str:
    return next(iter(step))


def problems(definition: dict[str, Any], *, languages: Iterable[str], queues: Iterable[str],
             branches: Iterable[str], segments: Iterable[str], categories: Iterable[str]) -> dict[str, list[str]]:
    """What stops ``definition`` from running (field path → messages); empty when it may be activated.

    The schema already refused what cannot be read; this is what a draft may still lack (a language, a step)
    and what only the group's configuration and the other services' vocabularies can judge (a branch, a queue).
    Tier names are the programme's (members'): a tier no member has simply matches nobody."""
    found: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        found.setdefault(field, []).append(message)

    trigger, steps = definition.get("trigger") or {}, definition.get("steps") or []
    if bool(trigger.get("event")) == bool(trigger.get("schedule")):
        add("trigger", "Give either an event or a schedule.")
    if trigger.get("event") and trigger["event"] not in TRIGGER_EVENTS:
        add("trigger.event", f"Unknown event; one of {', '.join(TRIGGER_EVENTS)}.")
    schedule = trigger.get("schedule")
    if schedule:
        if schedule.get("every") == "week" and not schedule.get("weekday"):
            add("trigger.schedule.weekday", "A weekly schedule names its weekday (1 = Monday … 7 = Sunday).")
        if schedule.get("every") == "month" and not schedule.get("day"):
            add("trigger.schedule.day", "A monthly schedule names its day (1–28).")
        if schedule.get("every") == "once" and not schedule.get("on"):
            add("trigger.schedule.on", "A one-off schedule names its date.")
    for name, allowed in (("segments", segments), ("categories", categories)):
        known = set(allowed)
        for value in trigger.get(name) or ():
            if value not in known:
                add(f"trigger.{name}", f"Unknown {name[:-1]} {value!r}.")
    for branch in definition.get("branches") or ():
        if branch not in set(branches):
            add("branches", f"Unknown branch {branch!r}.")
    for name in ("categories", "visit_kinds", "first_visit"):
        if trigger.get(name) and trigger.get("event") != "visit_completed":
            add(f"trigger.{name}", f"Only a visit_completed trigger has {name.replace('_', ' ')}.")
    for value in trigger.get("visit_kinds") or ():
        if value not in VISIT_KINDS:
            add("trigger.visit_kinds", f"Unknown visit kind {value!r}.")
    if not steps:
        add("steps", "A journey needs at least one step.")
    if not any(kind_of(step) in ("message", "task") for step in steps):
        add("steps", "A journey needs a message or a task: waits alone do nothing.")
    total = timedelta()
    wanted_languages, known_queues = tuple(languages), set(queues)
    for index, step in enumerate(steps):
        kind, where = kind_of(step), f"steps.{index}"
        if kind == "wait":
            wait = wait_of(step)
            total += wait
            if wait <= timedelta() and not step["wait"].get("at"):
                add(f"{where}.wait", "A wait lasts at least an hour (or ends at a local time).")
        elif kind == "message":
            message = step["message"]
            template = message.get("template")
            if bool(template) == bool(message.get("texts")):
                add(f"{where}.message", "Give either texts (your own words) or a shipped template.")
            if template:
                if template not in TEMPLATES:
                    add(f"{where}.message.template", f"Unknown template; one of {', '.join(TEMPLATES)}.")
                elif TEMPLATES[template] != trigger.get("event"):
                    add(f"{where}.message.template",
                        f"The {template} template reads the facts of a {TEMPLATES[template]} trigger.")
            elif message.get("texts"):
                _check_texts(message, f"{where}.message", wanted_languages, add)
            if template and message.get("coupon"):
                add(f"{where}.message.coupon", "A coupon goes with your own words (texts), which can show it.")
        elif kind == "task":
            if step["task"].get("queue") not in known_queues:
                add(f"{where}.task.queue", f"Unknown queue; one of {', '.join(sorted(known_queues))}.")
    if total > MAX_WAIT:
        add("steps", f"The waits add up to more than {MAX_WAIT.days} days.")
    return found


def _check_texts(message: dict[str, Any], where: str, languages: tuple[str, ...], add: Any) -> None:
    """A manager's words: every language, each part a template of the known variables (``coupon`` only when
    the message carries one)."""
    texts = message["texts"]
    allowed = set(VARIABLES) if message.get("coupon") else set(VARIABLES) - {"coupon"}
    for language in languages:
        text = texts.get(language)
        if not text:
            add(f"{where}.texts.{language}", "Missing: every message is written in every language.")
            continue
        for part in TEMPLATE_FIELDS:
            try:
                unknown = meta.find_undeclared_variables(_SANDBOX.parse(text.get(part) or "")) - allowed
            except TemplateSyntaxError as error:
                add(f"{where}.texts.{language}.{part}", f"Not a valid template: {error.message}.")
            else:
                if unknown:
                    add(f"{where}.texts.{language}.{part}",
                        f"Unknown {', '.join(sorted(unknown))}; a message may use {', '.join(sorted(allowed))}.")
            if not (text.get(part) or "").strip():
                add(f"{where}.texts.{language}.{part}", "Must not be empty.")


def coupons_of(definition: dict[str, Any]) -> list[tuple[str, str]]:
    """(field path, reward id) of each coupon the definition's messages carry (points judges the ids)."""
    return [(f"steps.{index}.message.coupon.reward_id", step["message"]["coupon"]["reward_id"])
            for index, step in enumerate(definition.get("steps") or ())
            if kind_of(step) == "message" and (step["message"].get("coupon") or {}).get("reward_id")]


# -- starting ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fact:
    """A trigger event as journeys read it: who, why (the cause a run is unique for), where, and what."""

    event: str
    member_id: str
    cause: str
    branch: str | None
    occurred_at: datetime
    facts: dict[str, Any]  # a visit's categories, kind and time; a tier change's tiers; ids, never personal data
    at: datetime | None = None  # when it happened, by its producer (a visit's completion), if not ``occurred_at``

    @property
    def anchor(self) -> datetime:
        """The moment a planned run's waits count from."""
        return self.at or self.occurred_at


def fact_of(event_type: str, event: dict[str, Any], now: datetime) -> Fact:
    """The ``Fact`` of a trigger event (in domain values, as its producer's contract loads it)."""
    member_id = str(event["member_id"])
    if event_type == "visit_completed":
        return Fact(event_type, member_id, f"visit:{event['visit_id']}", event["branch"], now,
                    {"categories": sorted({item["category"] for item in event["items"]}),
                     "visit_id": str(event["visit_id"]), "kind": event["kind"],
                     "first_visit": bool(event["first_visit"]), "completed_at": isoformat(event["completed_at"])},
                    at=event["completed_at"])
    if event_type in ("appointment_booked", "appointment_cancelled"):
        return Fact(event_type, member_id, f"appointment:{event['appointment_id']}", event.get("branch"), now, {})
    if event_type == "tier_changed":
        return Fact(event_type, member_id, f"tier:{event['to_tier']}:{event['effective_at']}", None, now,
                    {"tier": event["to_tier"], "direction": event["direction"], "from_tier": event["from_tier"],
                     "to_tier": event["to_tier"]})
    if event_type == "member_enrolled":
        return Fact(event_type, member_id, f"member:{member_id}", event.get("home_branch"), now,
                    {"home_branch": event.get("home_branch")})
    raise ValueError(f"{event_type} does not start journeys")


def starts(definition: dict[str, Any], fact: Fact) -> bool:
    """Whether ``fact`` starts a run of ``definition`` (tier and segment of the member are checked later, at the
    run's first step, from members: a visit does not say them)."""
    trigger = definition["trigger"]
    if trigger.get("event") != fact.event:
        return False
    branches = definition.get("branches") or ()
    if branches and fact.branch not in branches:
        return False
    if trigger.get("categories") and not set(trigger["categories"]) & set(fact.facts.get("categories") or ()):
        return False
    if trigger.get("visit_kinds") and fact.facts.get("kind") not in trigger["visit_kinds"]:
        return False
    if trigger.get("first_visit") and not fact.facts.get("first_visit"):
        return False
    if fact.event == "tier_changed":
        if fact.facts.get("direction") != "up":
            return False
        if trigger.get("tiers") and fact.facts.get("tier") not in trigger["tiers"]:
            return False
    return True


def member_fits(definition: dict[str, Any], tier: str | None, segment: str | None) -> bool:
    """Whether a member's tier and segment meet the trigger's conditions (none given: everyone)."""
    trigger = definition["trigger"]
    if trigger.get("tiers") and tier not in trigger["tiers"]:
        return False
    return not (trigger.get("segments") and segment not in trigger["segments"])


def needs_member(definition: dict[str, Any]) -> bool:
    """Whether a run must ask members for the member's tier or segment before its first step."""
    trigger = definition["trigger"]
    return bool(trigger.get("segments")) or (bool(trigger.get("tiers")) and trigger.get("event") != "tier_changed")


def scheduled_on(schedule: dict[str, Any], day: date) -> bool:
    """Whether a schedule trigger fires on the local ``day``."""
    every = schedule["every"]
    if every == "day":
        return True
    if every == "week":
        return day.isoweekday() == schedule["weekday"]
    if every == "month":
        return day.day == schedule["day"]
    return day == schedule["on"] if isinstance(schedule["on"], date) else day.isoformat() == schedule["on"]


def cause_of(definition: dict[str, Any], fact: Fact) -> str:
    """What a run is unique for: the fact's cause, or the member (a journey sent once per member)."""
    return "member" if definition.get("once_per_member") else fact.cause


# -- running ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Planned:
    """A message of a planned run: its step, when it is due and when it lapses."""

    index: int
    message: dict[str, Any]
    due_at: datetime
    expires_at: datetime | None


def plannable(definition: dict[str, Any]) -> bool:
    """Whether a run can be planned when it starts (waits and messages only, no exits, nothing to ask members)."""
    return (all(kind_of(step) in ("wait", "message") for step in definition["steps"])
            and not definition.get("exits") and not needs_member(definition))


def plan(definition: dict[str, Any], anchor: datetime, now: datetime, zone: ZoneInfo) -> list[Planned]:
    """A plannable run's messages: each due when the waits before it end (counted from the trigger's time, never
    before now), lapsing ``expires_after`` the trigger's time; one whose lapse already passed is left out."""
    planned, moment = [], anchor
    for index, step in enumerate(definition["steps"]):
        if kind_of(step) == "wait":
            moment = after(moment, step["wait"], zone)
            continue
        message = step["message"]
        expires = after(anchor, message["expires_after"], zone) if message.get("expires_after") else None
        if expires is not None and expires <= now:
            continue
        planned.append(Planned(index, message, max(moment, now), expires))
    return planned


@dataclass(frozen=True)
class Progress:
    """What a run does now: the steps to take (index, step), then where it stands."""

    actions: list[tuple[int, dict[str, Any]]]
    next_step: int
    due_at: datetime | None  # None: the journey is done


def advance(steps: list[dict[str, Any]], step: int, now: datetime, zone: ZoneInfo = UTC_ZONE) -> Progress:
    """From step ``step`` (due now): take messages and tasks until a wait, which makes the run due later."""
    actions = []
    index = step
    while index < len(steps):
        current = steps[index]
        if kind_of(current) == "wait":
            return Progress(actions, index + 1, after(now, current["wait"], zone))
        actions.append((index, current))
        index += 1
    return Progress(actions, index, None)


def pick_texts(texts: dict[str, dict[str, str]], language: str | None, default: str) -> tuple[str, dict[str, str]]:
    """The words of a composed message in the member's language, else the group's, else any there is."""
    for candidate in (language, default, "en"):
        if candidate and candidate in texts:
            return candidate, texts[candidate]
    first = sorted(texts)[0]
    return first, texts[first]


def render_text(source: str, variables: dict[str, Any]) -> str:
    """A manager's text rendered in the sandbox (no attribute tricks): ``{{ member.name }}``, ``{{ branch.name }}``."""
    return _SANDBOX.from_string(source).render(**variables)


# -- the dry run -----------------------------------------------------------------------------------------

def dry_run(definition: dict[str, Any], facts: list[Fact], exits: list[Fact]) -> list[dict[str, Any]]:
    """Counts by step of the runs the last week's ``facts`` would have started (one per member and cause), less
    those ``exits`` (the same members' exit facts) would have ended before the step's time came."""
    started: dict[tuple[str, str], Fact] = {}
    for fact in sorted(facts, key=lambda item: item.occurred_at):  # once per member: the first fact starts it
        if starts(definition, fact):
            started.setdefault((fact.member_id, cause_of(definition, fact)), fact)
    exit_times: dict[str, list[datetime]] = {}
    for fact in exits:
        if fact.event in (definition.get("exits") or ()):
            exit_times.setdefault(fact.member_id, []).append(fact.occurred_at)
    counts, offset = [], timedelta()
    for index, step in enumerate(definition["steps"]):
        reaching = sum(1 for fact in started.values()
                       if not any(fact.occurred_at < at <= fact.occurred_at + offset
                                  for at in exit_times.get(fact.member_id, ())))
        counts.append({"step": index, "kind": kind_of(step), "members": reaching})
        if kind_of(step) == "wait":  # the members who start waiting; the steps after it, those still there
            offset += wait_of(step)
    return counts


# -- the shipped journeys ----------------------------------------------------------------------------------

def _span(length: timedelta) -> dict[str, int]:
    return {"days": length.days, "hours": length.seconds // 3600}


def shipped(post_visit_delay: timedelta, post_visit_window: timedelta, survey_after_days: int,
            send_time: time) -> dict[str, dict[str, Any]]:
    """The shipped journeys that fit the model, as definitions (code → definition), from the settings' timings:
    seeded as active journeys (``composed.seed``) and from then on the managers' like any other.

    - welcome: on enrolment; a tier upgrade's congratulations (``tier_changed`` starts only upgrades);
    - post-visit advice: ``post_visit_delay`` after the visit's completion (not for event attendees), lapsing
      ``post_visit_window`` after it;
    - satisfaction survey: after a first visit, ``survey_after_days`` later at the send time (local), once per
      member, lapsing a week after that day."""
    at = send_time.strftime("%H:%M")

    def journey(name: str, trigger: dict[str, Any], steps: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
        return {"name": name, "category": "service", "branches": [], "trigger": trigger, "steps": steps, "exits": [],
                **more}

    return {
        "welcome": journey("Welcome", {"event": "member_enrolled"}, [{"message": {"template": "welcome"}}]),
        "tier_upgrade": journey("Tier upgrade congratulations", {"event": "tier_changed"},
                                [{"message": {"template": "tier_upgrade"}}]),
        "post_visit_advice": journey(
            "Post-visit advice", {"event": "visit_completed", "visit_kinds": [k for k in VISIT_KINDS if k != "event"]},
            [{"wait": _span(post_visit_delay)},
             {"message": {"template": "post_visit_advice", "expires_after": _span(post_visit_window)}}]),
        "satisfaction_survey": journey(
            "First-visit satisfaction survey", {"event": "visit_completed", "first_visit": True},
            [{"wait": {"days": survey_after_days, "at": at}},
             {"message": {"template": "satisfaction_survey",
                          "expires_after": {"days": survey_after_days + 8, "at": "00:00"}}}],
            once_per_member=True),
    }
