"""What records announces: one contract per event (``kit.contracts``), and the words they use.

Other services import this module (and nothing else of records) to read records' events; records'
own modules take the vocabularies below from here, so a word on the wire is defined once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from marshmallow import fields, validate

from services.kit.contracts import Contracts, Event, UtcTime

EVENTS = Contracts("records")

VISIT_KINDS = ("first", "return", "emergency", "free_clinic", "event")
ITEM_CATEGORIES = ("exam", "treatment", "cleaning", "implant", "orthodontics", "whitening", "products", "surgery",
                   "imaging", "other")
PAYMENT_METHODS = ("cash", "card", "mobile", "insurance", "stored_value", "stored_value_bonus", "points", "coupon")
FEEDBACK_KINDS = ("survey", "complaint")
SATISFACTION_LEVELS = ("very_dissatisfied", "dissatisfied", "neutral", "satisfied", "very_satisfied")
CARE_PLAN_STATUSES = ("active", "closed")

_MEMBER = uuid.UUID("6f1c2a4e-0000-4000-8000-000000000001")
_VISIT = uuid.UUID("6f1c2a4e-0000-4000-8000-000000000002")
_APPOINTMENT = uuid.UUID("6f1c2a4e-0000-4000-8000-000000000003")
_AT = datetime(2026, 3, 5, 2, 30, tzinfo=UTC)


def _member() -> fields.UUID:
    return fields.UUID(required=True, metadata={"description": "The member (an alias after a merge: "
                                                              "consumers follow it to the survivor)."})


def _branch() -> fields.String:
    return fields.String(required=True, metadata={"description": "Branch code."})


class Item(Event):
    category = fields.String(required=True, validate=validate.OneOf(ITEM_CATEGORIES))
    code = fields.String(required=True, allow_none=True, metadata={"description": "The HIS's item code."})
    amount_minor = fields.Integer(required=True, validate=validate.Range(min=0))


class Payment(Event):
    method = fields.String(required=True, validate=validate.OneOf(PAYMENT_METHODS))
    amount_minor = fields.Integer(required=True, validate=validate.Range(min=0))


@EVENTS.event("visit_completed")
class VisitCompleted(Event):
    """A visit was completed with its bill (a visit is also completed from booked when the HIS bills it).
    Points earn on it (and pay a referrer's second bonus on `first_paid_visit`); members count its spend
    and visits for tiers; notifications send post-visit advice and the survey."""

    visit_id = fields.UUID(required=True)
    member_id = _member()
    branch = _branch()
    doctor_id = fields.String(required=True, allow_none=True)
    kind = fields.String(required=True, validate=validate.OneOf(VISIT_KINDS),
                         metadata={"description": "What the HIS (or the desk) said."})
    bill_id = fields.String(required=True, allow_none=True, metadata={"description": "The HIS's bill."})
    completed_at = UtcTime(required=True)
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    items = fields.List(fields.Nested(Item), required=True)
    payments = fields.List(fields.Nested(Payment), required=True)
    qualifying_minor = fields.Integer(required=True, validate=validate.Range(min=0), metadata={
        "description": "What the member actually paid: every payment except points, coupon, stored_value_bonus."})
    first_visit = fields.Boolean(required=True, metadata={"description": "The member's first completed visit."})
    first_paid_visit = fields.Boolean(required=True)
    referral_source = fields.String(required=True, allow_none=True, metadata={
        "description": "`member:<referrer id>` when the member enrolled with a referral code, else what the "
                       "HIS sent (`staff:<id>`, `channel:<name>`), else null."})

    sample = {"visit_id": _VISIT, "member_id": _MEMBER, "branch": "SH01", "doctor_id": "dr-wang", "kind": "return",
              "bill_id": "HIS-2026-0001", "completed_at": _AT, "currency": "CNY",
              "items": [{"category": "cleaning", "code": "CL01", "amount_minor": 28000}],
              "payments": [{"method": "card", "amount_minor": 25000}, {"method": "points", "amount_minor": 3000}],
              "qualifying_minor": 25000, "first_visit": False, "first_paid_visit": False, "referral_source": None}


@EVENTS.event("visit_refunded")
class VisitRefunded(Event):
    """Part or all of a completed visit's bill was refunded. Points take back what the visit earned, in
    proportion (a debt where the points were spent); members take the spend back out."""

    visit_id = fields.UUID(required=True)
    member_id = _member()
    branch = _branch()
    refund_id = fields.UUID(required=True)
    refunded_minor = fields.Integer(required=True, validate=validate.Range(min=0),
                                    metadata={"description": "The qualifying part refunded."})
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    full = fields.Boolean(required=True, metadata={"description": "The whole bill went back."})

    sample = {"visit_id": _VISIT, "member_id": _MEMBER, "branch": "SH01",
              "refund_id": uuid.UUID("6f1c2a4e-0000-4000-8000-000000000004"), "refunded_minor": 25000,
              "currency": "CNY", "full": True}


@EVENTS.event("visit_cancelled")
class VisitCancelled(Event):
    """A booked or open visit was cancelled (a final state). Members undo quota uses, points take back
    anything it earned, notifications take back post-visit messages not sent yet."""

    visit_id = fields.UUID(required=True)
    member_id = _member()
    branch = _branch()

    sample = {"visit_id": _VISIT, "member_id": _MEMBER, "branch": "SH01"}


class _Appointment(Event):
    appointment_id = fields.UUID(required=True)
    member_id = _member()
    branch = _branch()
    doctor_id = fields.String(required=True, allow_none=True)


@EVENTS.event("appointment_booked")
class AppointmentBooked(_Appointment):
    """An appointment was booked. Notifications confirm it and queue its reminders."""

    starts_at = UtcTime(required=True)
    ends_at = UtcTime(required=True)
    service_category = fields.String(required=True, validate=validate.OneOf(ITEM_CATEGORIES))

    sample = {"appointment_id": _APPOINTMENT, "member_id": _MEMBER, "branch": "SH01", "doctor_id": "dr-wang",
              "starts_at": _AT, "ends_at": datetime(2026, 3, 5, 3, tzinfo=UTC), "service_category": "exam"}


@EVENTS.event("appointment_rescheduled")
class AppointmentRescheduled(_Appointment):
    """An appointment moved to another time. Notifications move its reminders."""

    previous_starts_at = UtcTime(required=True)
    starts_at = UtcTime(required=True)
    ends_at = UtcTime(required=True)

    sample = {"appointment_id": _APPOINTMENT, "member_id": _MEMBER, "branch": "SH01", "doctor_id": "dr-wang",
              "previous_starts_at": _AT, "starts_at": datetime(2026, 3, 6, 2, 30, tzinfo=UTC),
              "ends_at": datetime(2026, 3, 6, 3, tzinfo=UTC)}


@EVENTS.event("appointment_confirmed")
class AppointmentConfirmed(_Appointment):
    """The patient confirmed an appointment with a reminder's confirm link (once: a second use of a link, or a
    link for an appointment already confirmed, emits nothing). The appointment stays booked; nobody consumes it
    today — it is there for a journey, a report or the HIS that wants to know who confirmed."""

    starts_at = UtcTime(required=True)
    confirmed_at = UtcTime(required=True)

    sample = {"appointment_id": _APPOINTMENT, "member_id": _MEMBER, "branch": "SH01", "doctor_id": "dr-wang",
              "starts_at": _AT, "confirmed_at": datetime(2026, 3, 4, 9, tzinfo=UTC)}


@EVENTS.event("appointment_cancelled")
class AppointmentCancelled(Event):
    """An appointment was cancelled (by the patient, the clinic, or the member's closure). Notifications
    cancel its reminders."""

    appointment_id = fields.UUID(required=True)
    member_id = _member()
    branch = _branch()
    starts_at = UtcTime(required=True)
    reason = fields.String(required=True, metadata={"description": "Free text; `member_closed: <reason>` when "
                                                                   "the membership closed."})

    sample = {"appointment_id": _APPOINTMENT, "member_id": _MEMBER, "branch": "SH01", "starts_at": _AT,
              "reason": "patient asked"}


_OFFER = uuid.UUID("6f1c2a4e-0000-4000-8000-000000000004")
WAITLIST_CLOSE_REASONS = ("taken",)


@EVENTS.event("waitlist_slot_offered")
class WaitlistSlotOffered(Event):
    """A slot that came free (cancelled by the desk, the patient's link or the HIS, a visit cancelled, a
    membership closed, an appointment moved away) is offered to a patient on the branch's waitlist (with
    others: first to accept gets it), if it is within the branch's horizon. Notifications send the offer;
    ``expires_at`` is never after the slot's start."""

    offer_id = fields.UUID(required=True)
    member_id = _member()
    branch = _branch()
    doctor_id = fields.String(required=True)
    starts_at = UtcTime(required=True)
    service_category = fields.String(required=True, validate=validate.OneOf(ITEM_CATEGORIES))
    expires_at = UtcTime(required=True, metadata={"description": "The offer lapses then."})

    sample = {"offer_id": _OFFER, "member_id": _MEMBER, "branch": "SH01", "doctor_id": "dr-wang", "starts_at": _AT,
              "service_category": "cleaning", "expires_at": datetime(2026, 3, 4, 6, tzinfo=UTC)}


