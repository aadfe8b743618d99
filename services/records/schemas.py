"""The records service's contract: what its RPCs accept and return (also the gateway's OpenAPI).

Money is integer minor units (``amount_minor``), never a float; times are UTC ISO 8601; dates
(``on``, ``due_on``, ``next_recall_on``) are the group's local days.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from marshmallow import ValidationError, fields, validate, validates_schema
from marshmallow.experimental.context import Context

from services.kit.exports import MaskedExportSchema
from services.kit.schemas import Schema, StrictInteger, UtcTime, With, computed, list_of, page_of
from services.records.rules import fdi, followups, satisfaction, waitlist
from services.records.rules import links as link_rules
from services.records.rules.fdi import ACTIONS, FINDINGS, MOBILITY_GRADES
from services.records.rules.followups import OUTCOMES, QUEUES, STATES, TASK_STATUSES
from services.records.rules.kpis import PERIODS
from services.records.rules.lifecycle import (
    APPOINTMENT_STATUSES,
    ITEM_CATEGORIES,
    PAYMENT_METHODS,
    TREATMENTS,
    VISIT_KINDS,
    VISIT_STATUSES,
)
from services.records.rules.recalls import MAX_INTERVAL_MONTHS, RECALL_TYPES
from services.records.rules.satisfaction import CHANNELS, COMPLAINT_STATUSES, KINDS, LEVELS

SEVERITIES = ("mild", "moderate", "severe", "life_threatening")
BRANCH = validate.Length(min=1, max=16)
SHORT = validate.Length(min=1, max=200)
REFERRAL_SOURCE = validate.Regexp(r"^[a-z_]{2,24}:[A-Za-z0-9._-]{1,48}$",
                                  error="A referral source looks like 'staff:1234' or 'channel:dianping'.")

# --- how the output schemas read what they show ------------------------------------------------------
#
# Entrypoints answer ``XSchema().dump(row)``: the schemas below are the answers, not a description of
# them. A value the row does not hold comes from ``computed`` (a rule on the row, with the moment of the
# answer from ``at``) or from a ``With`` (the row and what was loaded beside it).

F = TypeVar("F", bound=fields.Field)


def at(**moments: Any) -> Context:
    """``with at(now=..., today=...):`` around a dump whose schemas compare with the moment of the answer."""
    return Context(moments)


def _moment(name: str) -> Any:
    return Context.get()[name]


class Stored(fields.List):
    """A list kept as JSON text, in the JSON form its input schema gave it: shown as stored."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return json.loads(value or "[]") if isinstance(value, str) else list(value or [])

# --- health profile -------------------------------------------------------------------------------


class AllergySchema(Schema):
    substance = fields.String(required=True, validate=validate.Length(min=1, max=100))
    reaction = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    noted_on = fields.Date(load_default=None, allow_none=True)


class ConditionSchema(Schema):
    """A past or current condition (medical history)."""

    condition = fields.String(required=True, validate=validate.Length(min=1, max=200))
    since = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40),
                          metadata={"description": "As the patient says it: '2019', 'childhood'."})
    notes = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class FamilyConditionSchema(Schema):
    relation = fields.String(required=True, validate=validate.Length(min=1, max=40))
    condition = fields.String(required=True, validate=validate.Length(min=1, max=200))


class MedicationSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    dose = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=60))
    frequency = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=60))
    since = fields.Date(load_default=None, allow_none=True)


class ProfileChangesSchema(Schema):
    """A change to a health profile: each field given replaces that field; the others stay."""

    medical_history = fields.List(fields.Nested(ConditionSchema), validate=validate.Length(max=50))
    allergies = fields.List(fields.Nested(AllergySchema), validate=validate.Length(max=50))
    family_history = fields.List(fields.Nested(FamilyConditionSchema), validate=validate.Length(max=50))
    medication = fields.List(fields.Nested(MedicationSchema), validate=validate.Length(max=50))
    notes = fields.String(allow_none=True, validate=validate.Length(max=5000))
    expected_version = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(min=0),
                                     metadata={"description": "The version you read; a newer one refuses the "
                                                              "change (409) instead of overwriting it."})

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not set(data) - {"expected_version"}:
            raise ValidationError("Give at least one field to change.")


