"""Health records, visits, appointments, follow-ups, feedback, KPIs and the audit trail (records service).

Clinical routes need a reason (``X-Access-Reason`` header, or ``reason`` in the query): the records
service keeps it in the audit trail with the caller. The HIS routes (``/v1/his/...``) complete visits
and refund them by the HIS's own bill and refund numbers, so a resent webhook has one effect.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import idempotency_key, query_args, route
from gateway.upstream import Upstream
from services.records.schemas import (
    AppointmentListSchema,
    AppointmentQuerySchema,
    AppointmentSchema,
    AuditPageSchema,
    AuditQuerySchema,
    BillSchema,
    BookingSchema,
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
    KpiQuerySchema,
    KpiReportSchema,
    OpenVisitSchema,
    ProfileChangesSchema,
    ProfileRevisionPageSchema,
    RecordQuerySchema,
    RecordSchema,
    RefundSchema,
    RescheduleSchema,
    ScheduleSchema,
    SlotListSchema,
    SlotQuerySchema,
    VisitPageSchema,
    VisitSchema,
    VisitStatusSchema,
)

RECORD = ("records",)
VISITS = ("visits",)
APPOINTMENTS = ("appointments",)
CARE = ("follow-ups and feedback",)
REPORTS = ("kpis and audit",)
CLINICAL = {403: None, 404: None, 422: None}


def reason(request: Request) -> str | None:
    """Why a clinical record is opened: the ``X-Access-Reason`` header, else ``?reason=``."""
    return request.headers.get("X-Access-Reason") or request.args.get("reason")


def _body(request: Request) -> dict[str, Any]:
    return request.json_body if isinstance(request.json_body, dict) else {}


class RecordRoutes:
    records = Upstream("records")

    # --- the clinical record -----------------------------------------------------------------

    @route("GET", "/v1/members/<member_id>/record", "records:read", tags=RECORD, query=RecordQuerySchema,
           summary="A member's whole record: health profile, chart, care plans, visits (clinical; audited)",
           responses={200: RecordSchema, **CLINICAL})
    def get_record(self, request: Request, member_id: str) -> Any:
        args = query_args(request, integers=("visits_limit",))
        return self.records.get_record(member_id, reason(request), visits_limit=args.get("visits_limit"))

    @route("PATCH", "/v1/members/<member_id>/record", "records:write", tags=RECORD, body=ProfileChangesSchema,
           summary="Change the health profile: history, allergies, family history, medication, notes (audited)",
           responses={200: HealthProfileSchema, 409: None, **CLINICAL}, idempotent=True)
    def update_health_profile(self, request: Request, member_id: str) -> Any:
        return self.records.update_health_profile(member_id, request.json_body, reason(request),
                                                  idempotency_key=idempotency_key(request))

    @route("GET", "/v1/members/<member_id>/record/history", "records:read", tags=RECORD, query=RecordQuerySchema,
           summary="Every saved version of the health profile (audited)",
           responses={200: ProfileRevisionPageSchema, **CLINICAL})
    def health_profile_history(self, request: Request, member_id: str) -> Any:
        args = query_args(request)
        return self.records.health_profile_history(member_id, reason(request), limit=args.get("limit"),
                                                   cursor=args.get("cursor"))

    @route("GET", "/v1/members/<member_id>/chart", "records:read", tags=RECORD, query=RecordQuerySchema,
           summary="The dental chart (FDI), teeth with findings (audited)", responses={200: DentalChartSchema,
                                                                                      **CLINICAL})
    def get_chart(self, request: Request, member_id: str) -> Any:
        return self.records.get_chart(member_id, reason(request))

    @route("POST", "/v1/members/<member_id>/chart", "records:write", tags=RECORD, body=ChartMarksSchema,
           summary="Record or clear findings on teeth (all marks or none; audited)",
           responses={200: DentalChartSchema, 409: None, **CLINICAL}, idempotent=True)
    def update_chart(self, request: Request, member_id: str) -> Any:
        return self.records.update_chart(member_id, request.json_body, reason(request),
                                         idempotency_key=idempotency_key(request))

    @route("GET", "/v1/members/<member_id>/chart/history", "records:read", tags=RECORD, query=RecordQuerySchema,
           summary="What changed on the chart, when, by whom (audited)",
           responses={200: ChartHistoryPageSchema, **CLINICAL})
    def chart_history(self, request: Request, member_id: str) -> Any:
        args = query_args(request)
        return self.records.chart_history(member_id, reason(request), limit=args.get("limit"),
                                          cursor=args.get("cursor"))

    @route("GET", "/v1/members/<member_id>/care-plan", "records:read", tags=RECORD, query=RecordQuerySchema,
           summary="The member's care plans with their recalls (audited)", responses={200: CarePlanListSchema,
                                                                                     **CLINICAL})
    def get_care_plans(self, request: Request, member_id: str) -> Any:
        return self.records.get_care_plans(member_id, reason(request))

    @route("PUT", "/v1/members/<member_id>/care-plan", "records:write", tags=RECORD, body=CarePlanChangesSchema,
           summary="Create or change the care plan of a recall type (audited)",
           responses={200: CarePlanSchema, **CLINICAL}, idempotent=True)
    def save_care_plan(self, request: Request, member_id: str) -> Any:
        return self.records.save_care_plan(member_id, request.json_body, reason(request),
                                           idempotency_key=idempotency_key(request))

    @route("GET", "/v1/members/<member_id>/recalls", "appointments:read", tags=APPOINTMENTS,
           summary="When the member's recalls fall due (no clinical text)", responses={200: CarePlanListSchema})
    def get_recalls(self, request: Request, member_id: str) -> Any:
        return self.records.get_recalls(member_id)

    # --- visits ------------------------------------------------------------------------------

    @route("GET", "/v1/members/<member_id>/visits", "visits:read", tags=VISITS, summary="A member's visits, newest first",
           responses={200: VisitPageSchema})
    def list_visits(self, request: Request, member_id: str) -> Any:
        args = query_args(request)
        return self.records.list_visits(member_id, limit=args.get("limit"), cursor=args.get("cursor"))

    @route("POST", "/v1/visits", "visits:write", tags=VISITS, body=OpenVisitSchema,
           summary="Open a visit: a walk-in who has arrived, or a visit booked for later",
           responses={201: VisitSchema, 403: None, 404: None}, idempotent=True)
    def open_visit(self, request: Request) -> tuple[int, Any]:
        return 201, self.records.open_visit(request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/visits/<visit_id>", "visits:read", tags=VISITS, summary="A visit with its bill",
           responses={200: VisitSchema, 404: None})
    def get_visit(self, request: Request, visit_id: str) -> Any:
        return self.records.get_visit(visit_id)

    @route("POST", "/v1/visits/<visit_id>/status", "visits:write", tags=VISITS, body=VisitStatusSchema,
           summary="Arrived, in treatment, cancelled or no-show (asking again changes nothing)",
           responses={200: VisitSchema, 404: None, 409: None})
    def advance_visit(self, request: Request, visit_id: str) -> Any:
        return self.records.advance_visit(visit_id, _body(request).get("status"))

    @route("POST", "/v1/visits/<visit_id>/complete", "visits:write", tags=VISITS, body=BillSchema,
           summary="Complete this visit with its bill (once per bill id)", responses={200: VisitSchema,
                                                                                     404: None, 409: None})
    def complete_this_visit(self, request: Request, visit_id: str) -> Any:
        return self.records.complete_visit({**_body(request), "visit_id": visit_id})

    @route("POST", "/v1/visits/<visit_id>/refunds", "visits:write", tags=VISITS, body=RefundSchema,
           summary="Refund part or all of a completed visit (once per refund id)",
           responses={200: VisitSchema, 404: None, 409: None})
    def refund_this_visit(self, request: Request, visit_id: str) -> Any:
        return self.records.refund_visit({**_body(request), "visit_id": visit_id, "bill_id": None})

    @route("POST", "/v1/his/bills", "his:bills", tags=VISITS, body=BillSchema,
           summary="The HIS (with an API key) sends a visit's bill; completes the visit once per bill id, "
                   "however often it is sent",
           responses={200: VisitSchema, 404: None, 409: None})
    def his_bill(self, request: Request) -> Any:
        return self.records.complete_visit(request.json_body)

    @route("POST", "/v1/his/refunds", "his:bills", tags=VISITS, body=RefundSchema,
           summary="The HIS (with an API key) sends a refund of a billed visit, once per refund id",
           responses={200: VisitSchema, 404: None, 409: None})
    def his_refund(self, request: Request) -> Any:
        return self.records.refund_visit(request.json_body)

    @route("POST", "/v1/webhooks/bills", "his:bills", tags=VISITS, body=BillSchema, webhook=True,
           summary="The HIS pushes a visit's bill (signed webhook); completes the visit once per bill id",
           description="The same as `POST /v1/his/bills` for an HIS that signs its pushes (HMAC over timestamp "
                       "and body) instead of holding an API key. Redelivery is harmless: the bill id decides.",
           responses={200: VisitSchema, 404: None, 409: None})
    def his_bill_signed(self, request: Request) -> Any:
        return self.records.complete_visit(request.json_body)

    @route("POST", "/v1/webhooks/refunds", "his:bills", tags=VISITS, body=RefundSchema, webhook=True,
           summary="The HIS pushes a refund of a billed visit (signed webhook), once per refund id",
           responses={200: VisitSchema, 404: None, 409: None})
    def his_refund_signed(self, request: Request) -> Any:
        return self.records.refund_visit(request.json_body)

    # --- appointments ------------------------------------------------------------------------

    @route("GET", "/v1/appointments/slots", "appointments:read", tags=APPOINTMENTS, query=SlotQuerySchema,
           summary="A branch's slots on a day (free ones unless free_only=false)", responses={200: SlotListSchema})
    def list_slots(self, request: Request) -> Any:
        return self.records.list_slots(query_args(request))

    @route("POST", "/v1/appointments/slots", "schedules:write", tags=APPOINTMENTS, body=ScheduleSchema,
           summary="Publish a doctor's hours on a day as slots (again: no change)",
           responses={200: SlotListSchema, 409: None})
    def publish_slots(self, request: Request) -> Any:
        return self.records.publish_slots(request.json_body)

    @route("POST", "/v1/appointments", "appointments:write", tags=APPOINTMENTS, body=BookingSchema,
           summary="Book a slot within the member's booking horizon; a taken slot is 409",
           responses={201: AppointmentSchema, 404: None, 409: None}, idempotent=True)
    def book(self, request: Request) -> tuple[int, Any]:
        return 201, self.records.book(request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/appointments", "appointments:read", tags=APPOINTMENTS, query=AppointmentQuerySchema,
           summary="A member's appointments, or a branch's on a day", responses={200: AppointmentListSchema})
    def list_appointments(self, request: Request) -> Any:
        return self.records.list_appointments(query_args(request, integers=()))

    @route("POST", "/v1/appointments/<appointment_id>/reschedule", "appointments:write", tags=APPOINTMENTS,
           body=RescheduleSchema, summary="Move a booked appointment to another slot",
           responses={200: AppointmentSchema, 404: None, 409: None}, idempotent=True)
    def reschedule(self, request: Request, appointment_id: str) -> Any:
        return self.records.reschedule(appointment_id, _body(request).get("slot_id"),
                                       idempotency_key=idempotency_key(request))

    @route("POST", "/v1/appointments/<appointment_id>/cancel", "appointments:write", tags=APPOINTMENTS,
           summary="Cancel an appointment (body: {\"reason\"}, optional)",
           responses={200: AppointmentSchema, 404: None, 409: None})
    def cancel_appointment(self, request: Request, appointment_id: str) -> Any:
        return self.records.cancel_appointment(appointment_id, _body(request).get("reason"))

    @route("POST", "/v1/appointments/<appointment_id>/check-in", "appointments:write", tags=APPOINTMENTS,
           summary="The member has arrived", responses={200: AppointmentSchema, 404: None, 409: None})
    def check_in(self, request: Request, appointment_id: str) -> Any:
        return self.records.check_in(appointment_id)

    @route("POST", "/v1/appointments/<appointment_id>/no-show", "appointments:write", tags=APPOINTMENTS,
           summary="The member did not come (a call for customer service)",
           responses={200: AppointmentSchema, 404: None, 409: None})
    def mark_no_show(self, request: Request, appointment_id: str) -> Any:
        return self.records.mark_no_show(appointment_id)

    # --- follow-ups and feedback -------------------------------------------------------------

    @route("GET", "/v1/follow-ups", "follow-ups:work", tags=CARE, query=FollowUpQuerySchema,
           summary="A branch's open callback tasks in your queues, the longest overdue first",
           responses={200: FollowUpPageSchema})
    def follow_up_queue(self, request: Request) -> Any:
        return self.records.follow_up_queue(query_args(request))

    @route("POST", "/v1/follow-ups/<task_id>/outcome", "follow-ups:work", tags=CARE, body=FollowUpOutcomeSchema,
           summary="Record a call's outcome (retry_on keeps the task for another try)",
           responses={200: FollowUpSchema, 404: None}, idempotent=True)
    def record_follow_up(self, request: Request, task_id: str) -> Any:
        return self.records.record_follow_up(task_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/members/<member_id>/follow-ups", "follow-ups:work", tags=CARE,
           summary="A member's open callback tasks", responses={200: FollowUpPageSchema})
    def member_follow_ups(self, request: Request, member_id: str) -> Any:
        return self.records.member_follow_ups(member_id, request.args.get("open_only", "true") != "false")

    @route("POST", "/v1/feedback", "feedback:submit", tags=CARE, body=FeedbackSubmissionSchema,
           summary="A satisfaction survey for a visit, or a complaint (urgent: answer within 30 minutes)",
           responses={201: FeedbackSchema, 404: None, 409: None}, idempotent=True)
    def submit_feedback(self, request: Request) -> tuple[int, Any]:
        return 201, self.records.submit_feedback(request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/feedback/complaints", "complaints:handle", tags=CARE, query=ComplaintQuerySchema,
           summary="A branch's open complaints, the nearest deadline first", responses={200: FeedbackPageSchema})
    def complaints(self, request: Request) -> Any:
        return self.records.complaints(query_args(request))

    @route("GET", "/v1/feedback/<feedback_id>", "complaints:handle", tags=CARE, summary="One survey or complaint",
           responses={200: FeedbackSchema, 404: None})
    def get_feedback(self, request: Request, feedback_id: str) -> Any:
        return self.records.get_feedback(feedback_id)

    @route("POST", "/v1/feedback/<feedback_id>/response", "complaints:handle", tags=CARE,
           body=ComplaintResponseSchema, summary="Answer a complaint (the first answer stops its clock)",
           responses={200: FeedbackSchema, 404: None, 409: None})
    def respond_to_complaint(self, request: Request, feedback_id: str) -> Any:
        return self.records.respond_to_complaint(feedback_id, request.json_body)

    @route("POST", "/v1/feedback/<feedback_id>/resolution", "complaints:handle", tags=CARE,
           body=ComplaintResolutionSchema, summary="Resolve a complaint",
           responses={200: FeedbackSchema, 404: None, 409: None}, idempotent=True)
    def resolve_complaint(self, request: Request, feedback_id: str) -> Any:
        return self.records.resolve_complaint(feedback_id, request.json_body, idempotency_key=idempotency_key(request))

    # --- KPIs and audit ----------------------------------------------------------------------

    @route("GET", "/v1/kpis", "kpis:read", tags=REPORTS, query=KpiQuerySchema,
           summary="Visit KPIs per branch for a day, week, month or year", responses={200: KpiReportSchema})
    def kpis(self, request: Request) -> Any:
        return self.records.kpis(query_args(request, integers=()))

    @route("GET", "/v1/audit", "audit:read", tags=REPORTS, query=AuditQuerySchema,
           summary="Who opened or changed which health records, when and why", responses={200: AuditPageSchema})
    def audit_trail(self, request: Request) -> Any:
        return self.records.audit_trail(query_args(request))
