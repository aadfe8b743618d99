"""The interfaces service: what CareLoop owes the outside world (the rooms: the package's docstring).

Entrypoints only. Inherited from ``kit.Service``: ``ping`` (the gateway's readiness), dead letters, the
metrics and log context; its own database (kit tables and ``models``) and outbox.

Identity: ``identify`` is the one call every adapter (HIS webhooks, FHIR, HL7, imports) makes for an
incoming patient; members judges (``members.identify``) and a probable match waits here, in the review
queue, for a branch manager to ``resolve_review``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import eventlet
from nameko.timer import timer
from sqlalchemy import select

from services.interfaces import access, reviews
from services.interfaces.events import EVENTS
from services.interfaces.hl7 import receive
from services.interfaces.hl7.mllp import mllp
from services.interfaces.imports import jobs
from services.interfaces.imports.jobs import BatchPeer
from services.interfaces.models import IMPORTING, VALIDATING, ImportJob
from services.interfaces.schemas import (
    RESOLVED,
    ArrivalSchema,
    DeliveryQuerySchema,
    Hl7AnswerSchema,
    IdentityResultSchema,
    ImportChunkSchema,
    ImportIssuePageSchema,
    ImportJobPageSchema,
    ImportJobSchema,
    ImportSpecSchema,
    IssuedSubscriptionSchema,
    ResolutionSchema,
    ReviewDetailSchema,
    ReviewPageSchema,
    ReviewQuerySchema,
    ReviewSchema,
    SubscriptionListSchema,
    SubscriptionQuerySchema,
    SubscriptionRequestSchema,
    SubscriptionSchema,
    WebhookDeliveryPageSchema,
    WebhookDeliverySchema,
)
from services.interfaces.settings import allowed_hosts, hl7_facilities, setting
from services.interfaces.webhooks import deliveries, rules, sender, subscriptions
from services.kit import Database, Invalid, Outbox, Service, event_handler, idempotent, load, rpc
from services.kit.clock import utcnow
from services.kit.contracts import ENVELOPE, Event
from services.kit.gates import Gates
from services.kit.paging import keyset_page
from services.kit.peers import Peer
from services.kit.schemas import With, page_limit
from services.members.events import MemberEnrolled, MembersImported, MemberUpdated, TierChanged, enrolments
from services.points.events import PointsEarned, PointsRedeemed, VisitPointsEarned, earned_lines
from services.records.events import AppointmentBooked, AppointmentCancelled, VisitCompleted, VisitRefunded

HTTP = sender.session()


def _forwarded(contract: type[Event], as_type: str | None = None) -> Callable[[Callable], Callable]:
    """A webhook handler of ``contract``'s events, delivered to the subscribers of ``as_type`` (the event's own
    type unless given). Its queue is bound only while an integration subscribes to that type (``kit.gates``:
    nobody subscribing, the broker drops the events); an event that still arrives with nobody subscribed is
    acknowledged after one read (``kit.handlers.event_handler``'s ``wanted``)."""
    interest = as_type or contract.event_type

    def subscribed(service: Any, _event_type: str) -> bool:
        with service.db.read() as connection:
            return subscriptions.any_active(connection, interest)

    return event_handler(contract, wanted=subscribed, gate=interest)


class InterfacesService(Service):
    name = "interfaces"
    db = Database()
    events = Outbox(EVENTS)
    gates = Gates(wanted=subscriptions.active_types)  # webhook handlers' queues bound while subscribed
    members = Peer("members")
    records = Peer("records")

    member_batches = BatchPeer("members")  # the import's batch RPCs, with their longer deadline
    point_batches = BatchPeer("points")
    record_batches = BatchPeer("records")

    # --- identity ------------------------------------------------------------------------------------

    @rpc
    @idempotent
    def identify(self, arrival: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Who an incoming patient is, for every adapter (``ArrivalSchema``: the patient in members'
        ``PatientSchema`` shape, who sent it, the message as received).

        Answers ``IdentityResultSchema``: ``matched`` (a sure match — same identifier, same ID document, or
        same phone under the same name — linked: the patient's identifiers are added to ``member``),
        ``enrolled`` (nobody matched: ``member`` is new) or ``review`` (a probable match — same name and
        birth date with another phone, same phone under another name —: no member is created or changed;
        ``review`` waits in the queue of the patient's branch, with the original message, until a branch
        manager resolves it). The same ``idempotency_key`` gives the same answer; the same (``source``,
        ``source_ref``) queues one review. The caller must be allowed at the patient's ``home_branch``
        (members checks). Invalid patient: 422 with the fields; members unreachable: 503 (retry).
        """
        data = load(ArrivalSchema(), arrival)
        return IdentityResultSchema().dump(reviews.identify(self.db.session, self.members, data, idempotency_key,
                                                            utcnow(), self.caller.actor))

    @rpc
    def identity_reviews(self, query: dict[str, Any]) -> dict[str, Any]:
        """A branch's identity reviews in one status (default ``open``), oldest first, a page at a time."""
        data = load(ReviewQuerySchema(), query)
        self.caller.require_role(*access.REVIEWERS, action="read identity reviews")
        self.group.branch(data["branch"])
        self.caller.require_branch(data["branch"], "read this branch's identity reviews")
        limit = min(data["limit"], setting(self.config, "REVIEW_PAGE_MAX"))
        rows, next_cursor = reviews.page(self.db.session, data["branch"], data["status"], limit, data["cursor"])
        return ReviewPageSchema().dump({"items": rows, "next_cursor": next_cursor})

    @rpc
    def identity_review(self, review_id: str) -> dict[str, Any]:
        """One review with the original message and its log; the reading is logged too."""
        self.caller.require_role(*access.REVIEWERS, action="read identity reviews")
        review = reviews.get(self.db.session, review_id)
        self.caller.require_branch(review.branch, "read this branch's identity reviews")
        log = reviews.read(self.db.session, review, self.caller.actor, utcnow())
        return ReviewDetailSchema().dump(With(review, log=log))

    @rpc
    @idempotent
    def resolve_review(self, review_id: str, resolution: dict[str, Any],
                       idempotency_key: str | None = None) -> dict[str, Any]:
        """Resolve an open review (``ResolutionSchema``): ``link`` to a member (the patient's identifiers are
        added to it) or ``create`` a new member (even beside the candidate with the same name and birth
        date). Once only: a resolved review is a 409 saying how it was resolved. The review stays locked
        while members acts, so two people resolving at once do it once."""
        data = load(ResolutionSchema(), resolution)
        self.caller.require_role(*access.REVIEWERS, action="resolve identity reviews")
        review = reviews.begin_resolve(self.db.session, review_id)
        self.caller.require_branch(review.branch, "resolve this branch's identity reviews")
        if data["action"] == "link":
            member_id = str(data["member_id"])
            identifiers = reviews.patient_of(review).get("identifiers") or []
            if identifiers:
                self.members.add_identifiers(member_id, {"identifiers": identifiers}, idempotency_key=idempotency_key)
            else:
                self.members.get_member(member_id)  # it exists (404 otherwise)
        else:
            created = self.members.identify(reviews.patient_of(review, data["phone"]), create_new=True,
                                            idempotency_key=idempotency_key)
            member_id = created["member"]["id"]
        reviews.resolved(self.db.session, review, RESOLVED[data["action"]], member_id, self.caller.actor, utcnow())
        return ReviewSchema().dump(review)

    # --- HL7 v2 ------------------------------------------------------------------------------------

    @mllp
    def receive_mllp(self, message: bytes) -> tuple[str, str]:
        """One message from the MLLP listener (``hl7/mllp.py``): its ACK and character set, which the listener
        encodes, frames and sends after this worker's transaction committed."""
        done = self._hl7(message, "mllp")
        return done.ack, done.codec

    @rpc
    def receive_hl7(self, message: bytes | str) -> dict[str, Any]:
        """One message sent over HTTP (``POST /v1/hl7``), answered ``{"ack", "ack_code"}``. Retry-safe without
        an idempotency key: the sender's control id (MSH-10) is the key, kept in the message log."""
        self.caller.require_role(*access.HL7_SENDERS, action="send HL7 messages")
        if isinstance(message, str):
            message = message.encode("utf-8")
        if not isinstance(message, bytes):
            raise Invalid("An HL7 message is text or bytes.", {"message": ["Not a message."]})
        return Hl7AnswerSchema().dump(self._hl7(message, f"http:{self.caller.kind}:{self.caller.subject}"))

    def _hl7(self, message: bytes, via: str) -> receive.Done:
        return receive.take(self.db.session, receive.Peers(self.members, self.records), message, via, self.caller,
                            hl7_facilities(self.config), self.group, utcnow())

    @staticmethod
    def hl7_unavailable(message: bytes) -> tuple[str, str]:
        """The MLLP answer when the message could not be handled now (nothing kept: send it again)."""
        return receive.unavailable(message, utcnow()), "utf-8"

    # --- outbound webhooks -------------------------------------------------------------------------

    @rpc
    @idempotent
    def subscribe(self, request: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Subscribe an integration to an event type at a URL on the allowlist (else 422, nothing stored);
        answers the subscription with its signing secret, shown this once."""
        self.caller.require_role(*access.SUBSCRIPTION_MANAGERS, action="manage webhook subscriptions")
        data = load(SubscriptionRequestSchema(), request)
        row, secret = subscriptions.create(self.db.session, data, allowed_hosts(self.config), self.caller.actor, utcnow())
        self.gates.open(self.db.session, row.event_type)  # bound before the subscription commits: nothing missed
        return IssuedSubscriptionSchema().dump(With(row, secret=secret))

    @rpc
    def webhook_subscriptions(self, query: dict[str, Any]) -> dict[str, Any]:
        self.caller.require_role(*access.SUBSCRIPTION_READERS, action="read webhook subscriptions")
        data = load(SubscriptionQuerySchema(), query)
        return SubscriptionListSchema().dump({"items": subscriptions.listed(self.db.session, data["integration"])})

    @rpc
    def unsubscribe(self, subscription_id: str) -> dict[str, Any]:
        """No new deliveries for this subscription (those pending still go)."""
        self.caller.require_role(*access.SUBSCRIPTION_MANAGERS, action="manage webhook subscriptions")
        return SubscriptionSchema().dump(subscriptions.disable(self.db.session, subscription_id, utcnow()))

    @rpc
    def webhook_deliveries(self, subscription_id: str, query: dict[str, Any]) -> dict[str, Any]:
        """A subscription's delivery log, newest first, each delivery with its attempts."""
        self.caller.require_role(*access.SUBSCRIPTION_READERS, action="read webhook deliveries")
        data = load(DeliveryQuerySchema(), query)
        rows, next_cursor = deliveries.page(self.db.session, subscription_id, data["limit"], data["cursor"])
        return WebhookDeliveryPageSchema().dump({"items": [With(row, log=log) for row, log in rows],
                                                 "next_cursor": next_cursor})

    @rpc
    @idempotent
    def replay_webhook_delivery(self, subscription_id: str, delivery_id: str,
                                idempotency_key: str | None = None) -> dict[str, Any]:
        """Send a delivery again now, with a fresh retry window (a parked one, or one the subscriber lost)."""
        self.caller.require_role(*access.SUBSCRIPTION_MANAGERS, action="replay webhook deliveries")
        row, log = deliveries.replay(self.db.session, subscription_id, delivery_id, utcnow())
        return WebhookDeliverySchema().dump(With(row, log=log))

    @timer(interval=1)
    def send_webhooks(self) -> None:
        """POST what is due (every replica; rows are claimed, never shared), a batch per tick, side by side."""
        config = self.config
        if not setting(config, "WEBHOOK_SENDING"):
            return
        due = deliveries.claim_due(self.db.store, utcnow(), int(setting(config, "WEBHOOK_BATCH")),
                                   float(setting(config, "WEBHOOK_LEASE_SECONDS")))
        if due:
            list(eventlet.GreenPool(min(len(due), 10)).imap(self._deliver, due))

    def _deliver(self, due: deliveries.Due) -> str:
        config, hosts = self.config, allowed_hosts(self.config)
        retry = deliveries.Retry(float(setting(config, "WEBHOOK_RETRY_BASE_SECONDS")),
                                 float(setting(config, "WEBHOOK_RETRY_MAX_SECONDS")),
                                 timedelta(hours=float(setting(config, "WEBHOOK_RETRY_HOURS"))))
        try:
            rules.check_target(due.target_url, hosts)
        except Invalid:  # the allowlist changed since it subscribed: parked, never sent
            return deliveries.record(self.db.store, due, sender.Outcome(False, None, None, 0), utcnow(), retry,
                                     refused="target host no longer on the allowlist")
        outcome = sender.post(HTTP, due.target_url, due.secret, due.body, {
            "X-CareLoop-Event": due.event_type, "X-CareLoop-Delivery": str(due.id),
            "X-CareLoop-Subscription": str(due.subscription_id)}, float(setting(config, "WEBHOOK_TIMEOUT_SECONDS")))
        return deliveries.record(self.db.store, due, outcome, utcnow(), retry)

    def _fan_out(self, contract: type[Event], event: dict[str, Any]) -> None:
        data = contract().dump({k: v for k, v in event.items() if k not in ENVELOPE})
        body = rules.body_of(contract.event_type, str(event["event_id"]), event["occurred_at"], data)
        deliveries.fan_out(self.db.session, contract.event_type, str(event["event_id"]), body, utcnow())

    @_forwarded(MemberEnrolled)
    def on_member_enrolled(self, event: dict[str, Any]) -> None:
        self._fan_out(MemberEnrolled, event)

    @_forwarded(MembersImported, as_type="member_enrolled")
    def on_members_imported(self, event: dict[str, Any]) -> None:
        """Partners receive an import's members as they always have: a ``member_enrolled`` delivery a member, each
        with an event id of its own derived from the batch's (the same on a redelivery)."""
        for member in enrolments(event):
            member_event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"careloop:{event['event_id']}:{member['member_id']}")
            self._fan_out(MemberEnrolled, {**member, "event_id": member_event_id})

    @_forwarded(MemberUpdated)
    def on_member_updated(self, event: dict[str, Any]) -> None:
        self._fan_out(MemberUpdated, event)

    @_forwarded(TierChanged)
    def on_tier_changed(self, event: dict[str, Any]) -> None:
        self._fan_out(TierChanged, event)

    @_forwarded(VisitCompleted)
    def on_visit_completed(self, event: dict[str, Any]) -> None:
        self._fan_out(VisitCompleted, event)

    @_forwarded(VisitRefunded)
    def on_visit_refunded(self, event: dict[str, Any]) -> None:
        self._fan_out(VisitRefunded, event)

    @_forwarded(PointsEarned)
    def on_points_earned(self, event: dict[str, Any]) -> None:
        self._fan_out(PointsEarned, event)

    @_forwarded(VisitPointsEarned, as_type="points_earned")
    def on_visit_points_earned(self, event: dict[str, Any]) -> None:
        """Partners receive a visit's earn as they always have: a ``points_earned`` delivery a posting, each with an
        event id of its own derived from the event's (the same on a redelivery)."""
        for line in earned_lines(event):
            line_id = uuid.uuid5(uuid.NAMESPACE_URL, f"careloop:{event['event_id']}:{line['posting_id']}")
            self._fan_out(PointsEarned, {**line, "event_id": line_id, "occurred_at": event["occurred_at"]})

    @_forwarded(PointsRedeemed)
    def on_points_redeemed(self, event: dict[str, Any]) -> None:
        self._fan_out(PointsRedeemed, event)

    @_forwarded(AppointmentBooked)
    def on_appointment_booked(self, event: dict[str, Any]) -> None:
        self._fan_out(AppointmentBooked, event)

    @_forwarded(AppointmentCancelled)
    def on_appointment_cancelled(self, event: dict[str, Any]) -> None:
        self._fan_out(AppointmentCancelled, event)

    # --- imports (imports/jobs.py) ---------------------------------------------------------------------

    def _import(self, job_id: str, lock: bool = False) -> ImportJob:
        self.caller.require_role(*access.IMPORTERS, action="work with imports")
        return jobs.get(self.db.session, job_id, self.caller, lock=lock)

    def _job_view(self, job: ImportJob, action: str | None = None) -> dict[str, Any]:
        if action is not None:
            jobs.audit(self.db.session, job, action, self.caller, utcnow())
        return ImportJobSchema().dump(job)

    @rpc
    def create_import(self, spec: dict[str, Any]) -> dict[str, Any]:
        """A new import job, waiting for its file (``add_import_chunk``)."""
        self.caller.require_role(*access.IMPORTERS, action="import")
        job = jobs.create(self.db.session, load(ImportSpecSchema(), spec), self.caller, utcnow())
        return ImportJobSchema().dump(job)

    @rpc
    def add_import_chunk(self, job_id: str, chunk: dict[str, Any]) -> dict[str, Any]:
        """The next piece of the job's file (a piece sent twice is written once)."""
        data = load(ImportChunkSchema(), chunk)
        if not isinstance(data["data"], bytes):
            raise Invalid("data must be bytes.", {"data": ["Expected bytes."]})
        job = self._import(job_id, lock=True)
        jobs.append(job, data["offset"], data["data"], self.config, utcnow())
        return ImportJobSchema().dump(job)

    @rpc
    def start_import_check(self, job_id: str) -> dict[str, Any]:
        """The dry run: every row checked, nothing imported; the report fills as it goes."""
        job = self._import(job_id, lock=True)
        jobs.start(job, VALIDATING, utcnow())
        return self._job_view(job, "checked")

    @rpc
    @idempotent
    def commit_import(self, job_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
        """Import the rows that passed, in batches; resumes after a crash where it stopped."""
        job = self._import(job_id, lock=True)
        jobs.start(job, IMPORTING, utcnow())
        return self._job_view(job, "committed")

    @rpc
    def cancel_import(self, job_id: str) -> dict[str, Any]:
        job = self._import(job_id, lock=True)
        jobs.cancel(job, utcnow())
        return self._job_view(job, "cancelled")

    @rpc
    def get_import(self, job_id: str) -> dict[str, Any]:
        return ImportJobSchema().dump(self._import(job_id))

    @rpc
    def list_imports(self, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        self.caller.require_role(*access.IMPORTERS, action="list imports")
        query = select(ImportJob)
        if not self.caller.all_branches:
            query = query.where(ImportJob.created_by == self.caller.actor)
        items, next_cursor = keyset_page(self.db.session, query, ImportJob.created_at, ImportJob.id,
                                         page_limit(limit, 20, 100), cursor)
        return ImportJobPageSchema().dump({"items": items, "next_cursor": next_cursor})

    @rpc
    def import_report(self, job_id: str, phase: str = "dry_run", limit: int | None = None,
                      cursor: str | None = None) -> dict[str, Any]:
        """The row-by-row report (row, column, value, message) of the dry run or the commit, a page at a time."""
        if phase not in ("dry_run", "commit"):
            raise Invalid("phase is dry_run or commit.", {"phase": ["Unknown phase."]})
        job = self._import(job_id)
        after = int(cursor) if cursor and cursor.isdigit() else None
        items, last = jobs.issues(self.db.session, job, phase, page_limit(limit, 500, 5000), after)
        if after is None:
            jobs.audit(self.db.session, job, "report_read", self.caller, utcnow())
        return ImportIssuePageSchema().dump({"items": items, "next_cursor": str(last) if last else None})

    @timer(interval=1)
    def import_tick(self) -> None:
        """Carry on every import being checked or committed (after a restart too)."""
        jobs.advance(self.db.store, {"members": self.member_batches, "points": self.point_batches,
                                     "records": self.record_batches}, self.config)