class HealthProfileSchema(Schema):
    """Dumps a ``HealthProfile`` row (its lists are kept as JSON text)."""

    member_id = fields.String()
    medical_history = Stored(fields.Nested(ConditionSchema))
    allergies = Stored(fields.Nested(AllergySchema))
    family_history = Stored(fields.Nested(FamilyConditionSchema))
    medication = Stored(fields.Nested(MedicationSchema))
    notes = fields.String(allow_none=True)
    version = fields.Integer(metadata={"description": "0 until the first save."})
    updated_at = UtcTime(allow_none=True)
    updated_by = fields.String(allow_none=True)


def _as_saved(revision: Any) -> With:
    """The profile as a revision saved it (its snapshot holds the lists and the notes)."""
    return With(revision, **json.loads(revision.snapshot), updated_at=revision.changed_at,
                updated_by=revision.changed_by)


class ProfileRevisionSchema(Schema):
    version = fields.Integer()
    changed = computed(fields.List(fields.String()), lambda revision: revision.changed.split(","))
    changed_at = UtcTime()
    changed_by = fields.String()
    changed_by_role = fields.String()
    profile = computed(fields.Nested(HealthProfileSchema), _as_saved)


ProfileRevisionPageSchema = page_of(ProfileRevisionSchema)


# --- dental chart ---------------------------------------------------------------------------------


class ChartMarkSchema(Schema):
    tooth = fields.Raw(required=True, metadata={"description": "FDI number: 11–48 permanent, 51–85 primary."})
    finding = fields.String(required=True, validate=validate.OneOf(FINDINGS))
    action = fields.String(load_default="record", validate=validate.OneOf(ACTIONS))
    surfaces = fields.List(fields.String(), load_default=None, allow_none=True,
                           metadata={"description": "caries, filled: M, O/I, D, B/F, L/P as the tooth has them."})
    grade = StrictInteger(load_default=None, allow_none=True, validate=validate.OneOf(MOBILITY_GRADES),
                          metadata={"description": "mobility: Miller grade 0–3."})
    depths = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=None, allow_none=True,
                         metadata={"description": "pocket_depth: millimetres by site, e.g. {\"MB\": 4}."})


class ChartMarksSchema(Schema):
    marks = fields.List(fields.Nested(ChartMarkSchema), required=True, validate=validate.Length(min=1, max=64))
    visit_id = fields.UUID(load_default=None, allow_none=True)
    expected_version = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(min=0))


class ToothSchema(Schema):
    tooth = fields.Integer()
    name = fields.String()
    state = fields.String(metadata={"description": "present, missing or implant"})
    caries = fields.List(fields.String())
    filled = fields.List(fields.String())
    crown = fields.Boolean()
    root_canal = fields.Boolean()
    mobility = fields.Integer(allow_none=True)
    pocket_depths = fields.Dict(keys=fields.String(), values=fields.Integer(), attribute="pockets")


class DentalChartSchema(Schema):
    """Dumps a ``DentalChart`` row (its teeth are kept as JSON text, by FDI number)."""

    member_id = fields.String()
    teeth = computed(fields.List(fields.Nested(ToothSchema), metadata={"description": "Teeth with something recorded."}),
                     lambda chart: fdi.recorded(json.loads(chart.teeth or "{}")))
    version = fields.Integer()
    updated_at = UtcTime(allow_none=True)
    updated_by = fields.String(allow_none=True)


class ChartChangeSchema(Schema):
    tooth = fields.Integer()
    finding = fields.String()
    before = fields.Raw()
    after = fields.Raw()


