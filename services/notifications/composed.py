"""Composed journeys (a manager's SOP): their versions and states, the runs of members through them, the
trigger facts a dry run replays, and the runner the scheduler calls every second.

- A journey's definition is a version row, never changed: an edit writes version n+1, new runs start on
  the current version, a run already going keeps the version it started on (``journey_runs.version``).
- A run is a row (member, cause, step, due time, the trigger's facts). A plannable run (``rules.plannable``:
  waits and messages only) queues all its messages when it starts, each due when its waits end, and is
  finished at once. Others are walked: the scheduler's timer claims due runs in bounded batches (``FOR UPDATE
  SKIP LOCKED``: two replicas never take one), takes their messages and tasks up to the next wait, and sets
  the run's next due time. A message is a delivery of journey ``composed`` (a manager's words) or of the
  shipped template it names, with the dedupe key ``<journey>:<run>:<step>`` — at most once per run and step,
  sent by the scheduler with the shipped journeys' rules (channel, consents, quiet hours, cap, do not contact;
  a coupon issued through points when it goes). A task is a follow-up in records (``records.open_follow_up``,
  once per run and step). Every message of a run names it (``cause_ref`` ``journey:<journey>:<run>``).
- Exits: "do not contact" ends every walked run when its next step comes; the exits a version lists end the
  member's runs as the fact arrives, taking back their queued messages; a cause taken back (a visit
  cancelled) ends its runs and takes back their messages, planned ones too.
- The shipped journeys that fit (welcome, tier upgrade, post-visit advice, first-visit survey) are seeded as
  active journeys when the service starts (``seed``: fixed ids, once; from then on the managers').
- Versions never change, so a process reads and parses each once (``Catalogue``): a trigger event costs one
  small query for the active journeys' (id, version) pairs.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import TemplateError
from sqlalchemy import Boolean, Integer, Uuid, bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.clock import as_utc, isoformat, local_date
from services.kit.commit import AtCommit, at_commit
from services.kit.config import Group
from services.kit.db import Store, dialect_insert, fetch, prepared
from services.kit.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unavailable
from services.kit.insert_batch import insert_rows
from services.kit.models import UtcDateTime
from services.kit.paging import keyset_page
from services.kit.telemetry import counter
from services.members.events import SEGMENTS
from services.notifications import deliveries, preferences
from services.notifications.access import JOURNEY_MANAGERS
from services.notifications.models import (
    ACTIVE,
    DRAFT,
    EXITED,
    FINISHED,
    PAUSED,
    RETIRED,
    RUN_STATES,
    RUNNING,
    AudienceMember,
    ComposedJourney,
    ComposedJourneyVersion,
    Delivery,
    JourneyRun,
    Preference,
    TriggerFact,
)
from services.notifications.rules import composed as rules
from services.notifications.rules.journeys import (
    COMPOSED,
    JOURNEYS,
    Plan,
    link_for,
    reward_coupon_request,
    sample_coupon,
)
from services.notifications.schemas import JourneyDefinitionSchema
from services.notifications.settings import Settings
from services.notifications.templates import LANGUAGES
from services.records.events import ITEM_CATEGORIES
from services.records.schemas import QUEUES as FOLLOW_UP_QUEUES

log = logging.getLogger(__name__)

RUN_STEPS = counter("careloop_notifications_journey_steps_total", "Steps taken by composed journeys' runs, by kind",
                    ("kind",))
RUN_ENDS = counter("careloop_notifications_journey_runs_total", "Runs of composed journeys ending, by how",
                   ("outcome",))
RUN_BATCH = 50
RETRY_AFTER = timedelta(minutes=1)  # a peer did not answer
FAILED_RETRY_AFTER = timedelta(hours=1)  # something unexpected: logged, and not retried every second


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


# -- who may manage which journey ---------------------------------------------------------------------------

def require_manager(caller: Identity, branches: list[str], action: str) -> None:
    """Group admins manage every journey; a branch manager only journeys restricted to their own branches."""
    caller.require_role(*JOURNEY_MANAGERS, action=action)
    if caller.kind == "service" or caller.all_branches:
        return
    if not branches:
        raise Forbidden(f"A journey for every branch is for group admins; name your branches to {action}.")
    for branch in branches:
        caller.require_branch(branch, action)


def problems(definition: dict[str, Any], group: Group, points: Any = None) -> dict[str, list[str]]:
    """What stops ``definition`` from running; with ``points``, its coupons too (each a coupon reward there)."""
    found = rules.problems(definition, languages=LANGUAGES, queues=FOLLOW_UP_QUEUES, branches=group.branches,
                           segments=SEGMENTS, categories=ITEM_CATEGORIES)
    for field, reward_id in rules.coupons_of(definition) if points is not None else ():
        try:
            reward = points.get_reward(reward_id)
        except (NotFound, Invalid):
            found.setdefault(field, []).append("Unknown coupon template: no reward of points' catalogue has this id.")
            continue
        if reward.get("kind") != "coupon" or not reward.get("coupon"):
            found.setdefault(field, []).append("This reward gives no coupon; name a coupon reward.")
        elif not reward.get("active", True):
            found.setdefault(field, []).append("This coupon reward is no longer active.")
    return found


def _check_branches(definition: dict[str, Any], group: Group) -> None:
    unknown = [branch for branch in definition["branches"] if branch not in group.branches]
    if unknown:
        raise Invalid(f"Unknown branch {unknown[0]!r}.", {"branches": [f"Unknown branch {b!r}." for b in unknown]})


def _refuse(found: dict[str, list[str]]) -> None:
    if found:
        first = next(iter(found))
        raise Invalid(f"The journey cannot run yet: {first}: {found[first][0]}", found)


# -- journeys and versions ------------------------------------------------------------------------------------

def _trigger_code(definition: dict[str, Any]) -> str:
    return definition["trigger"].get("event") or "schedule"


def create(session: Session, definition: dict[str, Any], caller: Identity, group: Group,
           now: datetime) -> ComposedJourney:
    """A new journey, in draft, at version 1."""
    _check_branches(definition, group)
    require_manager(caller, definition["branches"], "compose journeys")
    by = caller.actor
    journey = ComposedJourney(id=uuid.uuid4(), name=definition["name"], state=DRAFT, version=1,
                              trigger=_trigger_code(definition), branches=_dumps(definition["branches"]),
                              created_by=by, created_at=now, updated_at=now)
    session.add(journey)
    session.flush()
    session.add(ComposedJourneyVersion(journey_id=journey.id, version=1, definition=_dumps(definition),
                                       created_by=by, created_at=now))
    return journey


def get(session: Session, journey_id: str, lock: bool = False) -> ComposedJourney:
    return fetch(session, ComposedJourney, journey_id, "journey", lock=lock)


def branches_of(journey: ComposedJourney) -> list[str]:
    return json.loads(journey.branches)


def definition_of(session: Session, journey_id: uuid.UUID, version: int) -> dict[str, Any]:
    row = session.get(ComposedJourneyVersion, (journey_id, version))
    if row is None:
        raise NotFound(f"The journey has no version {version}.")
    return json.loads(row.definition)


def update_definition(session: Session, journey: ComposedJourney, definition: dict[str, Any], caller: Identity,
                      group: Group, now: datetime, points: Any = None) -> ComposedJourney:
    """An edit: version n+1 becomes current (an active journey's new version must be able to run)."""
    if journey.state == RETIRED:
        raise Conflict("This journey is retired; compose a new one.")
    _check_branches(definition, group)
    require_manager(caller, branches_of(journey), "change this journey")
    require_manager(caller, definition["branches"], "change this journey")
    if journey.state == ACTIVE:
        _refuse(problems(definition, group, points))
    journey.version += 1
    journey.name, journey.trigger = definition["name"], _trigger_code(definition)
    journey.branches, journey.updated_at = _dumps(definition["branches"]), now
    session.add(ComposedJourneyVersion(journey_id=journey.id, version=journey.version, definition=_dumps(definition),
                                       created_by=caller.actor, created_at=now))
    return journey


TRANSITIONS = {ACTIVE: (DRAFT, PAUSED, ACTIVE), PAUSED: (ACTIVE, PAUSED), RETIRED: (DRAFT, ACTIVE, PAUSED, RETIRED)}
"""Where each state may be reached from (asking for the state a journey is in changes nothing)."""


def set_state(session: Session, journey: ComposedJourney, target: str, caller: Identity, group: Group,
              now: datetime, points: Any = None) -> ComposedJourney:
    """Activate (validated first), pause (no new runs; runs wait) or retire (runs end, queued messages taken back)."""
    require_manager(caller, branches_of(journey), f"make journeys {target}")
    if journey.state not in TRANSITIONS[target]:
        raise Conflict(f"A {journey.state} journey cannot become {target}.")
    if journey.state == target:
        return journey
    if target == ACTIVE:
        _refuse(problems(definition_of(session, journey.id, journey.version), group, points))
    journey.state, journey.updated_at = target, now
    if target == RETIRED:
        for run in session.scalars(select(JourneyRun).where(JourneyRun.journey_id == journey.id,
                                                            JourneyRun.state == RUNNING).with_for_update()):
            end(session, run, EXITED, "the journey was retired", now)
        # planned runs are finished with their messages queued: those go back too
        deliveries.cancel_queued(session, now, "the journey was retired", cause_ref_prefix=f"journey:{journey.id}:")
    return journey


def view(session: Session, journey: ComposedJourney, with_versions: bool = False) -> dict[str, Any]:
    """A journey as answered: its current definition, its runs by state, and (one journey) every version."""
    counts = dict(session.execute(select(JourneyRun.state, func.count()).where(JourneyRun.journey_id == journey.id)
                                  .group_by(JourneyRun.state)).all())
    answer = {"id": journey.id, "name": journey.name, "state": journey.state, "version": journey.version,
              "trigger": journey.trigger, "branches": branches_of(journey),
              "definition": definition_of(session, journey.id, journey.version),
              "runs": {state: int(counts.get(state, 0)) for state in RUN_STATES},
              "created_by": journey.created_by, "created_at": journey.created_at, "updated_at": journey.updated_at}
    if with_versions:
        answer["versions"] = [{"version": row.version, "definition": json.loads(row.definition),
                               "created_by": row.created_by, "created_at": row.created_at}
                              for row in session.scalars(select(ComposedJourneyVersion)
                                                         .where(ComposedJourneyVersion.journey_id == journey.id)
                                                         .order_by(ComposedJourneyVersion.version))]
    return answer


def page(session: Session, caller: Identity, state: str | None, branch: str | None, limit: int,
         cursor: str | None) -> tuple[list[ComposedJourney], str | None]:
    """Journeys newest first; a branch manager's list holds only journeys of their own branches."""
    query = select(ComposedJourney)
    if state is not None:
        query = query.where(ComposedJourney.state == state)
    if branch is not None:
        query = query.where(ComposedJourney.branches.contains(json.dumps(branch)))
    rows, next_cursor = keyset_page(session, query, ComposedJourney.created_at, ComposedJourney.id, limit, cursor,
                                    descending=True)
    if caller.kind != "service" and not caller.all_branches:
        rows = [row for row in rows if branches_of(row) and all(caller.can_see_branch(b) for b in branches_of(row))]
    return rows, next_cursor


# -- facts and runs -------------------------------------------------------------------------------------------

class Catalogue:
    """The journeys' definitions as this process has read them: a version never changes, so each is read and
    parsed once; which versions are active is asked each time (one small indexed query)."""

    def __init__(self) -> None:
        self._versions: dict[tuple[uuid.UUID, int], dict[str, Any]] = {}

    def definition(self, session: Session, journey_id: uuid.UUID, version: int) -> dict[str, Any]:
        """The version's definition (shared: never change it)."""
        key = (journey_id, version)
        found = self._versions.get(key)
        if found is None:
            found = self._versions[key] = definition_of(session, journey_id, version)
        return found

    def active(self, session: Session, trigger: str) -> list[tuple[uuid.UUID, int, dict[str, Any]]]:
        """The active journeys a trigger starts: (id, current version, its definition)."""
        rows = session.execute(_ACTIVE, {"trigger": trigger}).all()
        return [(journey_id, version, self.definition(session, journey_id, version)) for journey_id, version in rows]

    def active_and_running(self, session: Session, trigger: str, member_id: uuid.UUID
                           ) -> tuple[list[tuple[uuid.UUID, int, dict[str, Any]]], bool]:
        """``active(trigger)``, and whether ``member_id`` has a run going (one its exits could end), in one query."""
        rows = session.execute(_ACTIVE_AND_RUNNING, {"trigger": trigger, "member_id": member_id}).all()
        active = [(journey_id, version, self.definition(session, journey_id, version))
                  for journey_id, version, _running in rows if journey_id is not None]
        return active, bool(rows[0].running)


# built once, prepared per connection (``kit.db.prepared``): every trigger event runs one of them
_ACTIVE = prepared(select(ComposedJourney.id, ComposedJourney.version).where(
    ComposedJourney.state == ACTIVE, ComposedJourney.trigger == bindparam("trigger")))
_ACTIVE_AND_RUNNING = prepared(text(
    "SELECT j.id, j.version, r.running FROM (SELECT EXISTS (SELECT 1 FROM journey_runs WHERE member_id = :member_id "
    f"AND state = '{RUNNING}') AS running) AS r LEFT JOIN composed_journeys AS j "
    f"ON j.state = '{ACTIVE}' AND j.trigger = :trigger"
).bindparams(bindparam("member_id", type_=Uuid())).columns(id=Uuid(), version=Integer(), running=Boolean()))
_ADD_FACT = AtCommit("INSERT INTO journey_trigger_facts (event, member_id, cause, branch, facts, occurred_at) "
                     "VALUES (:event, :member_id, :cause, :branch, :facts, :occurred_at)",
                     prepare=True, member_id=Uuid(), occurred_at=UtcDateTime())


def active_of(session: Session, trigger: str, catalogue: Catalogue | None = None
              ) -> list[tuple[uuid.UUID, int, dict[str, Any]]]:
    return (catalogue or Catalogue()).active(session, trigger)


def run_ref(journey_id: uuid.UUID, run_id: uuid.UUID) -> str:
    """What a run's messages name as their cause (``deliveries.cause_ref``): taken back by the run or journey."""
    return f"journey:{journey_id}:{run_id}"


def on_fact(session: Session, fact: rules.Fact, now: datetime, catalogue: Catalogue, zone: ZoneInfo) -> int:
    """A trigger event arrived: kept for dry runs, starts the active journeys it matches, ends the runs it exits.
    How many runs it started.

    The fact is kept with the commit (nothing reads it back here); the active journeys and whether the member has
    a run its exits could end are one read; the member's runs are locked only when there is one."""
    member_id = uuid.UUID(fact.member_id)
    at_commit(session, _ADD_FACT, {"event": fact.event, "member_id": member_id, "cause": fact.cause,
                                   "branch": fact.branch, "facts": _dumps(fact.facts), "occurred_at": fact.occurred_at})
    if fact.event in rules.EXIT_EVENTS:
        active, running = catalogue.active_and_running(session, fact.event, member_id)
        if running:
            exit_runs(session, member_id, fact.event, now, catalogue)
    else:
        active = catalogue.active(session, fact.event)
    started = 0
    for journey_id, version, definition in active:
        if rules.starts(definition, fact):
            started += start(session, journey_id, version, definition, fact.member_id, *_started_by(definition, fact),
                             now, zone, facts={**fact.facts, "cause": fact.cause}, anchor=fact.anchor)
    return started


def _started_by(definition: dict[str, Any], fact: rules.Fact) -> tuple[str, str | None]:
    """The cause and branch of a run ``fact`` starts."""
    return rules.cause_of(definition, fact), fact.branch


def on_facts(session: Session, facts: list[rules.Fact], now: datetime, catalogue: Catalogue, zone: ZoneInfo) -> int:
    """``on_fact`` of many facts of one event no run exits by (an import's enrolments, ``members_imported``): the
    facts kept in one statement, the active journeys read once, and each journey's runs started together
    (``start_many``). How many runs they started."""
    if not facts:
        return 0
    event = facts[0].event
    if event in rules.EXIT_EVENTS or any(fact.event != event for fact in facts):
        return sum(on_fact(session, fact, now, catalogue, zone) for fact in facts)
    insert_rows(session, TriggerFact.__table__, [
        {"event": fact.event, "member_id": uuid.UUID(fact.member_id), "cause": fact.cause, "branch": fact.branch,
         "facts": _dumps(fact.facts), "occurred_at": fact.occurred_at} for fact in facts])
    return sum(start_many(session, journey_id, version, definition,
                          [fact for fact in facts if rules.starts(definition, fact)], now, zone)
               for journey_id, version, definition in catalogue.active(session, event))


def _run_of(journey_id: uuid.UUID, version: int, definition: dict[str, Any], member_id: str, cause: str,
            branch: str | None, now: datetime, zone: ZoneInfo, facts: dict[str, Any] | None,
            anchor: datetime | None) -> tuple[dict[str, Any], list[Plan], bool]:
    """A run's row, its messages' plans (a planned run's), and whether it is planned (``start``)."""
    run_id = uuid.uuid4()
    planned = _planned(definition)
    run = {"id": run_id, "journey_id": journey_id, "version": version, "member_id": uuid.UUID(str(member_id)),
           "cause": cause, "branch": branch, "context": _dumps(facts) if facts else None,
           "step": len(definition["steps"]) if planned else 0, "state": FINISHED if planned else RUNNING,
           "due_at": now, "started_at": now, "updated_at": now}
    plans = [message_plan(journey_id, version, run_id, str(member_id), branch, facts, definition, item.index,
                          item.message, item.due_at, item.expires_at)
             for item in rules.plan(definition, as_utc(anchor or now), now, zone)] if planned else []
    return run, plans, planned


def _planned(definition: dict[str, Any]) -> bool:
    """Whether a run of ``definition`` is planned when it starts (an event journey ``rules.plannable``)."""
    return bool(definition["trigger"].get("event")) and rules.plannable(definition)


def _count_planned(plans: list[Plan]) -> None:
    RUN_STEPS.labels("message").inc(len(plans))
    RUN_ENDS.labels(FINISHED).inc()


def start(session: Session, journey_id: uuid.UUID, version: int, definition: dict[str, Any], member_id: str,
          cause: str, branch: str | None, now: datetime, zone: ZoneInfo, facts: dict[str, Any] | None = None,
          anchor: datetime | None = None) -> int:
    """A member's run of the journey's current version for ``cause`` (none if this cause already has one).

    An event journey that can be planned (``rules.plannable``) queues its messages now and is finished at once;
    any other run is due now, for the scheduler to walk."""
    run, plans, planned = _run_of(journey_id, version, definition, member_id, cause, branch, now, zone, facts, anchor)
    if plans and session.get_bind().dialect.name == "postgresql":
        if not _start_planned(session, run, plans, now):
            return 0
    else:
        if not session.execute(_RUN_INSERT, {f"r_{name}": value for name, value in run.items()}).rowcount:
            return 0
        for plan in plans:
            deliveries.queue_id(session, plan, now)
    if planned:
        _count_planned(plans)
    return 1


def start_many(session: Session, journey_id: uuid.UUID, version: int, definition: dict[str, Any],
               facts: list[rules.Fact], now: datetime, zone: ZoneInfo) -> int:
    """``start`` of the runs ``facts`` start (``on_facts``); on PostgreSQL a planned journey's runs in one statement
    and their messages in another (the runs whose cause had one already, and their messages, are left out)."""
    if not facts:
        return 0
    if not _planned(definition) or session.get_bind().dialect.name != "postgresql":
        return sum(start(session, journey_id, version, definition, fact.member_id, *_started_by(definition, fact),
                         now, zone, facts={**fact.facts, "cause": fact.cause}, anchor=fact.anchor) for fact in facts)
    made = [_run_of(journey_id, version, definition, fact.member_id, *_started_by(definition, fact), now, zone,
                    {**fact.facts, "cause": fact.cause}, fact.anchor) for fact in facts]
    started = set(insert_rows(session, JourneyRun.__table__, [run for run, _plans, _is_planned in made],
                              skip_conflicts_on=("journey_id", "member_id", "cause"), returning="id"))
    planned = [(plan, deliveries.row_of(plan, now)) for run, plans, _is_planned in made if run["id"] in started
               for plan in plans]
    if planned:
        queued = set(insert_rows(session, Delivery.__table__, [row for _plan, row in planned],
                                 skip_conflicts_on=("dedupe_key",), returning="id"))
        for plan, row in planned:
            if row["id"] in queued:
                deliveries.queued(session, row["id"], plan, now)
    for run, plans, _is_planned in made:
        if run["id"] in started:
            _count_planned(plans)
    return len(started)


RUN_COLUMNS = ("id", "journey_id", "version", "member_id", "cause", "branch", "context", "step", "state", "due_at",
               "started_at", "updated_at")
_RUN_INSERT = deliveries.insert_unless(JourneyRun.__table__, RUN_COLUMNS, "journey_id, member_id, cause", "r_")
"""A run's row unless its cause has one."""


_PLANNED_STARTS: dict[int, Any] = {}  # by number of messages, built once


def _planned_statement(messages: int) -> Any:
    """PostgreSQL: a planned run's row and its ``messages`` queued deliveries in one query (data-modifying CTEs:
    the deliveries are inserted only if the run was), prepared per connection (every visit starts such runs); the ids
    of the deliveries queued."""
    statement = _PLANNED_STARTS.get(messages)
    if statement is None:
        runs, sent = JourneyRun.__table__.c, Delivery.__table__.c
        # the columns' types on the binds: SQLAlchemy casts the ids (``::UUID``), as the columns of a SELECT need
        parts = [f"run AS (INSERT INTO journey_runs ({', '.join(RUN_COLUMNS)}) VALUES "
                 f"({', '.join(f':r_{name}' for name in RUN_COLUMNS)}) "
                 "ON CONFLICT (journey_id, member_id, cause) DO NOTHING RETURNING id)"]
        parts += [f"d{n} AS (INSERT INTO deliveries ({', '.join(deliveries.ROW_COLUMNS)}) SELECT "
                  f"{', '.join(f':d{n}_{name}' for name in deliveries.ROW_COLUMNS)} FROM run "
                  "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id)" for n in range(messages)]
        queued = " UNION ALL ".join(f"SELECT id FROM d{n}" for n in range(messages))
        binds = [bindparam(f"r_{name}", type_=runs[name].type) for name in RUN_COLUMNS]
        binds += [bindparam(f"d{n}_{name}", type_=sent[name].type)
                  for n in range(messages) for name in deliveries.ROW_COLUMNS]
        statement = _PLANNED_STARTS[messages] = prepared(text(
            f"WITH {', '.join(parts)} SELECT run.id AS run_id, queued.id AS delivery_id FROM run "
            f"LEFT JOIN ({queued}) AS queued ON true"
        ).bindparams(*binds).columns(run_id=Uuid(), delivery_id=Uuid()))
    return statement


def _start_planned(session: Session, run: dict[str, Any], plans: list[Plan], now: datetime) -> bool:
    """A planned run and its messages in one query (PostgreSQL); whether the run started (its cause had none)."""
    params = {f"r_{name}": value for name, value in run.items()}
    rows = {n: deliveries.row_of(plan, now) for n, plan in enumerate(plans)}
    for n, row in rows.items():
        params.update({f"d{n}_{name}": value for name, value in row.items()})
    queued = {delivery_id for _run, delivery_id in session.execute(_planned_statement(len(plans)), params)}
    if not queued:
        return False
    for n, plan in enumerate(plans):
        if rows[n]["id"] in queued:
            deliveries.queued(session, rows[n]["id"], plan, now)
    return True


def message_plan(journey_id: uuid.UUID, version: int, run_id: uuid.UUID, member_id: str, branch: str | None,
                 facts: dict[str, Any] | None, definition: dict[str, Any], index: int, message: dict[str, Any],
                 due_at: datetime, expires_at: datetime | None) -> Plan:
    """A run's message step as a delivery: a shipped template reading the trigger's facts, or the manager's words;
    with its coupon's reward and the key that issues it once per run and step."""
    context: dict[str, Any] = {"journey_id": str(journey_id), "version": version, "step": index, "branch": branch}
    if message.get("template"):
        journey, context = message["template"], {**(facts or {}), **context}
    else:
        journey, context = COMPOSED, {**context, "texts": message["texts"]}
    reward_id = (message.get("coupon") or {}).get("reward_id")
    if reward_id:
        context.update(coupon_reward=reward_id, coupon_key=f"journey-coupon:{run_id}:{index}")
    return Plan(journey, member_id, f"{run_id}:{index}", due_at, expires_at=expires_at,
                cause_ref=run_ref(journey_id, run_id), kind=definition.get("category") or "service", context=context)


def cause_taken_back(session: Session, member_id: str, cause: str, reason: str, now: datetime) -> int:
    """The fact a run started for was taken back (a visit cancelled): its runs end and their messages not yet
    sent are taken back, planned ones too. How many runs it touched."""
    member = uuid.UUID(str(member_id))
    # a run once per member keeps the fact that started it in its context, not as its cause
    started_by = [run_id for run_id, run_cause, context in session.execute(
        select(JourneyRun.id, JourneyRun.cause, JourneyRun.context).where(JourneyRun.member_id == member))
        if run_cause == cause or (context and json.loads(context).get("cause") == cause)]
    if not started_by:
        return 0
    runs = list(session.scalars(select(JourneyRun).where(JourneyRun.id.in_(started_by)).order_by(JourneyRun.id)
                                .with_for_update()))
    for run in runs:
        if run.state == RUNNING:
            end(session, run, EXITED, reason, now)
        else:
            deliveries.cancel_queued(session, now, reason, cause_ref=run_ref(run.journey_id, run.id))
    return len(runs)


def exit_runs(session: Session, member_id: uuid.UUID, event: str, now: datetime, catalogue: Catalogue) -> int:
    """End the member's running runs whose version lists ``event`` as an exit."""
    ended = 0
    for run in session.scalars(select(JourneyRun).where(JourneyRun.member_id == member_id, JourneyRun.state == RUNNING)
                               .order_by(JourneyRun.id).with_for_update()):
        if event in (catalogue.definition(session, run.journey_id, run.version).get("exits") or ()):
            end(session, run, EXITED, event, now)
            ended += 1
    return ended


def end(session: Session, run: JourneyRun, state: str, reason: str | None, now: datetime) -> None:
    run.state, run.exit_reason, run.updated_at = state, reason, now
    RUN_ENDS.labels(reason if state == EXITED and reason in (*rules.EXIT_EVENTS, rules.DO_NOT_CONTACT) else state).inc()
    if state == EXITED:
        deliveries.cancel_queued(session, now, f"the journey run ended: {reason}",
                                 cause_ref=run_ref(run.journey_id, run.id))


def purge_facts(session: Session, now: datetime) -> int:
    return session.execute(delete(TriggerFact).where(TriggerFact.occurred_at < now - rules.FACT_RETENTION)).rowcount


def schedule_step(session: Session, journey: ComposedJourney, definition: dict[str, Any], day: date, now: datetime,
                  cursor: Any, members: Any, group: Group, page_size: int) -> tuple[Any, int]:
    """One batch of a schedule trigger's day: a page of its audience, each member a run (cause: the day).

    The audience: members of the segments named (members' ``segment_members``, per branch), else every active
    member (our copy, ``audience``) of the journey's branches (every branch when none)."""
    branches = definition["branches"] or sorted(group.branches)
    cause = f"schedule:{day.isoformat()}"
    segments = definition["trigger"].get("segments") or []
    if segments:
        keys = [(segment, branch) for segment in segments for branch in branches]
        index, page_cursor = (cursor["i"], cursor["c"]) if cursor else (0, None)
        segment, branch = keys[index]
        answer = members.segment_members(segment, branch, limit=page_size, cursor=page_cursor)
        for item in answer["items"]:
            start(session, journey.id, journey.version, definition, str(item["member_id"]), cause, branch, now,
                  group.zone)
        if answer.get("next_cursor"):
            return {"i": index, "c": answer["next_cursor"]}, len(answer["items"])
        return ({"i": index + 1, "c": None} if index + 1 < len(keys) else None), len(answer["items"])
    query = select(AudienceMember).where(AudienceMember.status == "active")
    if definition["branches"]:
        query = query.where(AudienceMember.home_branch.in_(branches))
    if cursor:
        query = query.where(AudienceMember.member_id > uuid.UUID(cursor))
    rows = list(session.scalars(query.order_by(AudienceMember.member_id).limit(page_size)))
    for row in rows:
        start(session, journey.id, journey.version, definition, str(row.member_id), cause, row.home_branch, now,
              group.zone)
    return (str(rows[-1].member_id) if len(rows) == page_size else None), len(rows)


# -- the runner ------------------------------------------------------------------------------------------------

class Runner:
    """Takes due runs' steps (the scheduler's timer, every replica; runs are claimed, never shared)."""

    def __init__(self, *, store: Store, group: Group, members: Any, records: Any,
                 catalogue: Catalogue | None = None) -> None:
        self.store = store
        self.group = group
        self.members = members
        self.records = records
        self.catalogue = catalogue or Catalogue()

    def run(self, now: datetime, max_batches: int | None = None) -> dict[str, int]:
        """Take due runs' steps, one run per transaction (a run that fails cannot hold back the others: it is
        tried again an hour later), up to ``max_batches`` × ``RUN_BATCH`` runs."""
        tally: Counter[str] = Counter()
        limit = None if max_batches is None else max_batches * RUN_BATCH
        taken = 0
        while limit is None or taken < limit:
            run_id = None
            try:
                with self.store.transaction() as session:
                    run = self._claim(session, now)
                    if run is None:
                        break
                    run_id = run.id
                    tally[self._step(session, run, now)] += 1
            except Exception:
                if run_id is None:
                    raise
                log.exception("a journey run failed; it is tried again later", extra={"run_id": str(run_id)})
                with self.store.transaction() as session:
                    session.execute(update(JourneyRun).where(JourneyRun.id == run_id)
                                    .values(due_at=now + FAILED_RETRY_AFTER, updated_at=now))
                tally["failed"] += 1
            taken += 1
        return dict(tally)

    def _claim(self, session: Session, now: datetime) -> JourneyRun | None:
        """The next due run of an active journey (others' replicas skip the one this one holds)."""
        query = (select(JourneyRun).join(ComposedJourney, ComposedJourney.id == JourneyRun.journey_id)
                 .where(JourneyRun.state == RUNNING, JourneyRun.due_at <= now, ComposedJourney.state == ACTIVE)
                 .order_by(JourneyRun.due_at, JourneyRun.id).limit(1))
        if self.store.is_postgresql:
            query = query.with_for_update(of=JourneyRun, skip_locked=True)
        return session.scalars(query).first()

    def _step(self, session: Session, run: JourneyRun, now: datetime) -> str:
        definition = self.catalogue.definition(session, run.journey_id, run.version)
        if preferences.load(session, run.member_id).do_not_contact:
            end(session, run, EXITED, rules.DO_NOT_CONTACT, now)
            return "exited"
        try:
            if run.step == 0 and not self._fits(session, run, definition, now):
                return "exited"
            progress = rules.advance(definition["steps"], run.step, now, self.group.zone)
            for index, step in progress.actions:
                if "message" in step:
                    self._message(session, run, definition, index, step["message"], now)
                else:
                    self._task(run, index, step["task"], now)
                RUN_STEPS.labels(rules.kind_of(step)).inc()
                run.step = index + 1
        except Unavailable as error:  # members or records did not answer: this step again in a minute
            log.warning("a journey run waits for a peer", extra={"run_id": str(run.id), "error": str(error)})
            run.due_at, run.updated_at = now + RETRY_AFTER, now
            return "retried"
        except DomainError as error:  # records refused the task (the member closed, the branch gone): the run ends
            end(session, run, EXITED, f"refused: {error}"[:200], now)
            return "exited"
        run.step, run.updated_at = progress.next_step, now
        if progress.due_at is None:
            end(session, run, FINISHED, None, now)
            return "finished"
        run.due_at = progress.due_at
        return "waiting"

    def _fits(self, session: Session, run: JourneyRun, definition: dict[str, Any], now: datetime) -> bool:
        """At the first step: the member's tier and segment meet the trigger (members), and the run has a branch."""
        if not rules.needs_member(definition) and run.branch is not None:
            return True
        try:
            member = self.members.get_member(str(run.member_id))
        except NotFound:
            end(session, run, EXITED, "unknown member", now)
            return False
        run.branch = run.branch or member.get("home_branch")
        segment = None
        if definition["trigger"].get("segments"):
            grading = self.members.member_segment(str(run.member_id)).get("grading")
            segment = (grading or {}).get("segment")  # not graded yet: in no segment
        if not rules.member_fits(definition, member.get("tier"), segment):
            end(session, run, EXITED, "the member does not meet the trigger's conditions", now)
            return False
        return True

    def _message(self, session: Session, run: JourneyRun, definition: dict[str, Any], index: int,
                 message: dict[str, Any], now: datetime) -> None:
        """A message step, due now; it lapses ``expires_after`` the run's start (a walked run's trigger time)."""
        expires = (rules.after(as_utc(run.started_at), message["expires_after"], self.group.zone)
                   if message.get("expires_after") else None)
        if expires is not None and expires <= now:
            return
        facts = json.loads(run.context) if run.context else None
        deliveries.queue(session, message_plan(run.journey_id, run.version, run.id, str(run.member_id), run.branch,
                                               facts, definition, index, message, now, expires), now, answer=False)

    def _task(self, run: JourneyRun, index: int, task: dict[str, Any], now: datetime) -> None:
        due_on = local_date(now, self.group.zone) + timedelta(days=int(task.get("due_in_days") or 0))
        self.records.open_follow_up({"member_id": str(run.member_id), "branch": run.branch, "queue": task["queue"],
                                     "due_on": due_on.isoformat(), "note": task.get("note"),
                                     "dedupe_key": f"journey:{run.id}:{index}"})


# -- the dry run -----------------------------------------------------------------------------------------------

def dry_run(session: Session, journey: ComposedJourney, group: Group, members: Any, now: datetime,
            page_size: int = 500) -> dict[str, Any]:
    """How many members the journey's current version would reach in a week, by step (method in the answer)."""
    definition = definition_of(session, journey.id, journey.version)
    trigger = definition["trigger"]
    since, until = now - rules.DRY_RUN_WINDOW, now + rules.DRY_RUN_WINDOW
    if trigger.get("event"):
        longest = sum((rules.wait_of(step) for step in definition["steps"] if "wait" in step), timedelta())
        facts = [_fact(row) for row in session.scalars(select(TriggerFact).where(
            TriggerFact.event == trigger["event"], TriggerFact.occurred_at >= since, TriggerFact.occurred_at < now))]
        members_seen = {uuid.UUID(fact.member_id) for fact in facts}
        exits = [_fact(row) for row in session.scalars(select(TriggerFact).where(
            TriggerFact.event.in_(definition.get("exits") or ()), TriggerFact.member_id.in_(members_seen),
            TriggerFact.occurred_at >= since, TriggerFact.occurred_at < now + longest))] if members_seen else []
        left_out, counted = _member_conditions(session, definition, members_seen, members, page_size)
        facts = [fact for fact in facts if fact.member_id not in left_out]
        steps = rules.dry_run(definition, facts, exits)
        entering = len({(f.member_id, rules.cause_of(definition, f)) for f in facts if rules.starts(definition, f)})
        method = (f"The {trigger['event']} events of the last 7 days ({isoformat(since)} to {isoformat(now)}) replayed "
                  "against the trigger's conditions (event, branch, category, visit kind"
                  + "".join(f", {name}" for name in counted) + "), one run per member and cause; a "
                  "step's count leaves out members whose exit fact (as recorded so far) came before that step's time."
                  + ("" if "do not contact" in counted else " Do not contact is not counted: this journey's shipped "
                     "templates reach such members as they always did.")
                  + (" Tiers and segments are today's (members), not those at each event's time." if
                     {"tier", "segment"} & set(counted) else ""))
        return {"journey_id": journey.id, "version": journey.version, "method": method, "since": since, "until": now,
                "entering": entering, "steps": steps}
    days = [local_date(now, group.zone) + timedelta(days=offset) for offset in range(7)]
    occurrences = sum(1 for day in days if rules.scheduled_on(schedule_of(definition), day))
    audience = _audience_size(session, definition, group, members, page_size) if occurrences else 0
    entering = audience * occurrences
    method = (f"The schedule fires {occurrences} time(s) in the next 7 local days; each time it reaches today's "
              "audience (" + ("members of segments " + ", ".join(trigger["segments"]) + " per members' latest grading"
                              if trigger.get("segments") else "active members") + " of "
              + (", ".join(definition["branches"]) or "every branch")
              + "); every step counts them all (no exit can be predicted ahead).")
    return {"journey_id": journey.id, "version": journey.version, "method": method, "since": now, "until": until,
            "entering": entering, "steps": [{"step": index, "kind": rules.kind_of(step), "members": entering}
                                             for index, step in enumerate(definition["steps"])]}


def schedule_of(definition: dict[str, Any]) -> dict[str, Any]:
    """A stored definition's schedule, its date as a date."""
    schedule = definition["trigger"]["schedule"]
    on = schedule.get("on")
    return {**schedule, "on": date.fromisoformat(on) if isinstance(on, str) else on}


def _member_conditions(session: Session, definition: dict[str, Any], seen: set[uuid.UUID], members: Any,
                       page_size: int) -> tuple[set[str], list[str]]:
    """The members of the replayed facts a run would not reach today, and the conditions that were counted:
    do not contact (our preferences; unless every message is a shipped template on a planned run, which does
    not stop for it), the tier (members' export by id, in batches) and the segment (members' segment lists of
    the journey's branches, a page at a time)."""
    left_out: set[str] = set()
    counted: list[str] = []
    ids = sorted(seen)
    if not ids:
        return left_out, counted
    trigger, steps = definition["trigger"], definition["steps"]
    templates_only = rules.plannable(definition) and all(
        rules.kind_of(step) == "wait" or step["message"].get("template") for step in steps)
    if not templates_only:
        counted.append("do not contact")
        for chunk in range(0, len(ids), page_size):
            left_out.update(str(member) for member in session.scalars(select(Preference.member_id).where(
                Preference.member_id.in_(ids[chunk:chunk + page_size]), Preference.do_not_contact.is_(True))))
    service = members.as_service() if hasattr(members, "as_service") else members
    if trigger.get("tiers") and trigger.get("event") != "tier_changed":
        counted.append("tier")
        tiers = set(trigger["tiers"])
        for chunk in range(0, len(ids), page_size):
            batch = [str(member) for member in ids[chunk:chunk + page_size]]
            found = {str(item["id"]): item.get("tier") for item in service.export_members_by_id(batch)["items"]}
            left_out.update(member for member in batch if found.get(member) not in tiers)
    if trigger.get("segments"):
        counted.append("segment")
        graded: set[str] = set()
        for segment in trigger["segments"]:
            for branch in definition["branches"] or [None]:
                cursor = None
                while True:
                    answer = service.segment_members(segment, branch, limit=page_size, cursor=cursor)
                    graded.update(str(item["member_id"]) for item in answer["items"])
                    cursor = answer.get("next_cursor")
                    if not cursor:
                        break
        left_out.update(str(member) for member in ids if str(member) not in graded)
    return left_out, counted


def _fact(row: TriggerFact) -> rules.Fact:
    return rules.Fact(row.event, str(row.member_id), row.cause, row.branch, row.occurred_at, json.loads(row.facts))


def _audience_size(session: Session, definition: dict[str, Any], group: Group, members: Any, page_size: int) -> int:
    branches = definition["branches"] or sorted(group.branches)
    segments = definition["trigger"].get("segments") or []
    if not segments:
        query = select(func.count()).select_from(AudienceMember).where(AudienceMember.status == "active")
        if definition["branches"]:
            query = query.where(AudienceMember.home_branch.in_(branches))
        return int(session.scalar(query) or 0)
    total = 0
    for segment in segments:
        for branch in branches:
            cursor = None
            while True:
                answer = members.segment_members(segment, branch, limit=page_size, cursor=cursor)
                total += len(answer["items"])
                cursor = answer.get("next_cursor")
                if not cursor:
                    break
    return total



# -- the shipped journeys, seeded -------------------------------------------------------------------------------

SHIPPED = uuid.UUID("5c1d8f52-7a4e-4d2b-9b1e-2f6a8c0e4d10")
"""The namespace of the shipped journeys' ids (``uuid5(SHIPPED, code)``): the same id on every replica and start."""
SHIPPED_BY = "careloop:shipped"


def shipped_id(code: str) -> uuid.UUID:
    return uuid.uuid5(SHIPPED, code)


def seed(store: Store, settings: Settings, now: datetime) -> int:
    """The shipped journeys that fit the model (``rules.shipped``), as active journeys, once: a journey already
    there — edited, paused or retired by a manager since — is left as it is. How many were created.

    Their timings are the settings' when first seeded; from then on they are changed through ``/v1/journeys``."""
    created = 0
    definitions = rules.shipped(settings.post_visit_delay, settings.post_visit_window, settings.survey_after_days,
                                settings.send_time)
    schema = JourneyDefinitionSchema()
    with store.transaction() as session:
        for code, definition in definitions.items():
            data = schema.dump(schema.load(definition))
            journey_id = shipped_id(code)
            inserted = session.execute(dialect_insert(session, ComposedJourney).values(
                id=journey_id, name=data["name"], state=ACTIVE, version=1, trigger=_trigger_code(data),
                branches=_dumps(data["branches"]), created_by=SHIPPED_BY, created_at=now, updated_at=now,
            ).on_conflict_do_nothing(index_elements=["id"])).rowcount
            if inserted:
                session.add(ComposedJourneyVersion(journey_id=journey_id, version=1, definition=_dumps(data),
                                                   created_by=SHIPPED_BY, created_at=now))
                created += 1
    return created


# -- the preview ---------------------------------------------------------------------------------------------------

def preview(session: Session, journey: ComposedJourney, version: int | None, channel: str, renderer: Any,
            member: dict[str, Any] | None, points: Any, app_url: str, today: date,
            sample_names: dict[str, str]) -> dict[str, Any]:
    """Each message step of a version rendered in each of the four languages, as the scheduler would render it:
    for ``member`` (their name as the caller may see it, their home branch) or a sample member; a shipped
    template with its sample facts; a coupon with its reward's terms and a sample code."""
    number = version or journey.version
    definition = definition_of(session, journey.id, number)
    branch = ((member or {}).get("home_branch") or next(iter(definition["branches"]), None)
              or sorted(renderer.group.branches)[0])
    steps = []
    for index, step in enumerate(definition["steps"]):
        if rules.kind_of(step) != "message":
            continue
        message = step["message"]
        if not (message.get("template") or message.get("texts")):
            raise Invalid(f"Step {index} has no words to show yet.",
                          {f"steps.{index}.message": ["Give either texts or a shipped template."]})
        plan = message_plan(journey.id, number, uuid.UUID(int=0), "00000000-0000-0000-0000-000000000000", branch,
                            JOURNEYS[message["template"]].sample if message.get("template") else None, definition,
                            index, message, as_utc(datetime.now(UTC)), None)
        context = dict(plan.context)
        coupon = None
        if context.pop("coupon_reward", None):
            context.pop("coupon_key", None)
            reward = points.get_reward(message["coupon"]["reward_id"])
            coupon = sample_coupon(reward_coupon_request(reward, today, renderer.group.currency))
            context["coupon"] = coupon
        languages = {}
        for language in LANGUAGES:
            name = (member or {}).get("full_name") or sample_names.get(language)
            try:
                rendered = renderer.render(plan.journey, channel, language, context, member_name=name,
                                           home_branch=branch, link=link_for(plan.journey, context, app_url))
            except TemplateError as error:  # a draft's words are checked at activation, not when written
                raise Invalid(f"Step {index} cannot be shown: {error}",
                              {f"steps.{index}.message.texts": [f"Not a valid template: {error}."]}) from None
            languages[language] = {"language": rendered.language, "subject": rendered.subject, "text": rendered.text,
                                   "body": rendered.body}
        steps.append({"step": index, "template": message.get("template"), "coupon": coupon, "languages": languages})
    return {"journey_id": journey.id, "version": number, "channel": channel,
            "member_id": (member or {}).get("id"), "steps": steps}