@EVENTS.event("waitlist_offer_closed")
class WaitlistOfferClosed(Event):
    """An offered slot went to another waiting patient. Notifications tell this one it is gone (and take
    back the offer if it has not gone out yet)."""

    offer_id = fields.UUID(required=True)
    member_id = _member()
    branch = _branch()
    starts_at = UtcTime(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(WAITLIST_CLOSE_REASONS))

    sample = {"offer_id": _OFFER, "member_id": _MEMBER, "branch": "SH01", "starts_at": _AT, "reason": "taken"}


@EVENTS.event("feedback_submitted")
class FeedbackSubmitted(Event):
    """A survey answer or a complaint arrived. Points may award review points; notifications alert the
    branch's staff on negative feedback (never with the member's id or words)."""

    feedback_id = fields.UUID(required=True)
    member_id = _member()
    visit_id = fields.UUID(required=True, allow_none=True)
    branch = _branch()
    kind = fields.String(required=True, validate=validate.OneOf(FEEDBACK_KINDS))
    satisfaction = fields.String(required=True, allow_none=True, validate=validate.OneOf(SATISFACTION_LEVELS))
    nps = fields.Integer(required=True, allow_none=True, validate=validate.Range(min=0, max=10))
    urgent = fields.Boolean(required=True)

    sample = {"feedback_id": uuid.UUID("6f1c2a4e-0000-4000-8000-000000000005"), "member_id": _MEMBER,
              "visit_id": _VISIT, "branch": "SH01", "kind": "survey", "satisfaction": "satisfied", "nps": 9,
              "urgent": False}