class ChartRevisionSchema(Schema):
    version = fields.Integer()
    changes = computed(fields.List(fields.Nested(ChartChangeSchema)), lambda change: json.loads(change.changes))
    visit_id = fields.String(allow_none=True)
    changed_at = UtcTime()
    changed_by = fields.String()
    changed_by_role = fields.String()


ChartHistoryPageSchema = page_of(ChartRevisionSchema, "ChartHistoryPageSchema")


# --- visits ---------------------------------------------------------------------------------------


class VisitItemSchema(Schema):
    category = fields.String(required=True, validate=validate.OneOf(ITEM_CATEGORIES))
    code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    amount_minor = StrictInteger(required=True, validate=validate.Range(min=0))


class VisitPaymentSchema(Schema):
    method = fields.String(required=True, validate=validate.OneOf(PAYMENT_METHODS))
    amount_minor = StrictInteger(required=True, validate=validate.Range(min=1))


class BillSchema(Schema):
    """A paid (or free) visit as the HIS bills it: completes the visit, once per bill."""

    bill_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                            metadata={"description": "The HIS bill number, unique in the group."})
    member_id = fields.UUID(required=True)
    branch = fields.String(required=True, validate=BRANCH)
    visit_id = fields.UUID(load_default=None, allow_none=True,
                           metadata={"description": "The visit to complete; without it, the member's one open "
                                                    "visit at this branch that day, else a new visit."})
    doctor_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    kind = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(VISIT_KINDS))
    completed_at = fields.AwareDateTime(load_default=None, allow_none=True)
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    items = fields.List(fields.Nested(VisitItemSchema), load_default=list, validate=validate.Length(max=200))
    payments = fields.List(fields.Nested(VisitPaymentSchema), load_default=list, validate=validate.Length(max=20))
    treatment = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(TREATMENTS),
                              metadata={"description": "none (came, not treated), ongoing, finished. Default: "
                                                       "finished if an item treats, else none."})
    outpatient_surgery = fields.Boolean(load_default=None, allow_none=True)
    referral_source = fields.String(load_default=None, allow_none=True, validate=REFERRAL_SOURCE)


class OpenVisitSchema(Schema):
    """A visit opened at the desk: a walk-in who has arrived, or a visit booked for later."""

    member_id = fields.UUID(required=True)
    branch = fields.String(required=True, validate=BRANCH)
    doctor_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    kind = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(VISIT_KINDS))
    status = fields.String(load_default="arrived", validate=validate.OneOf(("booked", "arrived")))
    scheduled_at = fields.AwareDateTime(load_default=None, allow_none=True)

    @validates_schema
    def _scheduled(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("status") == "booked" and data.get("scheduled_at") is None:
            raise ValidationError("A booked visit needs its time.", "scheduled_at")


class VisitStatusSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("arrived", "in_treatment", "cancelled",
                                                                    "no_show")))


class RefundSchema(Schema):
    refund_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                              metadata={"description": "The HIS refund number: the same one twice refunds once."})
    visit_id = fields.UUID(load_default=None, allow_none=True)
    bill_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    payments = fields.List(fields.Nested(VisitPaymentSchema), required=True, validate=validate.Length(min=1, max=20))

    @validates_schema
    def _which(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("visit_id") is None) == (data.get("bill_id") is None):
            raise ValidationError("Name the visit by exactly one of visit_id or bill_id.", "visit_id")


class RefundOutSchema(Schema):
    refund_id = fields.String(attribute="id")
    his_refund_id = fields.String()
    total_minor = fields.Integer()
    qualifying_minor = fields.Integer()
    full = fields.Boolean()
    refunded_at = UtcTime()


