"""The records service: health records, visits, appointments, follow-ups, feedback, audit and KPIs.

Each entrypoint validates its input, checks the caller, applies a rule and persists through the
module of its noun. Health data passes ``@clinical`` (clinical roles only; every access audited,
refusals too); everything else checks role and branch here.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from nameko.timer import timer
from sqlalchemy import select

from services.kit import Database, Forbidden, Outbox, Service, event_handler, idempotent, load, rpc
from services.kit.clock import local_date, utcnow
from services.kit.errors import Invalid, NotFound
from services.kit.exports import ExportCursorSchema, ExportQuerySchema, changed_page, horizon, require_exporter, reveals
from services.kit.idempotency import check_key
from services.kit.jobs import run_batches
from services.kit.links import LinkSecret
from services.kit.outbox_batch import BatchEvents
from services.kit.peers import Peer
from services.kit.schemas import With, page_limit
from services.members.events import (
    MemberEnrolled,
    MemberMerged,
    MembersImported,
    MemberStatusChanged,
    MemberUnmerged,
    enrolments,
)
from services.records import (
    access,
    audit,
    bookings,
    careplans,
    charts,
    feedback,
    figures,
    imports,
    links,
    membership,
    patients,
    profiles,
    visit_audit,
    visits,
    waitlist,
    worklists,
)
from services.records.audit import clinical
from services.records.events import EVENTS
from services.records.models import Patient, Visit
from services.records.rules import followups, kpis, lifecycle
from services.records.rules import links as link_rules
from services.records.rules.effects import KINDS as FINDING_KINDS
from services.records.rules.practice import Practice, practice_from_config
from services.records.schemas import (
    AppointmentLinkSchema,
    AppointmentLinkUsedSchema,
    AppointmentListSchema,
    AppointmentQuerySchema,
    AppointmentSchema,
    AuditPageSchema,
    AuditQuerySchema,
    BillSchema,
    BookingSchema,
    CancellationSchema,
    CarePlanChangesSchema,
    CarePlanListSchema,
    CarePlanSchema,
    ChartHistoryPageSchema,
    ChartMarksSchema,
    ComplaintQuerySchema,
    ComplaintResolutionSchema,
    ComplaintResponseSchema,
    DentalChartSchema,
    FeedbackPageSchema,
    FeedbackSchema,
    FeedbackSubmissionSchema,
    FollowUpOutcomeSchema,
    FollowUpPageSchema,
    FollowUpQuerySchema,
    FollowUpSchema,
    HealthProfileSchema,
    JourneyTaskSchema,
    KpiQuerySchema,
    KpiReportSchema,
    OpenVisitSchema,
    ProfileChangesSchema,
    ProfileRevisionPageSchema,
    RecordSchema,
    RefundSchema,
    RescheduleSchema,
    ScheduleSchema,
    SlotListSchema,
    SlotQuerySchema,
    VisitAuditQuerySchema,
    VisitAuditReportSchema,
    VisitAuditRunSchema,
    VisitAuditSchema,
    VisitExportSchema,
    VisitImportBatchSchema,
    VisitImportOutcomesSchema,
    VisitPageSchema,
    VisitSchema,
    VisitStatusSchema,
    WaitlistAcceptedSchema,
    WaitlistEntryListSchema,
    WaitlistEntrySchema,
    WaitlistJoinSchema,
    WaitlistQuerySchema,
    at,
)
from services.records.visit_audit import AUDIT_LAST_RUN, AUDIT_MISMATCHES  # set by refresh_audit_gauges

# The paid-visit flow's schemas, built once: a marshmallow schema deep-copies its fields (and a nested field builds its
# schema) on every instantiation — six schemas a bill, 17 % of records' CPU in the flow at 30 bills a second.
_BILL, _VISIT = BillSchema(), VisitSchema()

class RecordsService(Service):
    name = "records"
    db = Database()
    events = Outbox(EVENTS)
    members = Peer("members")  # calls give up after PEER_TIMEOUT with Unavailable
    points = Peer("points")
    link_secret = LinkSecret()  # APPOINTMENT_LINK_SECRET + the replaced ones still accepted (kit.links)

    @property
    def practice(self) -> Practice:
        return practice_from_config(self.config)

    def _today(self) -> date:
        return local_date(utcnow(), self.group.zone)

    def _member_id(self, member_id: Any) -> Any:
        """The member an id names here: the survivor for a merged member's id (``membership.resolve``)."""
        return membership.resolve(self.db.session, member_id)

    def _patient(self, member_id: Any, lock: bool = True) -> Patient:
        session = self.db.session
        patient = patients.ensure(session, self._member_id(member_id), self.members.get_member, utcnow(), lock=lock)
        if patient.membership_status == "merged":  # merged while we waited for its row: the survivor's, then
            patient = patients.ensure(session, self._member_id(member_id), self.members.get_member, utcnow(),
                                      lock=lock)
        return patient

    # --- health data (clinical roles; audited) -------------------------------------------------

    @rpc
    @clinical("record", "read")
    def get_record(self, member_id: str, reason: str | None = None, visits_limit: int | None = None) -> dict[str, Any]:
        """A member's whole record: profile, chart, care plans, recent visits, what is coming up."""
        limit = page_limit(visits_limit, self.practice.record_visits, 500)
        session, now = self.db.session, utcnow()
        patient = self._patient(member_id, lock=False)
        rows, next_cursor = visits.page(session, patient.member_id, limit, None)
        with at(today=self._today()):
            return RecordSchema().dump({
                "member_id": patient.member_id,
                "profile": profiles.read(session, patient.member_id),
                "chart": charts.read(session, patient.member_id),
                "care_plans": careplans.of_member(session, patient.member_id),
                "visits": {"items": visits.with_lines(session, rows), "next_cursor": next_cursor},
                "upcoming_appointments": bookings.upcoming(session, patient.member_id, now),
                "open_follow_ups": worklists.of_member(session, patient.member_id, limit=20),
            })

    @rpc
    @clinical("profile", "read")
    def get_health_profile(self, member_id: str, reason: str | None = None) -> dict[str, Any]:
        return HealthProfileSchema().dump(profiles.read(self.db.session, self._patient(member_id, lock=False).member_id))

    @rpc
    @clinical("profile", "write", describe=audit.changed_fields)
    @idempotent
    def update_health_profile(self, member_id: str, changes: dict[str, Any], reason: str | None = None,
                              idempotency_key: str | None = None) -> dict[str, Any]:
        data = load(ProfileChangesSchema(), changes)
        profile, _changed = profiles.save(self.db.session, self._patient(member_id), data, self.caller, utcnow())
        return HealthProfileSchema().dump(profile)

    @rpc
    @clinical("profile_history", "read")
    def health_profile_history(self, member_id: str, reason: str | None = None, limit: int | None = None,
                               cursor: str | None = None) -> dict[str, Any]:
        patient = self._patient(member_id, lock=False)
        return ProfileRevisionPageSchema().dump(profiles.history(self.db.session, patient.member_id, page_limit(limit),
                                                                 cursor))

    @rpc
    @clinical("chart", "read")
    def get_chart(self, member_id: str, reason: str | None = None) -> dict[str, Any]:
        return DentalChartSchema().dump(charts.read(self.db.session, self._patient(member_id, lock=False).member_id))

    @rpc
    @clinical("chart", "write", describe=audit.marked_teeth)
    @idempotent
    def update_chart(self, member_id: str, marks: dict[str, Any], reason: str | None = None,
                     idempotency_key: str | None = None) -> dict[str, Any]:
        data = load(ChartMarksSchema(), marks)
        chart, _changes = charts.mark(self.db.session, self._patient(member_id), data["marks"], data["visit_id"],
                                      data["expected_version"], self.caller, utcnow())
        return DentalChartSchema().dump(chart)

    @rpc
    @clinical("chart_history", "read")
    def chart_history(self, member_id: str, reason: str | None = None, limit: int | None = None,
                      cursor: str | None = None) -> dict[str, Any]:
        patient = self._patient(member_id, lock=False)
        return ChartHistoryPageSchema().dump(charts.history(self.db.session, patient.member_id, page_limit(limit), cursor))

    @rpc
    @clinical("care_plan", "read")
    def get_care_plans(self, member_id: str, reason: str | None = None) -> dict[str, Any]:
        patient = self._patient(member_id, lock=False)
        return CarePlanListSchema().dump({"items": careplans.of_member(self.db.session, patient.member_id)})

    @rpc
    @clinical("care_plan", "write")
    @idempotent
    def save_care_plan(self, member_id: str, plan: dict[str, Any], reason: str | None = None,
                       idempotency_key: str | None = None) -> dict[str, Any]:
        data = load(CarePlanChangesSchema(), plan)
        self.group.branch(data["branch"])
        saved, recall_changed = careplans.save(self.db.session, self._patient(member_id), data,
                                               self.practice.recall_interval_months, self._today(), self.caller,
                                               utcnow())
        if recall_changed:
            self.events.emit("care_plan_updated", careplans.updated_event(saved))
        return CarePlanSchema().dump(saved)

    @rpc
    def get_recalls(self, member_id: str) -> dict[str, Any]:
        """A member's recall dates without the plans' clinical texts: for the desk and recall calls."""
        self.caller.require_role(*access.STAFF_ROLES, action="see recalls")
        patient = self._patient(member_id, lock=False)
        without_texts = CarePlanListSchema(exclude=[f"items.{name}" for name in careplans.TEXTS])
        return without_texts.dump({"items": careplans.of_member(self.db.session, patient.member_id)})

    # --- visits ------------------------------------------------------------------------------

    @rpc
    @idempotent
    def open_visit(self, visit: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """A walk-in who has arrived, or a visit booked without a slot."""
        data = load(OpenVisitSchema(), visit)
        self.caller.require_role(*access.VISIT_WRITERS, action="open visits")
        self.caller.require_branch(data["branch"], "open visits at this branch")
        now = utcnow()
        patient = self._patient(data["member_id"])
        opened = visits.open_visit(self.db.session, patient, data, self.group, now)
        if opened.status == "arrived":
            worklists.cancel_open(self.db.session, patient.member_id, followups.obsolete_on_arrival(), now)
        return VisitSchema().dump(visits.one(self.db.session, opened))

    @rpc
    def advance_visit(self, visit_id: str, status: str) -> dict[str, Any]:
        """Arrived, in treatment, cancelled or no-show; asking again for the current status changes nothing."""
        target = load(VisitStatusSchema(), {"status": status})["status"]
        self.caller.require_role(*access.VISIT_WRITERS, action="change visits")
        session, now = self.db.session, utcnow()
        visit, patient = visits.lock_with_patient(session, visit_id)
        self.caller.require_branch(visit.branch, "change visits at this branch")
        if visits.advance(visit, patient, target, self.group, now):
            self._after_visit_moved(visit, bookings.follow_visit(session, visit, now), now)
        return VisitSchema().dump(visits.one(session, visit))

    def _after_visit_moved(self, visit: Visit, appointment: Any, now: Any) -> None:
        session = self.db.session
        if visit.status == "arrived":
            worklists.cancel_open(session, visit.member_id, followups.obsolete_on_arrival(), now)
        elif visit.status == "cancelled":
            self.events.emit("visit_cancelled", visits.cancelled_event(visit))
            if appointment is not None:
                self._appointment_cancelled(appointment, now)
        elif visit.status == "no_show":
            cause = str(visit.appointment_id or visit.id)
            self._tasks(followups.after_no_show(cause, self._today(), self.practice), visit.member_id,
                        visit.branch, now)

    def _tasks(self, tasks: list[followups.Task], member_id: Any, branch: str, now: Any,
               source_visit_id: Any = None) -> None:
        if worklists.create(self.db.session, tasks, member_id, branch, now, source_visit_id):
            for task in tasks:
                worklists.FOLLOW_UPS.labels(task.state).inc()

    @rpc
    def complete_visit(self, bill: dict[str, Any]) -> dict[str, Any]:
        """Complete the visit an HIS bill pays for: once per bill id, however often it is sent."""
        data = load(_BILL, bill)
        self.caller.require_role(*access.VISIT_WRITERS, action="complete visits")
        self.caller.require_branch(data["branch"], "complete visits at this branch")
        session, now = self.db.session, utcnow()
        found = visits.read_for_completion(session, data, self.group, now)  # one round trip, usually
        if found is None:  # SQLite, a member first seen, a merged member's id
            found = visits.Completion(self._patient(data["member_id"]), visits.billed(session, data["bill_id"]))
        visit, created = visits.complete(session, found, data, self.group, now)
        if not created:
            return _VISIT.dump(visits.one(session, visit))
        completed = visits.just_completed(visit, data)
        self._after_completion(completed, found.recalls, now)
        return _VISIT.dump(completed)

    def _after_completion(self, visit: Any, recalls: list[careplans.Recall] | None, now: Any) -> None:
        """What a completion starts (``visit``: ``visits.just_completed``): the event, the appointment's check-in,
        follow-up calls (those made pointless closed), recalls moved (``recalls``: read with the patient, or None).
        Written with the commit where nothing in the transaction reads them back."""
        session, practice = self.db.session, self.practice
        self.events.emit("visit_completed", visits.completed_event(visit))
        visits.VISITS_COMPLETED.labels(visit.branch, visit.kind).inc()
        bookings.check_in_with_visit(session, visit, now)
        worklists.cancel_open_at_commit(session, visit.member_id, followups.obsolete_on_completion(), now)
        tasks = followups.after_visit(str(visit.id), visit.kind, visit.treatment or "none", visit.outpatient_surgery,
                                      visit.completed_on, practice)
        # the tasks' dedupe keys name this visit, completed just now: each is new
        worklists.create_at_commit(session, tasks, visit.member_id, visit.branch, now, source_visit_id=visit.id)
        for task in tasks:
            worklists.FOLLOW_UPS.labels(task.state).inc()
        categories = {item["category"] for item in visit.items}
        for plan in careplans.reset_by_visit(session, visit.member_id, categories, visit.completed_on, now, recalls):
            self.events.emit("care_plan_updated", careplans.updated_event(plan))

    @rpc
    def refund_visit(self, refund: dict[str, Any]) -> dict[str, Any]:
        """Give back part or all of what a completed visit was paid: once per HIS refund id."""
        data = load(RefundSchema(), refund)
        self.caller.require_role(*access.VISIT_WRITERS, action="refund visits")
        session = self.db.session
        if data["visit_id"] is not None:
            visit = visits.get(session, data["visit_id"], lock=True)
        else:
            visit = visits.by_bill(session, data["bill_id"], lock=True)
            if visit is None:
                raise NotFound(f"No visit was completed with bill {data['bill_id']}.")
        self.caller.require_branch(visit.branch, "refund visits at this branch")
        row, created = visits.refund(session, visit, data, self.caller, utcnow())
        if created:
            self.events.emit("visit_refunded", visits.refunded_event(visit, row))
            visits.REFUNDS.labels(visit.branch).inc()
        return VisitSchema().dump(visits.one(session, visit))

    @rpc
    def get_visit(self, visit_id: str) -> dict[str, Any]:
        self.caller.require_role(*access.STAFF_ROLES, action="see visits")
        return VisitSchema().dump(visits.one(self.db.session, visits.get(self.db.session, visit_id)))

    @rpc
    def list_visits(self, member_id: str, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        """A member's visits, newest first."""
        self.caller.require_role(*access.STAFF_ROLES, action="see visits")
        rows, next_cursor = visits.page(self.db.session, self._member_id(member_id), page_limit(limit), cursor)
        return VisitPageSchema().dump({"items": visits.with_lines(self.db.session, rows), "next_cursor": next_cursor})

    # --- appointments ------------------------------------------------------------------------

    @rpc
    def publish_slots(self, schedule: dict[str, Any]) -> dict[str, Any]:
        """A doctor's hours on a day, as slots (publishing the same hours again changes nothing)."""
        data = load(ScheduleSchema(), schedule)
        self.caller.require_role(*access.SCHEDULERS, action="publish doctors' schedules")
        self.caller.require_branch(data["branch"], "publish schedules at this branch")
        published = bookings.publish(self.db.session, data, self.group, self._today(), utcnow())
        return SlotListSchema().dump({"items": bookings.slots(self.db.session, data["branch"], data["on"],
                                                              data["doctor_id"], False) if published else []})

    @rpc
    def list_slots(self, query: dict[str, Any]) -> dict[str, Any]:
        data = load(SlotQuerySchema(), query)
        self.caller.require_role(*access.BOOKERS, action="see slots")
        self.group.branch(data["branch"])
        return SlotListSchema().dump({"items": bookings.slots(self.db.session, data["branch"], data["on"],
                                                              data["doctor_id"], data["free_only"])})

    def _check_horizon(self, member_id: str, slot: Any) -> dict[str, Any]:
        now = utcnow()
        if slot.starts_at <= now:
            raise Invalid("This slot has already started.", {"slot_id": ["The slot is in the past."]})
        benefits = self.members.benefits(member_id)
        lifecycle.check_booking_day(local_date(slot.starts_at, self.group.zone), self._today(),
                                    int(benefits["booking_horizon_days"]), benefits["tier"])
        return benefits

    @rpc
    @idempotent
    def book(self, booking: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Book a slot for a member, within their tier's booking horizon; a taken slot is a Conflict."""
        data = load(BookingSchema(), booking)
        self.caller.require_role(*access.BOOKERS, action="book appointments")
        chosen = bookings.slot(self.db.session, data["slot_id"])
        self.caller.require_branch(chosen.branch, "book at this branch")
        patient = self._patient(data["member_id"])
        membership.check_may_book(patient.membership_status)  # as members' events told us
        membership.check_may_book(self._check_horizon(str(patient.member_id), chosen).get("status"))  # and now
        appointment = bookings.book(self.db.session, patient, chosen, data["service_category"], self.group,
                                    self.caller, utcnow())
        self.events.emit("appointment_booked", bookings.booked_event(appointment))
        bookings.BOOKED.labels(appointment.branch).inc()
        return AppointmentSchema().dump(appointment)

    @rpc
    @idempotent
    def reschedule(self, appointment_id: str, slot_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
        data = load(RescheduleSchema(), {"slot_id": slot_id})
        self.caller.require_role(*access.BOOKERS, action="move appointments")
        appointment, _patient = bookings.lock_with_patient(self.db.session, appointment_id)
        chosen = bookings.slot(self.db.session, data["slot_id"])
        self.caller.require_branch(appointment.branch, "move appointments of this branch")
        self.caller.require_branch(chosen.branch, "book at this branch")
        if chosen.id != appointment.slot_id:
            self._check_horizon(str(appointment.member_id), chosen)
        left, now = appointment.slot_id, utcnow()
        previous = bookings.reschedule(self.db.session, appointment, chosen, now)
        if previous is not None:
            self.events.emit("appointment_rescheduled", bookings.rescheduled_event(appointment, previous))
            self._slot_freed(left, appointment.member_id, now)
        return AppointmentSchema().dump(appointment)

    def _move_appointment(self, appointment_id: str, target: str, reason: str | None = None) -> dict[str, Any]:
        self.caller.require_role(*access.BOOKERS, action="change appointments")
        session, now = self.db.session, utcnow()
        appointment, patient = bookings.lock_with_patient(session, appointment_id)
        self.caller.require_branch(appointment.branch, "change appointments of this branch")
        self._move(appointment, patient, target, reason, now)
        return AppointmentSchema().dump(appointment)

    def _move(self, appointment: Any, patient: Any, target: str, reason: str | None, now: Any) -> None:
        """Check in, cancel or mark a no-show (the desk, the HIS, a patient's link): one rule, one set of effects."""
        changed, visit = bookings.move(self.db.session, appointment, patient, target, self.group, now, reason)
        if changed and target == "cancelled":
            self._appointment_cancelled(appointment, now)
        if visit is not None:
            self._after_visit_moved(visit, None, now)

    def _appointment_cancelled(self, appointment: Any, now: Any) -> None:
        """Every way an appointment ends cancelled comes here: the event, and its slot to the waitlist."""
        self.events.emit("appointment_cancelled", bookings.cancelled_event(appointment))
        self._slot_freed(appointment.slot_id, appointment.member_id, now)

    def _slot_freed(self, slot_id: Any, freed_by: Any, now: Any) -> None:
        """A slot came free (cancelled, or moved away from): the first matching waiting patients are offered
        it (an offer event each), within the branch's horizon (``waitlist.offer_slot``)."""
        session = self.db.session
        slot = bookings.slot(session, slot_id)
        for offer in waitlist.offer_slot(session, slot, freed_by, self.practice, self.group, now):
            self.events.emit("waitlist_slot_offered", waitlist.offered_event(session, offer, slot))

    @rpc
    def cancel_appointment(self, appointment_id: str, reason: str | None = None) -> dict[str, Any]:
        data = load(CancellationSchema(), {} if reason is None else {"reason": reason})
        return self._move_appointment(appointment_id, "cancelled", data["reason"])

    @rpc
    def check_in(self, appointment_id: str) -> dict[str, Any]:
        """The member has arrived: the appointment's visit becomes arrived."""
        return self._move_appointment(appointment_id, "checked_in")

    @rpc
    def mark_no_show(self, appointment_id: str) -> dict[str, Any]:
        """The member did not come: customer service gets a call to make."""
        return self._move_appointment(appointment_id, "no_show")

    # --- a patient's confirm and cancel links (no login: the signed token is the authority) ---------------

    @rpc
    def appointment_link(self, token: str) -> dict[str, Any]:
        """What a message's confirm or cancel link names; changes nothing (mail scanners open links)."""
        claims = links.claims(self.link_secret, token, utcnow())
        appointment = bookings.get(self.db.session, claims.subject)
        return AppointmentLinkSchema().dump(links.view(self.db.session, claims, appointment, self.group))

    @rpc
    def use_appointment_link(self, token: str) -> dict[str, Any]:
        """Confirm or cancel through a message's link, once (a second use: ``already_done``, nothing changed);
        a cancellation is the desk's cancellation (its slot goes to the waitlist)."""
        session, now = self.db.session, utcnow()
        claims = links.claims(self.link_secret, token, now)
        appointment, patient = bookings.lock_with_patient(session, claims.subject)
        outcome = links.use(session, claims, appointment, now)
        if outcome == link_rules.CANCELLED:
            self._move(appointment, patient, "cancelled", "cancelled by the patient (link)", now)
        elif outcome == link_rules.CONFIRMED:
            self.events.emit("appointment_confirmed", links.confirmed_event(appointment))
        view = links.view(session, claims, appointment, self.group)
        return AppointmentLinkUsedSchema().dump({**view, "outcome": outcome})

    @rpc
    def get_appointment(self, appointment_id: str) -> dict[str, Any]:
        """One appointment (who may see appointments; the FHIR facade's Appointment read)."""
        self.caller.require_role(*access.BOOKERS, action="see appointments")
        return AppointmentSchema().dump(bookings.get(self.db.session, appointment_id))

    @rpc
    def list_appointments(self, query: dict[str, Any]) -> dict[str, Any]:
        data = load(AppointmentQuerySchema(), query)
        self.caller.require_role(*access.BOOKERS, action="see appointments")
        if data["member_id"] is not None:
            rows = bookings.of_member(self.db.session, self._member_id(data["member_id"]))
        else:
            self.group.branch(data["branch"])
            rows = bookings.of_branch_day(self.db.session, data["branch"], data["on"], self.group, data["doctor_id"])
        return AppointmentListSchema().dump({"items": rows})

    # --- the waitlist ------------------------------------------------------------------------

    @rpc
    @idempotent
    def join_waitlist(self, request: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Put a patient on a branch's waitlist for an earlier slot (one doctor or any, a window of days)."""
        data = load(WaitlistJoinSchema(), request)
        self.caller.require_role(*access.BOOKERS, action="put patients on the waitlist")
        self.caller.require_branch(data["branch"], "use this branch's waitlist")
        patient = self._patient(data["member_id"])
        membership.check_may_book(patient.membership_status)
        entry = waitlist.join(self.db.session, patient, data, self.group, self.caller, utcnow())
        return WaitlistEntrySchema().dump(entry)

    @rpc
    def list_waitlist(self, query: dict[str, Any]) -> dict[str, Any]:
        """A branch's waitlist, oldest first (waiting patients unless ``status`` says otherwise)."""
        data = load(WaitlistQuerySchema(), query)
        self.caller.require_role(*access.BOOKERS, action="see the waitlist")
        self.group.branch(data["branch"])
        self.caller.require_branch(data["branch"], "see this branch's waitlist")
        return WaitlistEntryListSchema().dump({"items": waitlist.of_branch(self.db.session, data["branch"],
                                                                           data["status"])})

    @rpc
    def withdraw_waitlist(self, entry_id: str) -> dict[str, Any]:
        self.caller.require_role(*access.BOOKERS, action="change the waitlist")
        entry = waitlist.get(self.db.session, entry_id, lock=True)
        self.caller.require_branch(entry.branch, "change this branch's waitlist")
        return WaitlistEntrySchema().dump(waitlist.withdraw(self.db.session, entry, utcnow()))

    @rpc
    @idempotent
    def accept_waitlist_offer(self, offer_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
        """The patient takes an offered slot: booked if nobody was first (else 409, the slot is gone)."""
        self.caller.require_role(*access.BOOKERS, action="book appointments")
        session, now = self.db.session, utcnow()
        offered = waitlist.offer(session, offer_id)
        slot = bookings.slot(session, offered.slot_id)
        self.caller.require_branch(slot.branch, "book at this branch")
        accepted, appointment, closed, booked_now = waitlist.accept(session, offer_id, self._patient, self.group,
                                                                    self.caller, now)
        if booked_now:  # not a retry that found it booked already
            self.events.emit("appointment_booked", bookings.booked_event(appointment))
            bookings.BOOKED.labels(appointment.branch).inc()
        for other in closed:
            self.events.emit("waitlist_offer_closed", waitlist.closed_event(other, slot))
        return WaitlistAcceptedSchema().dump({"offer": accepted, "appointment": appointment})

    # --- follow-ups --------------------------------------------------------------------------

    @rpc
    def follow_up_queue(self, query: dict[str, Any]) -> dict[str, Any]:
        """A branch's open callback tasks in the caller's queues, the longest overdue first."""
        data = load(FollowUpQuerySchema(), query)
        self.group.branch(data["branch"])
        self.caller.require_branch(data["branch"], "see this branch's follow-ups")
        mine = tuple(q for q in followups.QUEUES
                     if self.caller.kind == "service" or followups.may_work(self.caller.role, q))
        if data["queue"] is not None and data["queue"] not in mine:
            raise Forbidden(f"Your role ({self.caller.role}) does not work the {data['queue']} queue.")
        if not mine:
            raise Forbidden(f"Your role ({self.caller.role}) works no follow-up queue.")
        rows, next_cursor = worklists.queue(self.db.session, data["branch"],
                                            (data["queue"],) if data["queue"] else mine, data["due_by"],
                                            data["limit"], data["cursor"])
        with at(today=self._today()):
            return FollowUpPageSchema().dump({"items": rows, "next_cursor": next_cursor})

    @rpc
    @idempotent
    def record_follow_up(self, task_id: str, outcome: dict[str, Any],
                         idempotency_key: str | None = None) -> dict[str, Any]:
        """The outcome of a call: done, or still open for another try on ``retry_on``."""
        data = load(FollowUpOutcomeSchema(), outcome)
        task = worklists.get(self.db.session, task_id, lock=True)
        self.caller.require_branch(task.branch, "work this branch's follow-ups")
        if self.caller.kind != "service" and not followups.may_work(self.caller.role, task.queue):
            raise Forbidden(f"Your role ({self.caller.role}) does not work the {task.queue} queue.")
        worklists.record_outcome(self.db.session, task, data, self._today(), self.caller, utcnow())
        with at(today=self._today()):
            return FollowUpSchema().dump(task)

    @rpc
    def open_follow_up(self, task: dict[str, Any]) -> dict[str, Any]:
        """A call a composed journey puts in a role's queue (notifications; services only), once per dedupe key."""
        if self.caller.kind != "service":
            raise Forbidden("Only CareLoop services open follow-ups for journeys; staff record calls instead.")
        data = load(JourneyTaskSchema(), task)
        self.group.branch(data["branch"])
        patient = self._patient(data["member_id"])
        self._tasks([followups.journey_task(data["queue"], data["due_on"], data["dedupe_key"], data["note"])],
                    patient.member_id, data["branch"], utcnow())
        with at(today=self._today()):
            return FollowUpSchema().dump(worklists.by_dedupe_key(self.db.session, data["dedupe_key"]))

    @rpc
    def member_follow_ups(self, member_id: str, open_only: bool = True) -> dict[str, Any]:
        self.caller.require_role(*access.STAFF_ROLES, action="see follow-ups")
        rows = worklists.of_member(self.db.session, self._member_id(member_id), bool(open_only))
        with at(today=self._today()):
            return FollowUpPageSchema().dump({"items": rows})  # one list: no next_cursor

    @rpc
    def scan_follow_ups(self, on: str | None = None) -> dict[str, Any]:
        """Find patients who never came or whose treatment stopped, once per local day (resumable)."""
        self.caller.require_role(*access.SCAN_RUNNERS, action="run the follow-up scan")
        try:
            day = date.fromisoformat(on) if on else self._today()
        except ValueError:
            raise Invalid("on must be a date like 2026-11-23.", {"on": ["Not a date."]}) from None
        practice, now = self.practice, utcnow()
        outcome = run_batches(self.db.store, "follow_up_scan", day.isoformat(),
                              lambda session, cursor: worklists.scan_step(session, cursor, day, now, practice),
                              max_batches=200)
        return {"on": day.isoformat(), "finished": outcome.finished, "patients_scanned": outcome.processed,
                "skipped": outcome.skipped}

    @timer(interval=3600)
    def daily_follow_up_scan(self) -> None:
        """Hourly, run today's scan if it has not run (a day's run key runs once)."""
        self.scan_follow_ups()

    # --- feedback ----------------------------------------------------------------------------

    @rpc
    @idempotent
    def submit_feedback(self, submission: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """A survey answer for a visit, or a complaint (urgent ones must be answered within 30 minutes)."""
        data = load(FeedbackSubmissionSchema(), submission)
        self.caller.require_role(*access.FEEDBACK_TAKERS, action="take feedback")
        session, now = self.db.session, utcnow()
        visit = visits.get(session, data["visit_id"]) if data["visit_id"] is not None else None
        self.caller.require_branch(visit.branch if visit else data["branch"], "take feedback for this branch")
        patient = self._patient(data["member_id"], lock=False)
        row = feedback.submit(session, patient, data, visit, self.group, self.practice, now)
        self.events.emit("feedback_submitted", feedback.submitted_event(row))
        feedback.FEEDBACK.labels(row.branch, row.kind).inc()
        with at(now=now):
            return FeedbackSchema().dump(row)

    def _complaint(self, feedback_id: str) -> Any:
        self.caller.require_role(*access.COMPLAINT_HANDLERS, action="handle complaints")
        row = feedback.get(self.db.session, feedback_id, lock=True)
        self.caller.require_branch(row.branch, "handle this branch's complaints")
        return row

    @rpc
    def respond_to_complaint(self, feedback_id: str, answer: dict[str, Any]) -> dict[str, Any]:
        """The first answer to a complaint stops its response clock; a later one replaces the text."""
        data = load(ComplaintResponseSchema(), answer)
        row, now = self._complaint(feedback_id), utcnow()
        feedback.respond(row, data["response"], self.caller, now)
        with at(now=now):
            return FeedbackSchema().dump(row)

    @rpc
    @idempotent
    def resolve_complaint(self, feedback_id: str, resolution: dict[str, Any],
                          idempotency_key: str | None = None) -> dict[str, Any]:
        data = load(ComplaintResolutionSchema(), resolution)
        row, now = self._complaint(feedback_id), utcnow()
        feedback.resolve(row, data["resolution"], self.caller, now)
        with at(now=now):
            return FeedbackSchema().dump(row)

    @rpc
    def complaints(self, query: dict[str, Any]) -> dict[str, Any]:
        """A branch's open complaints (or those of one status), the nearest deadline first."""
        data = load(ComplaintQuerySchema(), query)
        self.caller.require_role(*access.COMPLAINT_HANDLERS, action="see complaints")
        self.caller.require_branch(data["branch"], "see this branch's complaints")
        rows, next_cursor = feedback.complaints(self.db.session, data["branch"], data["status"], data["limit"],
                                                data["cursor"])
        with at(now=utcnow()):
            return FeedbackPageSchema().dump({"items": rows, "next_cursor": next_cursor})

    @rpc
    def get_feedback(self, feedback_id: str) -> dict[str, Any]:
        self.caller.require_role(*access.COMPLAINT_HANDLERS, action="see feedback")
        row = feedback.get(self.db.session, feedback_id)
        self.caller.require_branch(row.branch, "see this branch's feedback")
        with at(now=utcnow()):
            return FeedbackSchema().dump(row)

    # --- KPIs and audit ----------------------------------------------------------------------

    @rpc
    def kpis(self, query: dict[str, Any]) -> dict[str, Any]:
        """Visit KPIs per branch for one day, week, month or year (definitions: ``rules/kpis.py``)."""
        data = load(KpiQuerySchema(), query)
        self.caller.require_role(*access.KPI_READERS, action="see KPIs")
        if data["branch"] is not None:
            self.group.branch(data["branch"])
        branches = access.branches_of(self.caller, data["branch"], tuple(self.group.branches))
        start, end = kpis.period_bounds(data["period"], data["on"])
        target = self.practice.urgent_response_minutes * 60
        counted = figures.counts(self.db.session, branches, start, end, target)
        report: dict[str, Any] = {
            "period": data["period"], "start": start, "end": end,
            "branches": [{"branch": b, "figures": kpis.figures(counted[b], target)} for b in branches],
            "total": None,
        }
        if len(branches) > 1:
            total = kpis.Counts()
            for branch in branches:
                total = total.plus(counted[branch])
            total.patients = figures.distinct_patients(self.db.session, branches, start, end)
            report["total"] = {"branch": None, "figures": kpis.figures(total, target)}
        return KpiReportSchema().dump(report)

    @rpc
    def audit_trail(self, query: dict[str, Any]) -> dict[str, Any]:
        """Who opened or changed which health records, when and why (auditors)."""
        data = load(AuditQuerySchema(), query)
        self.caller.require_role(*access.AUDITORS, action="read the audit trail")
        rows, next_cursor = audit.trail(self.db.session, data)
        return AuditPageSchema().dump({"items": rows, "next_cursor": next_cursor})

    # --- the cross-service visit audit (visit_audit.py) ---------------------------------------

    def _audit(self, trigger: str, key: str, since: datetime | None, until: datetime | None) -> dict[str, Any]:
        practice, now = self.practice, utcnow()
        settle = timedelta(minutes=practice.audit_settle_minutes)
        latest_until = now - settle
        window = visit_audit.Window(since or now - timedelta(days=practice.audit_lookback_days),
                                    min(until or latest_until, latest_until), settle)
        if window.since >= window.until:
            raise Invalid("since must be before until (and before the settle window).", {"since": ["Too late."]})
        store = self.db.store
        peers = visit_audit.Peers(self.points.visit_effects, self.members.visit_activity)
        audit_id, ran = visit_audit.run(store, visit_audit.run_key(trigger, key), trigger, window, peers,
                                        self.caller.subject, now, practice.audit_batch)
        if ran:
            self.refresh_audit_gauges()
        with store.transaction() as session:
            row = visit_audit.get(session, audit_id)
            return VisitAuditSchema().dump(With(row, mismatches_by_kind=visit_audit.mismatches_by_kind(session, row.id)))

    @rpc
    def audit_visits(self, window: dict[str, Any] | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
        """Audit the completed visits of a window now (keyset pages; one call to points and one to members
        per page) and answer the run. The same idempotency key answers the same run."""
        self.caller.require_role(*access.VISIT_AUDITORS, action="audit visits")
        data = load(VisitAuditRunSchema(), window or {})
        return self._audit("manual", check_key(idempotency_key) if idempotency_key else str(uuid.uuid4()),
                           data["since"], data["until"])

    @rpc
    def visit_audit(self, query: dict[str, Any] | None = None) -> dict[str, Any]:
        """A run of the visit audit (default: the latest finished) with a page of its findings."""
        self.caller.require_role(*access.VISIT_AUDITORS, action="see the visit audit")
        data = load(VisitAuditQuerySchema(), query or {})
        after = visit_audit.finding_after(data["cursor"])
        session = self.db.session
        audit = visit_audit.get(session, data["audit_id"]) if data["audit_id"] else visit_audit.latest(session)
        if audit is None:
            if data["audit_id"]:
                raise NotFound("No such visit audit.")
            return VisitAuditReportSchema().dump({"audit": None, "findings": [], "next_cursor": None})
        rows, next_cursor = visit_audit.findings_page(session, audit.id, data["limit"], after)
        return VisitAuditReportSchema().dump({
            "audit": With(audit, mismatches_by_kind=visit_audit.mismatches_by_kind(session, audit.id)),
            "findings": rows, "next_cursor": next_cursor})

    @timer(interval=3600)
    def nightly_visit_audit(self) -> None:
        """Hourly: from ``audit_nightly_hour`` local time, the night's audit if it has not run (one run a day)."""
        now = datetime.now(self.group.zone)
        if now.hour >= self.practice.audit_nightly_hour:
            self._audit("nightly", now.date().isoformat(), None, None)

    @timer(interval=60)
    def refresh_audit_gauges(self) -> None:
        """The gauges from the latest finished run (every replica shows the same, a restart included)."""
        with self.db.store.transaction() as session:
            audit = visit_audit.latest(session)
            by_kind = visit_audit.mismatches_by_kind(session, audit.id) if audit else {}
        if audit is None:
            return
        for kind in FINDING_KINDS:
            AUDIT_MISMATCHES.labels(kind).set(by_kind.get(kind, 0))
        AUDIT_LAST_RUN.set(audit.finished_at.timestamp())

    # --- events ------------------------------------------------------------------------------

    @event_handler(MemberEnrolled)
    def on_member_enrolled(self, event: dict[str, Any]) -> None:
        """Remember the enrolment: a member who never comes is called (follow-up "never came")."""
        patients.enrolled(self.db.session, event, self.group.zone, utcnow())

    @event_handler(MembersImported)
    def on_members_imported(self, event: dict[str, Any]) -> None:
        """An import's members (issue 19): each enrolment remembered as ``on_member_enrolled`` does, in one
        transaction and one statement."""
        patients.enrolled_many(self.db.session, enrolments(event), self.group.zone, utcnow())

    @event_handler(MemberStatusChanged)
    def on_member_status_changed(self, event: dict[str, Any]) -> None:
        """Frozen: no new bookings. Closed: what was still to come stops; the health record is kept (retention
        law; ``membership.py``)."""
        closure = membership.change_status(self.db.session, event["member_id"], event["to_status"],
                                           event["reason"], self.group, utcnow())
        for appointment in closure.appointments:
            self._appointment_cancelled(appointment, utcnow())
        for visit in closure.visits:
            self.events.emit("visit_cancelled", visits.cancelled_event(visit))
        for plan in closure.plans:
            self.events.emit("care_plan_updated", careplans.updated_event(plan))

    @event_handler(MemberMerged)
    def on_member_merged(self, event: dict[str, Any]) -> None:
        """The duplicate's record becomes part of the survivor's; its id names the survivor from now on."""
        outcome = membership.merge(self.db.session, event["survivor_id"], event["merged_id"], event["merge_id"],
                                   utcnow())
        for plan in outcome.plans if outcome else []:
            self.events.emit("care_plan_updated", careplans.updated_event(plan))

    @event_handler(MemberUnmerged)
    def on_member_unmerged(self, event: dict[str, Any]) -> None:
        """A merge reversed: exactly what it moved goes back; the alias goes."""
        outcome = membership.unmerge(self.db.session, event["merge_id"], utcnow())
        for plan in outcome.plans if outcome else []:
            self.events.emit("care_plan_updated", careplans.updated_event(plan))

    @rpc
    def export_visits(self, query: dict[str, Any]) -> dict[str, Any]:
        """The warehouse's export: visits with their bill lines in the order they last changed, from the cursor
        the last export ended at (``kit.exports``)."""
        require_exporter(self.caller, access.EXPORTERS, "visits")
        criteria = load(ExportQuerySchema(), query)
        rows, cursor, more = changed_page(self.db.session, select(Visit), Visit.updated_at, Visit.id,
                                          criteria["limit"], criteria["since"], horizon(self.config, utcnow()))
        reveal = reveals(self.caller, self.config, access.EXPORT_REVEALERS)
        items = VisitExportSchema(many=True, reveal=reveal).dump(visits.with_lines(self.db.session, rows))
        return {"items": items, **ExportCursorSchema().dump({"cursor": cursor, "more": more})}

    @rpc
    def import_visits(self, batch: dict[str, Any]) -> dict[str, Any]:
        """An import's historical visits (bills with items and payments), many in one call, each stored once
        under its key and marked imported; no points, follow-ups or messages follow (``imports.py``)."""
        self.caller.require_role(*access.IMPORTERS, action="import visits")
        data = load(VisitImportBatchSchema(), batch)
        outcomes, announced = imports.import_each(self.db.session, data["rows"], self.group, self.caller,
                                                  self._patient, utcnow(), data["dry_run"])
        events = BatchEvents(self.db.session, EVENTS)  # the batch's visits_imported checked together, one insert
        for event in announced:
            events("visits_imported", event)
        events.flush()
        return VisitImportOutcomesSchema().dump({"items": outcomes})