@EVENTS.event("care_plan_updated")
class CarePlanUpdated(Event):
    """A care plan's recall changed (made, moved by a visit that resets it, or closed). Notifications
    schedule (or stop) its recall reminders."""

    member_id = _member()
    care_plan_id = fields.UUID(required=True)
    recall_type = fields.String(required=True)
    recall_interval_months = fields.Integer(required=True, validate=validate.Range(min=1))
    next_recall_on = fields.Date(required=True, metadata={"description": "A local date of the group."})
    status = fields.String(required=True, validate=validate.OneOf(CARE_PLAN_STATUSES),
                           metadata={"description": "A closed plan's recalls stop."})

    sample = {"member_id": _MEMBER, "care_plan_id": uuid.UUID("6f1c2a4e-0000-4000-8000-000000000006"),
              "recall_type": "cleaning", "recall_interval_months": 6, "next_recall_on": date(2026, 9, 5),
              "status": "active"}


class ImportedVisit(Event):
    visit_id = fields.UUID(required=True)
    branch = _branch()
    kind = fields.String(required=True, validate=validate.OneOf(VISIT_KINDS))
    completed_at = UtcTime(required=True)
    qualifying_minor = fields.Integer(required=True, validate=validate.Range(min=0), metadata={
        "description": "What the member actually paid, as `visit_completed` counts it."})


@EVENTS.event("visits_imported")
class VisitsImported(Event):
    """Historical completed visits of one member, brought over from the group's old system by an import (one
    event per member and batch of the import). Members counts them in the member's activity and 12-month
    spend as it counts `visit_completed`, and places the member's tier on them once (reason `import`).

    A distinct event, not `visit_completed` with a flag: what a completed visit sets off elsewhere — points
    earned (the old system's balances came over as openings already), follow-ups, care-plan recalls,
    post-visit messages and surveys — must not happen for history, and only a consumer that subscribes to
    this event sees it; a flag would be a rule every present and future consumer of `visit_completed`
    had to remember."""

    member_id = _member()
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    visits = fields.List(fields.Nested(ImportedVisit), required=True, validate=validate.Length(min=1))

    sample = {"member_id": _MEMBER, "currency": "CNY",
              "visits": [{"visit_id": _VISIT, "branch": "SH01", "kind": "return", "completed_at": _AT,
                          "qualifying_minor": 25000}]}