class VisitSchema(Schema):
    """Dumps a visit with its bill lines (``visits.with_lines``)."""

    id = fields.String()
    member_id = fields.String()
    branch = fields.String()
    doctor_id = fields.String(allow_none=True)
    kind = fields.String(validate=validate.OneOf(VISIT_KINDS))
    status = fields.String(validate=validate.OneOf(VISIT_STATUSES))
    appointment_id = fields.String(allow_none=True)
    bill_id = fields.String(allow_none=True)
    currency = fields.String()
    total_minor = fields.Integer()
    qualifying_minor = fields.Integer()
    refunded_minor = fields.Integer()
    items = fields.List(fields.Nested(VisitItemSchema))
    payments = fields.List(fields.Nested(VisitPaymentSchema))
    refunds = fields.List(fields.Nested(RefundOutSchema))
    treatment = fields.String(allow_none=True)
    outpatient_surgery = fields.Boolean()
    first_visit = fields.Boolean()
    first_paid_visit = fields.Boolean()
    referral_source = fields.String(allow_none=True)
    visit_at = UtcTime()
    arrived_at = UtcTime(allow_none=True)
    completed_at = UtcTime(allow_none=True)
    imported = fields.Boolean(metadata={"description": "A historical visit brought over by an import: it earned "
                                                       "no points and started no follow-ups or messages."})


VisitPageSchema = page_of(VisitSchema)


class VisitExportSchema(MaskedExportSchema, VisitSchema):
    """A visit with its bill lines as the warehouse gets it, again each time it changes (completed, refunded,
    cancelled); the doctor and the referral source masked unless revealed (``kit.exports``)."""

    MASKED = ("doctor_id", "referral_source")

    updated_at = UtcTime()


# --- care plans -----------------------------------------------------------------------------------


class CarePlanChangesSchema(Schema):
    """A member's care plan for one recall type (created on first save, changed after)."""

    recall_type = fields.String(required=True, validate=validate.OneOf(tuple(RECALL_TYPES)))
    branch = fields.String(required=True, validate=BRANCH)
    recall_interval_months = StrictInteger(load_default=None, allow_none=True,
                                           validate=validate.Range(min=1, max=MAX_INTERVAL_MONTHS),
                                           metadata={"description": "Default 6."})
    guidance = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))
    diet = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))
    prevention = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))
    next_recall_on = fields.Date(load_default=None, allow_none=True,
                                 metadata={"description": "Set the next recall; default: from the last "
                                                          "resetting visit (or today) plus the interval."})
    status = fields.String(load_default="active", validate=validate.OneOf(("active", "closed")))


class CarePlanSchema(Schema):
    """Dumps a ``CarePlan``; ``CarePlanSchema(exclude=careplans.TEXTS)`` leaves out the clinical texts."""

    id = fields.String()
    member_id = fields.String()
    branch = fields.String()
    recall_type = fields.String()
    recall_interval_months = fields.Integer()
    last_reset_on = fields.Date(allow_none=True)
    next_recall_on = fields.Date()
    status = fields.String()
    version = fields.Integer()
    updated_at = UtcTime()
    updated_by = fields.String()
    guidance = fields.String(allow_none=True)
    diet = fields.String(allow_none=True)
    prevention = fields.String(allow_none=True)



CarePlanListSchema = list_of(CarePlanSchema)


# --- appointments ---------------------------------------------------------------------------------


class ScheduleSchema(Schema):
    """A doctor's working hours at a branch on one local day, cut into slots."""

    branch = fields.String(required=True, validate=BRANCH)
    doctor_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    on = fields.Date(required=True)
    start = fields.Time(required=True, metadata={"description": "Local time, e.g. 09:00."})
    end = fields.Time(required=True)
    slot_minutes = StrictInteger(load_default=30, validate=validate.Range(min=5, max=480))

    @validates_schema
    def _hours(self, data: dict[str, Any], **_: Any) -> None:
        if "start" in data and "end" in data and data["end"] <= data["start"]:
            raise ValidationError("The day must end after it starts.", "end")


