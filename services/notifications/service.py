"""The notifications service: care journeys from events and days, sent on the member's channel and terms.

Entrypoints only: events become queued deliveries (``rules.journeys``, ``appointments``, ``digests``,
``recalls``) or runs of composed journeys — the shipped welcome, tier upgrade, post-visit advice and survey
among them (``composed``) —, daily scans queue birthdays, festivals, recalls and segment B (``scans``), and the
scheduler sends what is due (``schedule``). Negative feedback alerts the branch's staff (``rules.alerts``,
``staff_alerts``). Staff read history, preview, set preferences and the inbox. The rooms: the package's
docstring.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from nameko.timer import timer

from services.kit import Database, Outbox, Service, idempotent, load, rpc
from services.kit.clock import local_date, utcnow
from services.kit.errors import Forbidden, Invalid
from services.kit.handlers import event_handler
from services.kit.peers import Peer
from services.kit.schemas import page_limit
from services.members.events import (
    MemberEnrolled,
    MemberMerged,
    MembersImported,
    MemberStatusChanged,
    MemberUnmerged,
    TierChanged,
    TierReviewNotice,
    enrolments,
)
from services.notifications import (
    appointments,
    audience,
    composed,
    deliveries,
    digests,
    inbox,
    preferences,
    recalls,
    receipts,
    sign_in,
    staff_alerts,
    templates,
)
from services.notifications.access import ALERT_READERS, JOURNEY_MANAGERS, REACTIVATORS, SENDERS
from services.notifications.events import EVENTS
from services.notifications.models import SUPPRESSED, AudienceMember, Preference
from services.notifications.rules import journeys
from services.notifications.rules.composed import fact_of
from services.notifications.rules.festivals import festival_dates
from services.notifications.scans import JOBS, DailyJourneys
from services.notifications.schedule import DUE_BACKLOG, Dispatcher, Sending, due_work, failed_event
from services.notifications.schemas import (
    DeliveryDetailSchema,
    DeliveryPageSchema,
    DeliverySchema,
    FeedbackAlertsSchema,
    FestivalCalendarSchema,
    InboxMessageSchema,
    InboxPageSchema,
    JourneyDefinitionSchema,
    JourneyDryRunSchema,
    JourneyPageSchema,
    JourneyPreviewRequestSchema,
    JourneyPreviewSchema,
    JourneyQuerySchema,
    JourneySchema,
    NotificationCancelSchema,
    NotificationPreferencesChangeSchema,
    NotificationPreferencesSchema,
    NotificationPreviewRequestSchema,
    NotificationPreviewSchema,
    ReactivationItemSchema,
    ReactivationListSchema,
    ReactivationQuerySchema,
    ReceiptOutcomeSchema,
    ScheduleMessageSchema,
    SignInCodeSchema,
    SignInCodeSentSchema,
)
from services.points.events import PointsEarned, PointsExpiring, VisitPointsEarned, earned_lines
from services.records.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    CarePlanUpdated,
    FeedbackSubmitted,
    VisitCancelled,
    VisitCompleted,
    WaitlistOfferClosed,
    WaitlistSlotOffered,
)


class NotificationsService(Service):
    name = "notifications"
    db = Database()
    events = Outbox(EVENTS)
    sending = Sending()
    members = Peer("members")
    points = Peer("points")
    records = Peer("records")

    def _queue(self, plan: journeys.Plan | None, now: datetime) -> None:
        if plan is not None:
            deliveries.queue(self.db.session, plan, now)

    def _composed(self, event_type: str, event: dict[str, Any], now: datetime) -> None:
        """A fact composed journeys — the shipped ones among them — may start on or exit by (``composed``)."""
        composed.on_fact(self.db.session, fact_of(event_type, event, now), now, self.sending.journeys,
                         self.sending.group.zone)

    @staticmethod
    def _now(now: str | None) -> datetime:
        """The business clock: real time, or the moment a test or an operator gives."""
        return utcnow() if now is None else journeys.parse_time(now)

    # -- members --------------------------------------------------------------------------------------------

    @event_handler(MemberEnrolled)
    def on_member_enrolled(self, event: dict[str, Any]) -> None:
        now = utcnow()
        audience.enrolled(self.db.session, event["member_id"], event["home_branch"], now)
        self._composed("member_enrolled", event, now)  # the welcome: a shipped composed journey

    @event_handler(MembersImported)
    def on_members_imported(self, event: dict[str, Any]) -> None:
        """An import's members (issue 19): each in the audience and welcomed as ``on_member_enrolled`` does (SPEC:
        a welcome on enrolment, imports included), in one transaction."""
        now, members = utcnow(), enrolments(event)
        audience.enrolled_many(self.db.session, [(member["member_id"], member["home_branch"]) for member in members],
                               now)
        composed.on_facts(self.db.session, [fact_of("member_enrolled", member, now) for member in members], now,
                          self.sending.journeys, self.sending.group.zone)

    @event_handler(MemberStatusChanged)
    def on_member_status_changed(self, event: dict[str, Any]) -> None:
        now, member_id, session = utcnow(), event["member_id"], self.db.session
        audience.set_status(session, member_id, event["to_status"], now)
        if event["to_status"] == "closed":  # an erasure request: never contact again, forget what we showed
            deliveries.cancel_queued(session, now, "member_closed: the membership is closed", member_id=member_id,
                                     state=SUPPRESSED)
            inbox.erase(session, member_id)
            preferences.forget(session, member_id)
            recalls.close_member(session, member_id, now)

    @event_handler(MemberMerged)
    def on_member_merged(self, event: dict[str, Any]) -> None:
        now, session = utcnow(), self.db.session
        survivor, merged = event["survivor_id"], event["merged_id"]
        audience.set_status(session, merged, "merged", now)
        deliveries.cancel_queued(session, now, f"merged into member {survivor}", member_id=merged)
        inbox.move(session, merged, survivor)
        preferences.copy_to_survivor(session, merged, survivor)
        recalls.move(session, merged, survivor, now)

    @event_handler(MemberUnmerged)
    def on_member_unmerged(self, event: dict[str, Any]) -> None:
        """A merge reversed: the member's inbox and recalls come back (messages cancelled by it stay so)."""
        now, session = utcnow(), self.db.session
        survivor, merged = event["survivor_id"], event["merged_id"]
        audience.set_status(session, merged, "active", now)
        inbox.move_back(session, merged, survivor)
        recalls.move_back(session, merged, survivor, local_date(now, self.sending.group.zone), now,
                          self.sending.settings)

    @event_handler(TierChanged)
    def on_tier_changed(self, event: dict[str, Any]) -> None:
        if event["reason"] == "import":  # placed on imported history (records' visits_imported): no message
            return
        now = utcnow()
        self._composed("tier_changed", event, now)  # the congratulations: a shipped composed journey

    @event_handler(TierReviewNotice)
    def on_tier_review_notice(self, event: dict[str, Any]) -> None:
        now = utcnow()
        self._queue(journeys.tier_review_notice(event, now, self.sending.group.zone), now)

    # -- points ---------------------------------------------------------------------------------------------

    @event_handler(PointsEarned)
    def on_points_earned(self, event: dict[str, Any]) -> None:
        digests.points_earned(self.db.session, event, utcnow(), self.sending.settings, self.sending.group.zone)

    @event_handler(VisitPointsEarned)
    def on_visit_points_earned(self, event: dict[str, Any]) -> None:
        """A visit's earn postings into the day's digest, in one handler run (issue 17)."""
        digests.visit_points_earned(self.db.session, earned_lines(event), utcnow(), self.sending.settings,
                                    self.sending.group.zone)

    @event_handler(PointsExpiring)
    def on_points_expiring(self, event: dict[str, Any]) -> None:
        digests.points_expiring(self.db.session, event, utcnow(), self.sending.settings, self.sending.group.zone)

    # -- records --------------------------------------------------------------------------------------------

    def _hold_recalls(self, event: dict[str, Any], now: datetime) -> None:
        """A visit booked (or moved) ahead: the patient's queued recall messages wait for it."""
        row = appointments.booked_ahead(self.db.session, str(event["appointment_id"]), now)
        if row is not None:
            recalls.hold_for_booking(self.db.session, row.member_id, row.starts_at, self.sending.group.zone, now)

    @event_handler(AppointmentBooked)
    def on_appointment_booked(self, event: dict[str, Any]) -> None:
        now = utcnow()
        appointments.booked(self.db.session, event, now, self.sending.settings)
        self._hold_recalls(event, now)
        self._composed("appointment_booked", event, now)

    @event_handler(AppointmentRescheduled)
    def on_appointment_rescheduled(self, event: dict[str, Any]) -> None:
        now = utcnow()
        appointments.booked(self.db.session, event, now, self.sending.settings, rescheduled=True)
        self._hold_recalls(event, now)

    @event_handler(AppointmentCancelled)
    def on_appointment_cancelled(self, event: dict[str, Any]) -> None:
        now = utcnow()
        appointments.cancelled(self.db.session, event, now)
        self._composed("appointment_cancelled", event, now)

    @event_handler(VisitCompleted)
    def on_visit_completed(self, event: dict[str, Any]) -> None:
        now = utcnow()
        self._composed("visit_completed", event, now)  # post-visit advice, the survey: shipped composed journeys

    @event_handler(VisitCancelled)
    def on_visit_cancelled(self, event: dict[str, Any]) -> None:
        now, session = utcnow(), self.db.session
        composed.cause_taken_back(session, str(event["member_id"]), f"visit:{event['visit_id']}", "visit cancelled",
                                  now)
        # messages queued before the shipped journeys were composed ones named the visit itself
        deliveries.cancel_queued(session, now, "visit cancelled", cause_ref=f"visit:{event['visit_id']}")

    @event_handler(WaitlistSlotOffered)
    def on_waitlist_slot_offered(self, event: dict[str, Any]) -> None:
        now = utcnow()
        self._queue(journeys.waitlist_offer(event, now), now)

    @event_handler(WaitlistOfferClosed)
    def on_waitlist_offer_closed(self, event: dict[str, Any]) -> None:
        """The slot went to another patient: an offer not yet sent is taken back; one sent is followed up."""
        now, session = utcnow(), self.db.session
        deliveries.cancel_queued(session, now, "the slot went to another waiting patient",
                                 cause_ref=f"waitlist_offer:{event['offer_id']}")
        if deliveries.went_out(session, f"waitlist_offer:{event['offer_id']}"):
            self._queue(journeys.waitlist_gone(event, now), now)

    @event_handler(FeedbackSubmitted)
    def on_feedback_submitted(self, event: dict[str, Any]) -> None:
        """Negative feedback and complaints alert the branch's staff (once per feedback and address)."""
        staff_alerts.record(self.db.session, event, self.sending.group, self.sending.settings, utcnow())

    @event_handler(CarePlanUpdated)
    def on_care_plan_updated(self, event: dict[str, Any]) -> None:
        now = utcnow()
        recalls.plan_updated(self.db.session, event, local_date(now, self.sending.group.zone), now,
                             self.sending.settings)

    # -- the scheduler --------------------------------------------------------------------------------------

    def _dispatcher(self) -> Dispatcher:
        return Dispatcher(store=self.db.store, tools=self.sending, members=self.members, points=self.points,
                          emit=self.events.emit)

    def _alert_sender(self) -> staff_alerts.AlertSender:
        return staff_alerts.AlertSender(store=self.db.store, tools=self.sending)

    def _daily(self) -> DailyJourneys:
        return DailyJourneys(store=self.db.store, settings=self.sending.settings, group=self.sending.group,
                             members=self.members)

    def _runner(self) -> composed.Runner:
        return composed.Runner(store=self.db.store, group=self.sending.group, members=self.members,
                               records=self.records.as_service(), catalogue=self.sending.journeys)

    @timer(interval=1)
    def send_due(self) -> None:
        """Send what is due, in bounded batches (every replica; rows are claimed, never shared)."""
        if not self.sending.settings.scheduler:
            return
        with self.db.read() as connection:
            work = due_work(connection, utcnow(), self.sending.settings)
        if work.alerts:
            self._alert_sender().run(utcnow(), max_batches=1)  # staff alerts first: urgent ones are due in minutes
        if work.runs:
            self._runner().run(utcnow(), max_batches=1)  # composed journeys' due steps queue their messages
        if work.deliveries:
            self._dispatcher().run(utcnow(), budget_seconds=self.sending.settings.dispatch_budget_seconds)
        else:
            DUE_BACKLOG.set(0)

    @timer(interval=60)
    def run_daily_journeys(self) -> None:
        """Queue today's birthdays, festivals, recalls and segment B reminders (resumable, once a day)."""
        if self.sending.settings.scheduler:
            self._daily().run(utcnow(), max_batches=self.sending.settings.daily_batches_per_tick)

    @rpc
    def dispatch_due(self, now: str | None = None, max_batches: int | None = None) -> dict[str, int]:
        """One scheduler run at ``now`` (UTC ISO 8601; services only): what the timer does every second.

        Staff alerts' outcomes are counted under ``alerts_<outcome>``, composed journeys' runs under
        ``runs_<outcome>``."""
        if self.caller.kind != "service":  # it reads contacts, which members gives to services only
            raise Forbidden("Only CareLoop services may run the scheduler.")
        moment = self._now(now)
        alerts = self._alert_sender().run(moment, max_batches=max_batches)
        runs = self._runner().run(moment, max_batches=max_batches)
        return {**self._dispatcher().run(moment, max_batches=max_batches),
                **{f"alerts_{outcome}": count for outcome, count in alerts.items()},
                **{f"runs_{outcome}": count for outcome, count in runs.items()}}

    @rpc
    def run_daily(self, now: str | None = None, jobs: list[str] | None = None) -> dict[str, Any]:
        """Today's (or ``now``'s local day's) daily journeys, to the end (services only)."""
        if self.caller.kind != "service":
            raise Forbidden("Only CareLoop services may run the daily journeys.")
        selected = tuple(job for job in (jobs or JOBS) if job in JOBS)
        return self._daily().run(self._now(now), jobs=selected)

    # -- messages -------------------------------------------------------------------------------------------

    @rpc
    @idempotent
    def schedule(self, message: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Queue a message staff or a service asks for (results ready, member day) for a member."""
        self.caller.require_role(*SENDERS, action="send messages to members")
        data = load(ScheduleMessageSchema(), message)
        self.members.get_member(str(data["member_id"]))  # exists, and the caller may see it
        now = utcnow()
        plan = journeys.manual(data, now)
        delivery = deliveries.queue(self.db.session, plan, now)
        if delivery is None:  # this cause was asked for before: the same message, not a second one
            delivery = deliveries.by_dedupe_key(self.db.session, plan.dedupe_key)
        return DeliverySchema().dump(delivery)

    @rpc
    def send_sign_in_code(self, request: dict[str, Any]) -> dict[str, Any]:
        """A member's one-time sign-in code by SMS, now, whatever their consents, quiet hours or caps (services
        only: the gateway's member page decides who gets one and how often)."""
        if self.caller.kind != "service":
            raise Forbidden("Only CareLoop services may send sign-in codes.")
        data = load(SignInCodeSchema(), request)
        return SignInCodeSentSchema().dump(sign_in.send(self.sending.channels, self.sending.renderer, data))

    @rpc
    def cancel(self, delivery_id: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        self.caller.require_role(*SENDERS, action="cancel messages")
        data = load(NotificationCancelSchema(), request or {})
        by = f"{data['reason']} ({self.caller.kind} {self.caller.subject})"
        return DeliverySchema().dump(deliveries.cancel(self.db.session, delivery_id, by, utcnow()))

    @rpc
    def deliveries(self, member_id: str, limit: int | None = None, cursor: str | None = None,
                   journey: str | None = None, state: str | None = None) -> dict[str, Any]:
        rows, next_cursor = deliveries.history(self.db.session, member_id, page_limit(limit), cursor, journey, state)
        return DeliveryPageSchema().dump({"items": rows, "next_cursor": next_cursor})

    @rpc
    def get_delivery(self, delivery_id: str) -> dict[str, Any]:
        return DeliveryDetailSchema().dump(deliveries.get(self.db.session, delivery_id))

    @rpc
    def provider_receipt(self, channel: str, callback: dict[str, Any]) -> dict[str, int]:
        """A provider's delivery receipt (SMS status callback, WeChat template report, LINE webhook), checked
        by the provider's signature here, where its secret is; idempotent by state (a repeat changes nothing)."""
        return ReceiptOutcomeSchema().dump(receipts.record(self.db.session, channel, callback, self.sending.settings,
                                                           utcnow(), self.events.emit, failed_event))

    @rpc
    def reactivation_list(self, query: dict[str, Any]) -> dict[str, Any]:
        """A branch's recall reactivation list: unanswered recalls to call, longest overdue first."""
        data = load(ReactivationQuerySchema(), query)
        self.caller.require_role(*REACTIVATORS, action="work the reactivation list")
        self.sending.group.branch(data["branch"])
        self.caller.require_branch(data["branch"], "see this branch's reactivation list")
        rows = recalls.reactivation(self.db.session, data["branch"], self.sending.settings.reactivation_contact_cap,
                                    utcnow(), data["limit"])
        return ReactivationListSchema().dump({"items": rows})

    @rpc
    @idempotent
    def record_reactivation(self, recall_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
        """Customer service called a member of the reactivation list (counted against the contact cap)."""
        self.caller.require_role(*REACTIVATORS, action="work the reactivation list")
        session = self.db.session
        row = recalls.get(session, recall_id, lock=True)
        home = session.get(AudienceMember, row.member_id)
        if home is not None and home.home_branch:
            self.caller.require_branch(home.home_branch, "work this branch's reactivation list")
        recalls.record_contact(session, row, self.sending.settings.reactivation_contact_cap, utcnow())
        return ReactivationItemSchema().dump(row)

    @rpc
    def wechat_server_check(self, query: dict[str, str]) -> str:
        """WeChat's check of our server URL when it is set up: its ``echostr`` back if the signature is ours."""
        receipts.check_wechat_server(query, self.sending.settings)
        return str(query.get("echostr") or "")

    @rpc
    def feedback_alerts(self, feedback_id: str) -> dict[str, Any]:
        """The staff alerts of one feedback and where each is (operators: was the manager told?)."""
        self.caller.require_role(*ALERT_READERS, action="read staff alerts")
        rows = staff_alerts.of_feedback(self.db.session, str(feedback_id))
        for branch in {row.branch for row in rows}:
            self.caller.require_branch(branch, "read this branch's staff alerts")
        return FeedbackAlertsSchema().dump({"feedback_id": str(feedback_id), "items": rows})

    @rpc
    def preview(self, request: dict[str, Any]) -> dict[str, Any]:
        data = load(NotificationPreviewRequestSchema(), request)
        member = self.members.get_member(str(data["member_id"])) if data.get("member_id") else None
        return NotificationPreviewSchema().dump(templates.preview(self.sending.renderer, data, member,
                                                                  self.sending.settings.app_url))

    @rpc
    def festivals(self, year: int) -> dict[str, Any]:
        """The festival dates of ``year`` (lunar ones resolved) and the season-tip days."""
        if isinstance(year, bool) or not isinstance(year, int) or not 1901 <= year <= 2099:
            raise Invalid("year must be between 1901 and 2099.", {"year": ["Out of range."]})
        enabled = self.sending.settings.festivals
        return FestivalCalendarSchema().dump({
            "year": year, "seasons": self.sending.settings.seasons,
            "festivals": [{"festival": code, "date": day} for code, day in festival_dates(year).items()
                          if code in enabled]})

    # -- preferences and the inbox ---------------------------------------------------------------------------

    @rpc
    def get_preferences(self, member_id: str) -> dict[str, Any]:
        member = self.members.get_member(member_id)
        row = self.db.session.get(Preference, deliveries.parse_uuid(member_id))
        return NotificationPreferencesSchema().dump(preferences.of(member, row, self.sending.settings.channel_order))

    @rpc
    @idempotent
    def set_preferences(self, member_id: str, changes: dict[str, Any],
                        idempotency_key: str | None = None) -> dict[str, Any]:
        data = load(NotificationPreferencesChangeSchema(), changes)
        member = self.members.get_member(member_id)
        row = preferences.change(self.db.session, uuid.UUID(member["id"]), data,
                                 self.caller.actor, utcnow())
        return NotificationPreferencesSchema().dump(preferences.of(member, row, self.sending.settings.channel_order))

    @rpc
    def inbox(self, member_id: str, limit: int | None = None, cursor: str | None = None,
              unread_only: bool = False) -> dict[str, Any]:
        rows, next_cursor, unread = inbox.page(self.db.session, member_id, page_limit(limit), cursor, bool(unread_only))
        return InboxPageSchema().dump({"items": rows, "next_cursor": next_cursor, "unread": unread})

    @rpc
    def mark_read(self, member_id: str, message_id: str) -> dict[str, Any]:
        return InboxMessageSchema().dump(inbox.mark_read(self.db.session, member_id, message_id, utcnow()))


    # -- composed journeys (a manager's SOP: ``composed``, ``rules.composed``) ----------------------------------

    def _journey_answer(self, journey: Any, with_versions: bool = False) -> dict[str, Any]:
        return JourneySchema().dump(composed.view(self.db.session, journey, with_versions))

    @rpc
    @idempotent
    def create_journey(self, definition: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """A new composed journey, in draft at version 1 (activate it to run)."""
        data = JourneyDefinitionSchema().dump(load(JourneyDefinitionSchema(), definition))
        journey = composed.create(self.db.session, data, self.caller, self.sending.group, utcnow())
        return self._journey_answer(journey, with_versions=True)

    @rpc
    def list_journeys(self, query: dict[str, Any]) -> dict[str, Any]:
        self.caller.require_role(*JOURNEY_MANAGERS, action="see composed journeys")
        data = load(JourneyQuerySchema(), query)
        rows, next_cursor = composed.page(self.db.session, self.caller, data["state"], data["branch"], data["limit"],
                                          data["cursor"])
        return JourneyPageSchema().dump({"items": [composed.view(self.db.session, row) for row in rows],
                                         "next_cursor": next_cursor})

    @rpc
    def get_journey(self, journey_id: str) -> dict[str, Any]:
        """A composed journey with every version."""
        journey = composed.get(self.db.session, journey_id)
        composed.require_manager(self.caller, composed.branches_of(journey), "see this journey")
        return self._journey_answer(journey, with_versions=True)

    @rpc
    @idempotent
    def update_journey(self, journey_id: str, definition: dict[str, Any],
                       idempotency_key: str | None = None) -> dict[str, Any]:
        """A new version of a journey (runs already going finish on the version they started)."""
        data = JourneyDefinitionSchema().dump(load(JourneyDefinitionSchema(), definition))
        journey = composed.get(self.db.session, journey_id, lock=True)
        composed.update_definition(self.db.session, journey, data, self.caller, self.sending.group, utcnow(),
                                   self.points)
        return self._journey_answer(journey, with_versions=True)

    @rpc
    @idempotent
    def set_journey_state(self, journey_id: str, state: str, idempotency_key: str | None = None) -> dict[str, Any]:
        """Activate (validated first: 422 naming each field), pause, or retire a journey."""
        if state not in ("active", "paused", "retired"):
            raise Invalid(f"Unknown state {state!r}.", {"state": ["One of active, paused, retired."]})
        journey = composed.get(self.db.session, journey_id, lock=True)
        composed.set_state(self.db.session, journey, state, self.caller, self.sending.group, utcnow(), self.points)
        return self._journey_answer(journey)

    @rpc
    def dry_run_journey(self, journey_id: str) -> dict[str, Any]:
        """How many members the journey's current version would reach in a week, by step, and how that was counted."""
        journey = composed.get(self.db.session, journey_id)
        composed.require_manager(self.caller, composed.branches_of(journey), "dry-run this journey")
        return JourneyDryRunSchema().dump(composed.dry_run(self.db.session, journey, self.sending.group,
                                                           self.members, utcnow()))

    @rpc
    def preview_journey(self, journey_id: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """Each message step of a journey's version rendered in the four languages, for a member or a sample."""
        data = load(JourneyPreviewRequestSchema(), request or {})
        journey = composed.get(self.db.session, journey_id)
        composed.require_manager(self.caller, composed.branches_of(journey), "preview this journey")
        member = self.members.get_member(str(data["member_id"])) if data["member_id"] else None
        if member is not None and member.get("home_branch"):
            self.caller.require_branch(member["home_branch"], "preview messages to this member")
        now = utcnow()
        return JourneyPreviewSchema().dump(composed.preview(
            self.db.session, journey, data["version"], data["channel"], self.sending.renderer, member, self.points,
            self.sending.settings.app_url, local_date(now, self.sending.group.zone), templates.SAMPLE_NAMES))
