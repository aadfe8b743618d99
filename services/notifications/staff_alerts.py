"""Staff alerts about negative feedback: recorded from ``feedback_submitted``, sent through the channel adapters.

The rule (what is negative, who, which channel, when) is ``rules.alerts``; this module keeps the rows
(``staff_alerts``) and sends them the way the scheduler sends deliveries: claimed in batches (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL), rendered in the group's language, sent, then sent / retried with backoff on a
transient provider answer / failed on a permanent one. They are not members' deliveries: no consent, cap
or member preference applies, and they announce no ``notification_sent`` event (they are counted in
``careloop_notifications_staff_alerts_total``). Logs carry alert and feedback ids, never an address.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.clock import as_utc, utcnow
from services.kit.config import BranchAlerts, Group
from services.kit.db import dialect_insert
from services.kit.telemetry import counter
from services.notifications.channels.base import Message, PermanentFailure, TransientFailure
from services.notifications.models import FAILED, QUEUED, SENDING, SENT, SUPPRESSED, StaffAlert
from services.notifications.rules.addresses import address_problem
from services.notifications.rules.alerts import (
    JOURNEY,
    NO_RECIPIENT,
    Feedback,
    alerts_for,
    context_of,
    is_negative,
    needs_recipient,
)
from services.notifications.rules.sending import retry_delay
from services.notifications.schedule import PROVIDER_FAILURES, Sender
from services.notifications.settings import Settings

log = logging.getLogger(__name__)

ALERTS = counter("careloop_notifications_staff_alerts_total",
                 "Staff alerts about negative feedback, by branch, channel and outcome "
                 "(queued, sent, retried, failed, suppressed)", ("branch", "channel", "outcome"))


def record(session: Session, event: dict[str, Any], group: Group, settings: Settings, now: datetime) -> int:
    """Queue the alerts a feedback calls for (once per feedback, channel and address); how many were new."""
    feedback = Feedback.from_event(event)
    if not is_negative(feedback):
        return 0
    branch = group.branches.get(feedback.branch)
    recipients = branch.alerts if branch is not None else BranchAlerts()
    context = json.dumps(context_of(feedback), separators=(",", ":"), sort_keys=True)
    base = {"feedback_id": feedback.feedback_id, "branch": feedback.branch, "urgent": feedback.urgent_complaint,
            "context": context, "created_at": now, "updated_at": now, "attempts": 0}
    rows = [{**base, "id": uuid.uuid4(), "channel": alert.channel, "recipient": alert.address, "state": QUEUED,
             "due_at": alert.due_at} for alert in alerts_for(feedback, recipients, now, settings.quiet_hours,
                                                             group.zone)]
    if needs_recipient(feedback, recipients):
        why = "unknown branch" if branch is None else "no alert address for this kind of feedback in the group file"
        rows.append({**base, "id": uuid.uuid4(), "channel": "none", "recipient": "", "state": SUPPRESSED,
                     "due_at": now, "reason": f"{NO_RECIPIENT}: {why}"})
    if not rows:
        return 0
    insert = dialect_insert(session, StaffAlert)
    statement = insert.values(rows).on_conflict_do_nothing(index_elements=["feedback_id", "channel", "recipient"])
    inserted = set(session.scalars(statement.returning(StaffAlert.id)))
    for row in rows:
        if row["id"] in inserted:
            ALERTS.labels(feedback.branch, row["channel"], row["state"]).inc()
            if row["state"] == SUPPRESSED:
                log.warning("negative feedback with nobody to alert", extra={
                    "feedback_id": feedback.feedback_id, "branch": feedback.branch, "reason": NO_RECIPIENT})
    return len(inserted)


def of_feedback(session: Session, feedback_id: str) -> list[StaffAlert]:
    query = select(StaffAlert).where(StaffAlert.feedback_id == feedback_id).order_by(StaffAlert.created_at,
                                                                                     StaffAlert.channel)
    return list(session.scalars(query))


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    branch: str
    channel: str
    recipient: str
    context: dict[str, Any]


class AlertSender(Sender):
    """Sends due staff alerts; one per scheduler run, with the process's channels and templates."""

    def run(self, now: datetime, max_batches: int | None = None) -> dict[str, int]:
        tally: dict[str, int] = {}
        recovered = self.recover_stale()
        if recovered:
            tally["recovered"] = recovered
        batches = 0
        while max_batches is None or batches < max_batches:
            claimed = self.claim(now)
            batches += 1
            for alert in claimed:
                outcome = self.process(alert, now)
                tally[outcome] = tally.get(outcome, 0) + 1
            if len(claimed) < self.settings.batch_size:
                break
        return tally

    def claim(self, now: datetime) -> list[Claimed]:
        with self.store.transaction() as session:
            query = (select(StaffAlert).where(StaffAlert.state == QUEUED, StaffAlert.due_at <= as_utc(now))
                     .order_by(StaffAlert.due_at, StaffAlert.id).limit(self.settings.batch_size))
            if self.store.is_postgresql:
                query = query.with_for_update(skip_locked=True)
            claimed = []
            for alert in session.scalars(query):
                alert.state, alert.claimed_by, alert.claimed_at = SENDING, self.replica, utcnow()
                alert.attempt_started_at = None
                claimed.append(Claimed(alert.id, alert.branch, alert.channel, alert.recipient,
                                       json.loads(alert.context) if alert.context else {}))
            return claimed

    def recover_stale(self) -> int:
        """Alerts a crashed replica left ``sending``: queued again if no provider call began, else failed."""
        cutoff = utcnow() - timedelta(seconds=self.settings.lease_seconds)
        with self.store.transaction() as session:
            query = select(StaffAlert).where(StaffAlert.state == SENDING, StaffAlert.claimed_at < cutoff).limit(500)
            if self.store.is_postgresql:
                query = query.with_for_update(skip_locked=True)
            rows = list(session.scalars(query))
            for alert in rows:
                if alert.attempt_started_at is None or self.channels.idempotent(alert.channel):
                    self._requeue(alert, utcnow(), utcnow(), None)
                else:
                    self._close(alert, utcnow(), FAILED, "interrupted during the provider call (outcome unknown)")
            return len(rows)

    def process(self, claimed: Claimed, now: datetime) -> str:
        try:
            return self._process(claimed, now)
        except Exception as error:  # one broken alert must not stop the batch
            log.exception("a staff alert failed unexpectedly", extra={"alert_id": str(claimed.id)})
            return self._outcome(claimed, now, retry=f"unexpected error ({type(error).__name__})")

    def _process(self, claimed: Claimed, now: datetime) -> str:
        if claimed.channel not in self.channels.available:
            return self._outcome(claimed, now, fail=f"the {claimed.channel} channel is not set up")
        problem = address_problem(claimed.channel, claimed.recipient)
        if problem:
            return self._outcome(claimed, now, fail=f"invalid_address: {problem}")
        context = claimed.context
        if self.settings.public_url and str(context.get("path", "")).startswith("/"):  # an absolute link
            context = {**context, "path": self.settings.public_url + context["path"]}
        rendered = self.renderer.render(JOURNEY, claimed.channel, self.group.default_language, context)
        with self.store.transaction() as session:
            alert = self._claimed(session, claimed.id)
            if alert is None:
                return "skipped"
            alert.attempt_started_at = now
        message = Message(delivery_id=str(claimed.id), member_id="", journey=JOURNEY, to=claimed.recipient,
                          subject=rendered.subject, text=rendered.text, body=rendered.body, html=rendered.html,
                          language=rendered.language)
        channel = self.channels[claimed.channel]
        try:
            receipt = channel.send(message)
        except TransientFailure as failure:
            PROVIDER_FAILURES.labels(claimed.channel, "transient").inc()
            return self._outcome(claimed, now, retry=failure.reason, retry_after=failure.retry_after)
        except PermanentFailure as failure:
            PROVIDER_FAILURES.labels(claimed.channel, "permanent").inc()
            return self._outcome(claimed, now, fail=failure.reason)
        return self._outcome(claimed, now, provider_id=receipt.provider_id, language=rendered.language)

    def _claimed(self, session: Session, alert_id: uuid.UUID) -> StaffAlert | None:
        alert = session.scalars(select(StaffAlert).where(StaffAlert.id == alert_id).with_for_update()).first()
        if alert is None or alert.state != SENDING or alert.claimed_by != self.replica:
            return None
        return alert

    def _outcome(self, claimed: Claimed, now: datetime, *, fail: str | None = None, retry: str | None = None,
                 retry_after: float | None = None, provider_id: str | None = None,
                 language: str | None = None) -> str:
        """Record what the attempt came to: sent, retried later, or failed (retries run out count as failed)."""
        with self.store.transaction() as session:
            alert = self._claimed(session, claimed.id)
            if alert is None:
                return "skipped"
            alert.attempts += 1
            if fail is not None:
                self._close(alert, now, FAILED, fail)
                return FAILED
            if retry is not None:
                if alert.attempts >= self.settings.max_attempts:
                    self._close(alert, now, FAILED, f"gave up after {alert.attempts} attempts: {retry}")
                    return FAILED
                wait = retry_delay(alert.attempts, self.settings.retry_base_seconds, self.settings.retry_max_seconds,
                                   retry_after, self.rand)
                self._requeue(alert, now, as_utc(now) + timedelta(seconds=wait), f"retrying: {retry}")
                ALERTS.labels(alert.branch, alert.channel, "retried").inc()
                return "retried"
            alert.provider_id, alert.language, alert.sent_at = provider_id, language, now
            self._close(alert, now, SENT, None)
            return SENT

    @staticmethod
    def _requeue(alert: StaffAlert, now: datetime, due: datetime, reason: str | None) -> None:
        alert.state, alert.due_at, alert.updated_at, alert.reason = QUEUED, due, now, reason
        alert.claimed_by = alert.claimed_at = alert.attempt_started_at = None

    @staticmethod
    def _close(alert: StaffAlert, now: datetime, state: str, reason: str | None) -> None:
        alert.state, alert.reason, alert.updated_at = state, reason[:2000] if reason else None, now
        alert.claimed_by = alert.claimed_at = None
        ALERTS.labels(alert.branch, alert.channel, state).inc()
        if state == FAILED:
            log.warning("a staff alert failed", extra={"alert_id": str(alert.id), "feedback_id": alert.feedback_id,
                                                       "channel": alert.channel})