class SlotQuerySchema(Schema):
    branch = fields.String(required=True, validate=BRANCH)
    on = fields.Date(required=True)
    doctor_id = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    free_only = fields.Boolean(load_default=True)


class SlotSchema(Schema):
    id = fields.String()
    branch = fields.String()
    doctor_id = fields.String()
    starts_at = UtcTime()
    ends_at = UtcTime()
    free = fields.Boolean()


SlotListSchema = list_of(SlotSchema)


class BookingSchema(Schema):
    member_id = fields.UUID(required=True)
    slot_id = fields.UUID(required=True)
    service_category = fields.String(load_default="exam", validate=validate.OneOf(ITEM_CATEGORIES))


class RescheduleSchema(Schema):
    slot_id = fields.UUID(required=True)


class CancellationSchema(Schema):
    reason = fields.String(load_default="not given", validate=SHORT)


class AppointmentQuerySchema(Schema):
    """Either a member's appointments, or a branch's on a day."""

    member_id = fields.UUID(load_default=None)
    branch = fields.String(load_default=None, validate=BRANCH)
    on = fields.Date(load_default=None)
    doctor_id = fields.String(load_default=None, validate=validate.Length(min=1, max=64))

    @validates_schema
    def _which(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("member_id") is None and (data.get("branch") is None or data.get("on") is None):
            raise ValidationError("Ask for a member_id, or a branch and a day (on).", "member_id")


class AppointmentSchema(Schema):
    id = fields.String()
    member_id = fields.String()
    slot_id = fields.String()
    branch = fields.String()
    doctor_id = fields.String()
    starts_at = UtcTime()
    ends_at = UtcTime()
    service_category = fields.String()
    status = fields.String(validate=validate.OneOf(APPOINTMENT_STATUSES))
    visit_id = fields.String(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    confirmed_at = UtcTime(allow_none=True, metadata={"description": "When the patient confirmed (a reminder's "
                                                                      "confirm link); null if not."})


AppointmentListSchema = list_of(AppointmentSchema)


class AppointmentLinkSchema(Schema):
    """What a patient's confirm or cancel link names (its page; no personal data beyond the time and place)."""

    action = fields.String(validate=validate.OneOf(link_rules.ACTIONS))
    used = fields.Boolean(metadata={"description": "This link has been used (it acts once)."})
    appointment_id = fields.String()
    status = fields.String(validate=validate.OneOf(APPOINTMENT_STATUSES))
    confirmed_at = UtcTime(allow_none=True)
    starts_at = UtcTime()
    starts_local = fields.String(metadata={"description": "The start in the group's time zone, YYYY-MM-DD HH:MM."})
    branch = fields.String()
    branch_name = fields.String()


class AppointmentLinkUsedSchema(AppointmentLinkSchema):
    outcome = fields.String(validate=validate.OneOf(link_rules.OUTCOMES), metadata={
        "description": "confirmed, cancelled, or already_done (the link was used before, or it is already so)."})


# --- the waitlist --------------------------------------------------------------------------------


class WaitlistJoinSchema(Schema):
    member_id = fields.UUID(required=True)
    branch = fields.String(required=True, validate=BRANCH)
    doctor_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64),
                              metadata={"description": "This doctor only; any doctor of the branch if absent."})
    service_category = fields.String(load_default="exam", validate=validate.OneOf(ITEM_CATEGORIES))
    earliest_on = fields.Date(required=True, metadata={"description": "First local day the patient could come."})
    latest_on = fields.Date(required=True, metadata={"description": "Last local day the patient could come."})


class WaitlistQuerySchema(Schema):
    branch = fields.String(required=True, validate=BRANCH)
    status = fields.String(load_default="waiting", allow_none=True, validate=validate.OneOf(waitlist.ENTRY_STATUSES))


