"""The scheduler: due deliveries, claimed in bounded batches, decided, rendered, sent and recorded.

Due sends are rows (``deliveries``, state ``queued``, ``due_at``): they survive restarts. A replica
claims a batch in one short transaction — ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two replicas
never take the same row — and marks it ``sending`` with its name; from then on only that replica
touches it. Each claimed delivery then goes through:

1. the member's contact and consents (``members.get_contact``; no answer: retry later);
2. for a birthday, the coupon (``points.issue_coupon``, idempotent per member and year);
3. the rules (``rules.sending.decide``): send now on which channel, wait for the morning, or suppress and why;
4. the template, in the member's language, and the channel adapter;
5. the outcome: sent/delivered (``notification_sent``), a retry with backoff, or failed
   (``notification_failed``).

A replica that dies mid-way leaves rows in ``sending``; after ``lease_seconds`` another replica takes
them back — resending only where that cannot duplicate (nothing was sent yet, or the channel dedupes:
LINE's retry key, the inbox); otherwise the delivery is failed as "outcome unknown" rather than risk
sending a member the same message twice.

``now`` (the business clock: due times, quiet hours, caps) is a parameter, so tests drive the
scheduler through the night without sleeping; leases use the real clock.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider
from sqlalchemy import and_, bindparam, exists, func, or_, select, text
from sqlalchemy.orm import Session

from services.kit.clock import as_utc, isoformat, local_date, utcnow
from services.kit.config import Group, group_from_config
from services.kit.db import Database, Store
from services.kit.errors import DomainError, NotFound, Unavailable
from services.kit.models import UtcDateTime
from services.kit.telemetry import counter, gauge
from services.notifications import appointments, composed, deliveries, digests, preferences, recalls
from services.notifications.channels import ChannelSet, build_channels
from services.notifications.channels.base import Message, PermanentFailure, Receipt, TransientFailure
from services.notifications.links import appointment_links
from services.notifications.models import (
    ACTIVE,
    CANCELLED,
    DELIVERED,
    FAILED,
    QUEUED,
    RUNNING,
    SENDING,
    SENT,
    SUPPRESSED,
    ComposedJourney,
    Delivery,
    JourneyRun,
    StaffAlert,
)
from services.notifications.rules.journeys import (
    OUTREACH_JOURNEYS,
    birthday_coupon_request,
    coupon_facts,
    link_for,
    reward_coupon_request,
)
from services.notifications.rules.sending import (
    APPOINTMENT_AHEAD,
    MARKETING,
    UNKNOWN_MEMBER,
    Contact,
    Defer,
    Suppress,
    cap_window_start,
    decide,
    retry_delay,
)
from services.notifications.settings import Settings, settings_from_config
from services.notifications.templates import Renderer, labels

log = logging.getLogger(__name__)

DELIVERIES = counter("careloop_notifications_total", "Deliveries reaching a state, by journey, channel and state",
                     ("journey", "channel", "state"))
SUPPRESSIONS = counter("careloop_notifications_suppressed_total", "Messages suppressed, by journey and reason",
                       ("journey", "reason"))
PROVIDER_FAILURES = counter("careloop_notifications_provider_failures_total",
                            "Channel attempts that failed, by channel and kind (transient, permanent)",
                            ("channel", "kind"))
DUE_BACKLOG = gauge("careloop_notifications_due", "Queued deliveries already due (not yet claimed)")

SUMMARY_JOURNEYS = ("points_digest", "points_expiring")


@dataclass(frozen=True)
class Snapshot:
    """The facts of a claimed delivery, read once (plain values: no session needed)."""

    id: uuid.UUID
    member_id: uuid.UUID
    journey: str
    category: str
    requested_channel: str | None
    context: dict[str, Any]
    expires_at: datetime | None


def claim_due(store: Store, now: datetime, limit: int, replica: str) -> list[Snapshot]:
    """Take up to ``limit`` due deliveries for this replica (others skip the rows it holds)."""
    with store.transaction() as session:
        query = (select(Delivery).where(Delivery.state == QUEUED, Delivery.due_at <= as_utc(now))
                 .order_by(Delivery.due_at, Delivery.id).limit(limit))
        if store.is_postgresql:
            query = query.with_for_update(skip_locked=True)
        claimed = []
        at = utcnow()
        for delivery in session.scalars(query):
            delivery.state, delivery.claimed_by, delivery.claimed_at = SENDING, replica, at
            delivery.attempt_started_at = None
            claimed.append(Snapshot(id=delivery.id, member_id=delivery.member_id, journey=delivery.journey,
                                    category=delivery.category, requested_channel=delivery.requested_channel,
                                    context=json.loads(delivery.context) if delivery.context else {},
                                    expires_at=delivery.expires_at))
    return claimed


_NOW, _LEASE = bindparam("now", type_=UtcDateTime()), bindparam("lease_cutoff", type_=UtcDateTime())
_DUE_WORK = select(
    exists().where(StaffAlert.state == QUEUED, StaffAlert.due_at <= _NOW).label("alerts"),
    exists().where(StaffAlert.state == SENDING, StaffAlert.claimed_at < _LEASE).label("stale_alerts"),
    exists().where(JourneyRun.state == RUNNING, JourneyRun.due_at <= _NOW,
                   ComposedJourney.id == JourneyRun.journey_id, ComposedJourney.state == ACTIVE).label("runs"),
    exists().where(Delivery.state == QUEUED, Delivery.due_at <= _NOW).label("deliveries"),
    exists().where(Delivery.state == SENDING, Delivery.claimed_at < _LEASE).label("stale_deliveries"))


@dataclass(frozen=True)
class DueWork:
    """What a scheduler tick has to do (``due_work``): the senders with nothing due are not started."""

    alerts: bool
    runs: bool
    deliveries: bool


def due_work(connection: Any, now: datetime, settings: Settings) -> DueWork:
    """In one read, without a transaction: whether staff alerts, composed journeys' runs and deliveries are due
    or were left ``sending`` past their lease (an idle scheduler's second costs one query, not six transactions)."""
    row = connection.execute(_DUE_WORK, {"now": as_utc(now),
                                         "lease_cutoff": utcnow() - timedelta(seconds=settings.lease_seconds)}).one()
    return DueWork(alerts=row.alerts or row.stale_alerts, runs=row.runs,
                   deliveries=row.deliveries or row.stale_deliveries)


def due_backlog(store: Store, now: datetime) -> int:
    with store.transaction() as session:
        return int(session.scalar(select(func.count(Delivery.id)).where(
            Delivery.state == QUEUED, Delivery.due_at <= as_utc(now))) or 0)


def sent_event(delivery: Delivery) -> dict[str, Any]:
    """``notification_sent`` (services/notifications/events.py), once the delivery has its channel."""
    return {"delivery_id": delivery.id, "member_id": delivery.member_id, "journey": delivery.journey,
            "channel": delivery.channel}


def failed_event(delivery: Delivery, reason: str) -> dict[str, Any]:
    """``notification_failed`` (services/notifications/events.py)."""
    return {"delivery_id": delivery.id, "member_id": delivery.member_id, "journey": delivery.journey,
            "channel": delivery.channel, "reason": reason}


@dataclass(frozen=True)
class SendingTools:
    """What this process sends with: its settings, channels, templates, its name as a scheduler, and the composed
    journeys' definitions it has read."""

    settings: Settings
    group: Group
    channels: ChannelSet
    renderer: Renderer
    replica: str
    journeys: composed.Catalogue = field(default_factory=composed.Catalogue)


class Sender:
    """What a scheduler run sends with (members' deliveries here, staff alerts in ``staff_alerts``): the
    service's database and the process's ``SendingTools``."""

    def __init__(self, *, store: Store, tools: SendingTools, rand: random.Random | None = None) -> None:
        self.store = store
        self.settings = tools.settings
        self.group = tools.group
        self.channels = tools.channels
        self.renderer = tools.renderer
        self.replica = tools.replica
        self.rand = rand or random.Random()


class Dispatcher(Sender):
    """Sends what is due; one per scheduler run, with the worker's peers and the process's channels."""

    def __init__(self, *, store: Store, tools: SendingTools, members: Any, points: Any, emit: Any,
                 rand: random.Random | None = None) -> None:
        super().__init__(store=store, tools=tools, rand=rand)
        self.members = members
        self.points = points
        self.emit = emit

    # -- the batch loop ------------------------------------------------------------------------------------

    def run(self, now: datetime, max_batches: int | None = None, budget_seconds: float | None = None) -> dict[str, int]:
        """Claim and send due deliveries batch by batch, until none are due, or the batches or time run out."""
        started = time.monotonic()
        tally: dict[str, int] = {"recovered": self.recover_stale()}
        batches = 0
        pool = eventlet.GreenPool(max(self.settings.send_concurrency, 1))
        while max_batches is None or batches < max_batches:
            claimed = claim_due(self.store, now, self.settings.batch_size, self.replica)
            if not claimed:
                break
            batches += 1
            for outcome in pool.imap(lambda snapshot: self.process(snapshot, now), claimed):
                tally[outcome] = tally.get(outcome, 0) + 1
            if len(claimed) < self.settings.batch_size:
                break
            if budget_seconds is not None and time.monotonic() - started > budget_seconds:
                break
        DUE_BACKLOG.set(due_backlog(self.store, now))
        tally["batches"] = batches
        return tally

    def recover_stale(self) -> int:
        """Take back deliveries a crashed replica left ``sending`` for longer than the lease."""
        cutoff = utcnow() - timedelta(seconds=self.settings.lease_seconds)
        recovered = 0
        with self.store.transaction() as session:
            query = (select(Delivery).where(Delivery.state == SENDING, Delivery.claimed_at < cutoff)
                     .order_by(Delivery.claimed_at).limit(500))
            if self.store.is_postgresql:
                query = query.with_for_update(skip_locked=True)
            for delivery in session.scalars(query):
                recovered += 1
                now = utcnow()
                if delivery.attempt_started_at is None or self.channels.idempotent(delivery.channel):
                    self._requeue(session, delivery, now, now, "the replica that claimed it stopped; queued again")
                else:
                    self._fail(session, delivery, now, "interrupted during the provider call; not sent again so "
                               "that it can never arrive twice (outcome unknown)")
        return recovered

    # -- one delivery ----------------------------------------------------------------------------------------

    def process(self, snapshot: Snapshot, now: datetime) -> str:
        try:
            return self._process(snapshot, now)
        except Exception as error:  # one broken message must not stop the batch
            log.exception("a delivery failed unexpectedly", extra={"delivery_id": str(snapshot.id)})
            return self._retry(snapshot.id, now, f"unexpected error ({type(error).__name__})")

    def _process(self, snapshot: Snapshot, now: datetime) -> str:
        delivery_id = snapshot.id
        try:
            contact = Contact.from_rpc(self.members.get_contact(str(snapshot.member_id)))
        except NotFound:
            return self._suppress(delivery_id, now, UNKNOWN_MEMBER, "members does not know this member")
        except Unavailable as error:
            return self._retry(delivery_id, now, f"members did not answer ({error})")
        context = dict(snapshot.context)
        if snapshot.journey == "birthday" and contact.status != "closed" and context.get("coupon_spec") \
                and "coupon" not in context:
            coupon = self._birthday_coupon(snapshot, context, contact.language)
            if coupon is None:
                return self._retry(delivery_id, now, "points did not answer: the birthday coupon is not issued yet")
            context["coupon"] = coupon or None
        if context.get("coupon_reward") and contact.status != "closed" and "coupon" not in context:
            coupon = self._journey_coupon(snapshot, context, now)
            if coupon is None:
                return self._retry(delivery_id, now, "points did not answer: the journey's coupon is not issued yet")
            context["coupon"] = coupon or None

        with self.store.transaction() as session:
            delivery = self._claimed(session, delivery_id)
            if delivery is None:
                return "skipped"
            if context != snapshot.context:
                delivery.context = json.dumps(context, separators=(",", ":"), sort_keys=True)
            if snapshot.journey in SUMMARY_JOURNEYS:
                context["points"], context["postings"] = digests.totals(session, delivery_id)
                if context["points"] <= 0:
                    self._close(session, delivery, now, CANCELLED, "nothing to summarise")
                    return CANCELLED
            if snapshot.journey == "recall":  # checked when it is due to go, not when it was queued
                ahead = appointments.future_by_member(session, [snapshot.member_id], now)
                if ahead:
                    starts = ahead[snapshot.member_id]
                    recalls.postpone(session, snapshot.member_id, str(context.get("recall_type")),
                                     int(context.get("attempt") or 0), starts, self.group.zone, now)
                    self._close(session, delivery, now, SUPPRESSED, f"{APPOINTMENT_AHEAD}: the patient has booked "
                                f"for {isoformat(starts)}; the recall waits for that visit",
                                reason_code=APPOINTMENT_AHEAD)
                    return SUPPRESSED
            decision = decide(
                category=snapshot.category, outreach=snapshot.journey in OUTREACH_JOURNEYS, contact=contact, prefs=preferences.load(session, snapshot.member_id),
                requested_channel=snapshot.requested_channel, available=self.channels.available,
                default_order=self.settings.channel_order, now=now, zone=self.group.zone,
                quiet=self.settings.quiet_hours, expires_at=snapshot.expires_at,
                marketing_sent=self._marketing_sent(session, delivery, now) if snapshot.category == MARKETING else 0,
                cap=self.settings.marketing_weekly_cap)
            if isinstance(decision, Suppress):
                self._close(session, delivery, now, SUPPRESSED, f"{decision.reason}: {decision.detail}",
                            reason_code=decision.reason)
                return SUPPRESSED
            if isinstance(decision, Defer):
                self._requeue(session, delivery, now, decision.until,
                              f"deferred: {decision.reason} until {isoformat(decision.until)}")
                return "deferred"
            delivery.channel, delivery.attempt_started_at = decision.channel, now

        context.update(appointment_links(snapshot.journey, context, delivery_id, self.settings))  # never stored
        try:
            rendered = self.renderer.render(snapshot.journey, decision.channel, contact.language, context,
                                            member_name=contact.full_name, home_branch=contact.home_branch,
                                            link=link_for(snapshot.journey, context, self.settings.app_url))
        except Exception as error:  # a template that cannot render this message will not render it later either
            log.exception("template failed", extra={"delivery_id": str(delivery_id), "journey": snapshot.journey})
            return self._failed(delivery_id, now, f"template error ({type(error).__name__})", decision.channel)
        message = Message(delivery_id=str(delivery_id), member_id=str(snapshot.member_id), journey=snapshot.journey,
                          to=decision.address, subject=rendered.subject, text=rendered.text, body=rendered.body,
                          html=rendered.html, language=rendered.language,
                          link=link_for(snapshot.journey, context, self.settings.app_url))
        channel = self.channels[decision.channel]
        send_in = getattr(channel, "send_in", None)
        if send_in is not None:  # the service's own database (the inbox): written with the record of its sending
            return self._sent(delivery_id, now, decision.channel, partial(send_in, message=message), rendered.language)
        try:
            receipt = channel.send(message)
        except TransientFailure as failure:
            PROVIDER_FAILURES.labels(decision.channel, "transient").inc()
            return self._retry(delivery_id, now, failure.reason, failure.retry_after, decision.channel)
        except PermanentFailure as failure:
            PROVIDER_FAILURES.labels(decision.channel, "permanent").inc()
            return self._failed(delivery_id, now, failure.reason, decision.channel)
        return self._sent(delivery_id, now, decision.channel, receipt, rendered.language)

    def _claimed(self, session: Session, delivery_id: uuid.UUID) -> Delivery | None:
        """The delivery, locked, if this replica still holds it (a lease recovery may have taken it back)."""
        delivery = session.scalars(select(Delivery).where(Delivery.id == delivery_id).with_for_update()).first()
        if delivery is None or delivery.state != SENDING or delivery.claimed_by != self.replica:
            return None
        return delivery

    def _marketing_sent(self, session: Session, delivery: Delivery, now: datetime) -> int:
        """Marketing messages this member got (or is being sent) in the cap window, this one excluded."""
        if self.store.is_postgresql:
            # one cap decision per member at a time, across replicas (held until this transaction ends)
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                            {"key": f"notifications-cap:{delivery.member_id}"})
        window = cap_window_start(now)
        return int(session.scalar(select(func.count(Delivery.id)).where(
            Delivery.member_id == delivery.member_id, Delivery.category == MARKETING, Delivery.id != delivery.id,
            or_(and_(Delivery.state.in_((SENT, DELIVERED)), Delivery.sent_at >= window),
                and_(Delivery.state == SENDING, Delivery.attempt_started_at >= window)))) or 0)

    def _birthday_coupon(self, snapshot: Snapshot, context: dict[str, Any], language: str | None
                         ) -> dict[str, Any] | None:
        """The birthday coupon from points: the coupon, ``{}`` if points refused it, None if points is away.

        The idempotency key is the member and the birthday's year: however often this is retried — points
        down, a reply lost, a replica crashed — the member gets one coupon a year.
        """
        day = datetime.fromisoformat(context["day"]).date()
        title = labels()[self.renderer.language_for("birthday", language)]["birthday_coupon_title"]
        request = birthday_coupon_request(context["coupon_spec"], day, self.group.currency, title)
        return self._issue(snapshot, request, f"birthday-coupon:{snapshot.member_id}:{day.year}")

    def _journey_coupon(self, snapshot: Snapshot, context: dict[str, Any], now: datetime) -> dict[str, Any] | None:
        """A composed message's coupon: its reward's terms (``points.get_reward``), issued once per run and step
        (the key travels with the message); ``{}`` if points refused it, None if points is away."""
        reward = self._ask_points(snapshot, lambda: self.points.get_reward(str(context["coupon_reward"])),
                                  "the journey's coupon reward is gone; sending without it")
        if not reward:
            return reward
        request = reward_coupon_request(reward, local_date(now, self.group.zone), self.group.currency)
        return self._issue(snapshot, request, str(context["coupon_key"]))

    def _issue(self, snapshot: Snapshot, request: dict[str, Any], key: str) -> dict[str, Any] | None:
        """``request`` issued by points once per ``key``: the coupon as templates show it, ``{}`` if points refused
        it (the message goes without), None if points did not answer (the message waits)."""
        issued = self._ask_points(snapshot, lambda: self.points.issue_coupon(str(snapshot.member_id), request,
                                                                             idempotency_key=key),
                                  "points refused a coupon; sending without it")
        return coupon_facts(issued, request) if issued else issued

    @staticmethod
    def _ask_points(snapshot: Snapshot, ask: Any, refused: str) -> Any:
        """points' answer; ``{}`` if it refused (logged as ``refused``), None if it did not answer."""
        try:
            return ask()
        except Unavailable:
            return None
        except DomainError as refusal:
            log.warning(refused, extra={"delivery_id": str(snapshot.id), "error": refusal.code})
            return {}

    # -- outcomes -------------------------------------------------------------------------------------------

    def _sent(self, delivery_id: uuid.UUID, now: datetime, channel: str,
              receipt: Receipt | Callable[[Session], Receipt], language: str) -> str:
        """Record the delivery as sent with the provider's ``receipt``, or, for a channel that writes to this service's
        database, with what ``receipt(session)`` returns once it has written the message in the same transaction
        (nothing is written for a delivery this replica no longer holds)."""
        with self.store.transaction() as session:
            delivery = self._claimed(session, delivery_id)
            if delivery is None:
                return "skipped"
            if callable(receipt):
                receipt = receipt(session)
            provider_id, delivered = receipt.provider_id, receipt.delivered
            state = DELIVERED if delivered else SENT
            delivery.state, delivery.channel, delivery.provider_id, delivery.language = state, channel, provider_id, \
                language
            delivery.sent_at, delivery.delivered_at = now, (now if delivered else None)
            delivery.attempts += 1
            delivery.reason, delivery.updated_at = None, now
            deliveries.add_step(session, delivery.id, state, now, channel=channel, provider_id=provider_id)
            self.emit("notification_sent", sent_event(delivery), session=session)
            DELIVERIES.labels(delivery.journey, channel, state).inc()
            return state

    def _suppress(self, delivery_id: uuid.UUID, now: datetime, reason: str, detail: str) -> str:
        with self.store.transaction() as session:
            delivery = self._claimed(session, delivery_id)
            if delivery is None:
                return "skipped"
            self._close(session, delivery, now, SUPPRESSED, f"{reason}: {detail}", reason_code=reason)
            return SUPPRESSED

    def _failed(self, delivery_id: uuid.UUID, now: datetime, reason: str, channel: str | None = None) -> str:
        with self.store.transaction() as session:
            delivery = self._claimed(session, delivery_id)
            if delivery is None:
                return "skipped"
            self._attempted(delivery, channel)
            self._fail(session, delivery, now, reason)
            return FAILED

    def _retry(self, delivery_id: uuid.UUID, now: datetime, reason: str, retry_after: float | None = None,
               channel: str | None = None) -> str:
        with self.store.transaction() as session:
            delivery = self._claimed(session, delivery_id)
            if delivery is None:
                return "skipped"
            self._attempted(delivery, channel)
            if delivery.attempts >= self.settings.max_attempts:
                self._fail(session, delivery, now, f"gave up after {delivery.attempts} attempts: {reason}")
                return FAILED
            wait = retry_delay(delivery.attempts, self.settings.retry_base_seconds, self.settings.retry_max_seconds,
                               retry_after, self.rand)
            next_try = as_utc(now) + timedelta(seconds=wait)
            if delivery.expires_at is not None and next_try >= delivery.expires_at:
                self._fail(session, delivery, now, f"could not be sent before it expired: {reason}")
                return FAILED
            self._requeue(session, delivery, now, next_try,
                          f"attempt {delivery.attempts} failed: {reason}; next try {isoformat(next_try)}",
                          reason=f"retrying: {reason}")
            return "retried"

    @staticmethod
    def _attempted(delivery: Delivery, channel: str | None) -> None:
        """Count an attempt (on ``channel``, when one was chosen) that did not send the message."""
        delivery.attempts += 1
        if channel:
            delivery.channel = channel

    def _requeue(self, session: Session, delivery: Delivery, now: datetime, due: datetime, detail: str,
                 reason: str | None = None) -> None:
        channel = delivery.channel
        delivery.state, delivery.due_at, delivery.updated_at = QUEUED, due, now
        delivery.claimed_by = delivery.claimed_at = delivery.attempt_started_at = None
        delivery.channel = delivery.requested_channel  # the rules choose again next time
        delivery.reason = reason
        deliveries.add_step(session, delivery.id, QUEUED, now, channel=channel, detail=detail)

    def _fail(self, session: Session, delivery: Delivery, now: datetime, reason: str) -> None:
        self._close(session, delivery, now, FAILED, reason)
        self.emit("notification_failed", failed_event(delivery, reason), session=session)

    def _close(self, session: Session, delivery: Delivery, now: datetime, state: str, reason: str,
               reason_code: str | None = None) -> None:
        delivery.state, delivery.reason, delivery.updated_at = state, reason[:2000], now
        delivery.claimed_by = delivery.claimed_at = None
        deliveries.add_step(session, delivery.id, state, now, channel=delivery.channel, detail=reason[:2000])
        DELIVERIES.labels(delivery.journey, delivery.channel or "none", state).inc()
        if state == SUPPRESSED:
            SUPPRESSIONS.labels(delivery.journey, reason_code or "other").inc()


class Sending(DependencyProvider):
    """``self.sending``: the process's ``SendingTools``, built once per container when it starts."""

    def setup(self) -> None:
        self.database = next((d for d in self.container.dependencies if isinstance(d, Database)), None)
        if self.database is None:
            raise RuntimeError("Sending needs a Database dependency (the inbox) in the same service")

    def start(self) -> None:
        config = self.container.config
        group = group_from_config(config)
        self.tools = SendingTools(
            settings=settings_from_config(config), group=group,
            channels=build_channels(config, self.database.store), renderer=Renderer(group),
            replica=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
        composed.seed(self.database.store, self.tools.settings, utcnow())  # the shipped journeys, once

    def get_dependency(self, worker_ctx: Any) -> SendingTools:
        return self.tools

    def stop(self) -> None:
        tools = getattr(self, "tools", None)
        if tools is not None:
            tools.channels.close()

    def kill(self) -> None:
        self.stop()