class WaitlistEntrySchema(Schema):
    id = fields.String()
    member_id = fields.String()
    branch = fields.String()
    doctor_id = fields.String(allow_none=True)
    service_category = fields.String()
    earliest_on = fields.Date()
    latest_on = fields.Date()
    status = fields.String(validate=validate.OneOf(waitlist.ENTRY_STATUSES))
    appointment_id = fields.String(allow_none=True)
    created_at = UtcTime()


WaitlistEntryListSchema = list_of(WaitlistEntrySchema)


class WaitlistOfferSchema(Schema):
    id = fields.String()
    entry_id = fields.String()
    member_id = fields.String()
    slot_id = fields.String()
    status = fields.String(validate=validate.OneOf(waitlist.OFFER_STATUSES))
    offered_at = UtcTime()
    expires_at = UtcTime()
    answered_at = UtcTime(allow_none=True)
    appointment_id = fields.String(allow_none=True)


class WaitlistAcceptedSchema(Schema):
    offer = fields.Nested(WaitlistOfferSchema)
    appointment = fields.Nested(AppointmentSchema)


# --- follow-ups -----------------------------------------------------------------------------------


class FollowUpQuerySchema(Schema):
    branch = fields.String(required=True, validate=BRANCH)
    queue = fields.String(load_default=None, validate=validate.OneOf(QUEUES))
    due_by = fields.Date(load_default=None, metadata={"description": "Only tasks due by this day (default: all open)."})
    limit = StrictInteger(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(load_default=None, allow_none=True)


class FollowUpOutcomeSchema(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))
    notes = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    next_appointment_id = fields.UUID(load_default=None, allow_none=True)
    retry_on = fields.Date(load_default=None, allow_none=True,
                           metadata={"description": "no_answer / call_back_later: keep the task, due then."})


class JourneyTaskSchema(Schema):
    """A call a composed journey (notifications) puts in a queue: once per ``dedupe_key`` (run and step)."""

    member_id = fields.UUID(required=True)
    branch = fields.String(required=True, validate=BRANCH)
    queue = fields.String(required=True, validate=validate.OneOf(QUEUES))
    due_on = fields.Date(required=True)
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    dedupe_key = fields.String(required=True, validate=validate.Length(min=1, max=120))


class FollowUpSchema(Schema):
    id = fields.String()
    member_id = fields.String()
    branch = fields.String()
    state = fields.String(validate=validate.OneOf(STATES))
    queue = fields.String(validate=validate.OneOf(QUEUES))
    due_on = fields.Date()
    overdue = computed(fields.Boolean(), lambda task: followups.overdue(task.status, task.due_on, _moment("today")))
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    outcome = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    next_appointment_id = fields.String(allow_none=True)
    attempts = fields.Integer()
    source_visit_id = fields.String(allow_none=True)
    created_at = UtcTime()


FollowUpPageSchema = page_of(FollowUpSchema)


# --- feedback -------------------------------------------------------------------------------------


class FeedbackSubmissionSchema(Schema):
    member_id = fields.UUID(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    visit_id = fields.UUID(load_default=None, allow_none=True)
    branch = fields.String(load_default=None, allow_none=True, validate=BRANCH,
                           metadata={"description": "Needed when there is no visit; else the visit's branch."})
    satisfaction = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(LEVELS))
    nps = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(min=0, max=10))
    comment = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    urgent = fields.Boolean(load_default=False)
    channel = fields.String(load_default="app", validate=validate.OneOf(CHANNELS))

    @validates_schema
    def _shape(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("kind") == "survey":
            if data.get("visit_id") is None:
                raise ValidationError("A satisfaction survey answers for a visit.", "visit_id")
            if data.get("satisfaction") is None and data.get("nps") is None:
                raise ValidationError("Give a satisfaction level, an NPS score, or both.", "satisfaction")
            if data.get("urgent"):
                raise ValidationError("Only complaints are urgent.", "urgent")
        if data.get("kind") == "complaint" and not (data.get("comment") or "").strip():
            raise ValidationError("Say what the complaint is about.", "comment")
        if data.get("visit_id") is None and data.get("branch") is None:
            raise ValidationError("Name the branch (or the visit).", "branch")


class ComplaintResponseSchema(Schema):
    response = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ComplaintResolutionSchema(Schema):
    resolution = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ComplaintQuerySchema(Schema):
    branch = fields.String(required=True, validate=BRANCH)
    status = fields.String(load_default=None, validate=validate.OneOf(COMPLAINT_STATUSES))
    limit = StrictInteger(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(load_default=None, allow_none=True)


class FeedbackSchema(Schema):
    id = fields.String()
    member_id = fields.String()
    visit_id = fields.String(allow_none=True)
    branch = fields.String()
    kind = fields.String()
    channel = fields.String()
    satisfaction = fields.String(allow_none=True)
    nps = fields.Integer(allow_none=True)
    comment = fields.String(allow_none=True)
    urgent = fields.Boolean()
    status = fields.String()
    submitted_at = UtcTime()
    response_due_at = UtcTime(allow_none=True)
    overdue = computed(fields.Boolean(), lambda row: satisfaction.overdue(row.kind, row.first_response_at,
                                                                          row.response_due_at, _moment("now")))
    first_response_at = UtcTime(allow_none=True)
    response = fields.String(allow_none=True)
    resolution = fields.String(allow_none=True)
    resolved_at = UtcTime(allow_none=True)


FeedbackPageSchema = page_of(FeedbackSchema)


# --- KPIs and audit -------------------------------------------------------------------------------


class KpiQuerySchema(Schema):
    period = fields.String(required=True, validate=validate.OneOf(PERIODS))
    on = fields.Date(required=True, metadata={"description": "Any local day inside the period."})
    branch = fields.String(load_default=None, validate=BRANCH,
                           metadata={"description": "One branch; default every branch of the caller."})


class KpiFiguresSchema(Schema):
    branch = fields.String(allow_none=True)
    figures = fields.Dict(metadata={"description": "Counts, rates in basis points, money in minor units, "
                                                   "means ×100; null where nothing was counted."})


class KpiReportSchema(Schema):
    period = fields.String()
    start = fields.Date()
    end = fields.Date()
    branches = fields.List(fields.Nested(KpiFiguresSchema))
    total = fields.Nested(KpiFiguresSchema, allow_none=True)


class AuditQuerySchema(Schema):
    member_id = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    actor = fields.String(load_default=None, validate=validate.Length(min=1, max=80))
    outcome = fields.String(load_default=None, validate=validate.OneOf(("granted", "refused")))
    since = fields.AwareDateTime(load_default=None)
    until = fields.AwareDateTime(load_default=None)
    limit = StrictInteger(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String(load_default=None, allow_none=True)


class AuditEntrySchema(Schema):
    id = fields.Integer()
    at = UtcTime()
    actor_kind = fields.String()
    actor = fields.String()
    actor_role = fields.String()
    actor_branches = computed(fields.List(fields.String()),
                              lambda row: [branch for branch in row.actor_branches.split(",") if branch])
    action = fields.String()
    resource = fields.String()
    member_id = fields.String(allow_none=True)
    resource_id = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    outcome = fields.String()
    detail = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)


AuditPageSchema = page_of(AuditEntrySchema, "AuditPageSchema")


class RecordSchema(Schema):
    """A member's whole record, as a clinician opens it."""

    member_id = fields.String()
    profile = fields.Nested(HealthProfileSchema)
    chart = fields.Nested(DentalChartSchema)
    care_plans = fields.List(fields.Nested(CarePlanSchema))
    visits = fields.Nested(VisitPageSchema)
    upcoming_appointments = fields.List(fields.Nested(AppointmentSchema))
    open_follow_ups = fields.List(fields.Nested(FollowUpSchema))


class RecordQuerySchema(Schema):
    """How a clinical read is asked for over HTTP (the reason may also come as ``X-Access-Reason``)."""

    reason = fields.String(load_default=None, validate=validate.Length(min=3, max=200),
                           metadata={"description": "Why the record is opened; kept in the audit trail."})
    visits_limit = StrictInteger(load_default=None, validate=validate.Range(min=1, max=500))
    limit = StrictInteger(load_default=None, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None)


# --- the cross-service visit audit ------------------------------------------------------------------

class VisitAuditRunSchema(Schema):
    """A run asked for now: the completed visits of a window (default: the lookback days up to the
    settle window before now)."""
    since = fields.AwareDateTime(load_default=None, allow_none=True,
                                 metadata={"description": "Visits completed from (default: now less the lookback)"})
    until = fields.AwareDateTime(load_default=None, allow_none=True, metadata={
        "description": "Visits completed before (default and latest: now less the settle window)"})


class VisitAuditQuerySchema(Schema):
    audit_id = fields.UUID(load_default=None, allow_none=True,
                           metadata={"description": "A run (default: the latest finished one)"})
    limit = StrictInteger(load_default=100, validate=validate.Range(min=1, max=1000))
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))


class VisitAuditSchema(Schema):
    """Dumps a ``VisitAudit`` with its ``mismatches_by_kind`` (a ``With``)."""

    id = fields.String()
    trigger = fields.String(metadata={"enum": ["nightly", "manual"]})
    state = fields.String(metadata={"enum": ["running", "finished", "failed"]})
    since = UtcTime()
    until = UtcTime()
    settle_seconds = fields.Integer()
    visits_checked = fields.Integer()
    visits_unsettled = fields.Integer(metadata={"description": "Refunded within the settle window: left out"})
    mismatches = fields.Integer(metadata={"description": "Visits with at least one finding"})
    mismatches_by_kind = fields.Dict(keys=fields.String(), values=fields.Integer())
    started_at = UtcTime()
    finished_at = UtcTime(allow_none=True)
    error = fields.String(allow_none=True)


class VisitAuditFindingSchema(Schema):
    visit_id = fields.String()
    member_id = fields.String()
    kind = fields.String()
    reason = fields.String()
    expected = fields.Integer(allow_none=True)
    found = fields.Integer(allow_none=True)


class VisitAuditReportSchema(Schema):
    audit = fields.Nested(VisitAuditSchema, allow_none=True)
    findings = fields.List(fields.Nested(VisitAuditFindingSchema))
    next_cursor = fields.String(allow_none=True)


# --- imported visits (imports.py) ------------------------------------------------------------------------


class ImportedBillSchema(BillSchema):
    """A historical completed visit with its bill, as an import brings it (one row of ``import_visits``)."""

    class Meta(Schema.Meta):
        exclude = ("visit_id", "referral_source", "treatment")  # treatment: its default (no course under way)

    key = fields.String(required=True, validate=validate.Length(min=1, max=128), metadata={
        "description": "The import's key for this bill (``import:<job>:<bill>``): the same key twice is one visit."})
    completed_at = fields.AwareDateTime(required=True)


class VisitImportBatchSchema(Schema):
    dry_run = fields.Boolean(load_default=False, metadata={"description": "Check each bill, store nothing."})
    rows = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1, max=2000),
                       metadata={"description": "Bills as ``ImportedBillSchema``, each checked on its own."})


class VisitImportOutcomeSchema(Schema):
    """``valid`` (dry run), ``imported``, ``present`` (the bill is in CareLoop already, not by this key) or
    ``invalid`` (``message``, ``errors``)."""

    key = fields.String()
    status = fields.String(validate=validate.OneOf(("valid", "imported", "present", "invalid")))
    visit_id = fields.String()
    message = fields.String()
    errors = fields.Dict()


VisitImportOutcomesSchema = list_of(VisitImportOutcomeSchema)
