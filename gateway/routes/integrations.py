"""Pushes from the HIS/EMR as signed webhooks (``webhook=True``: HMAC over timestamp and body, replays
refused; see ``gateway.auth.webhooks``). Other services' webhook routes live beside their other routes."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import caller, idempotency_key, route
from gateway.upstream import Upstream
from services.interfaces.schemas import ReviewReceiptSchema
from services.members.schemas import MemberSchema, PatientSchema

TAGS = ("webhooks",)
STATUS = {"enrolled": 201, "matched": 200}


class IntegrationRoutes:
    interfaces = Upstream("interfaces")

    @route("POST", "/v1/webhooks/patients", "members:enrol", webhook=True,
           summary="The HIS registers a patient (signed webhook): linked to the member it surely is, enrolled "
                   "(source his) if nobody, or put in review if someone probably is",
           description="Through the identity rule (interfaces.identify): 200 with the member when the patient "
                       "surely is one (same identifier, ID document, or phone under the same name; the "
                       "patient's identifiers are added to it); 201 with the new member when nobody matched; "
                       "202 with the review when a member probably is the patient (same name and birth date "
                       "with another phone, same phone under another name): no member is created until a "
                       "branch manager resolves it (/v1/identity/reviews). Send Idempotency-Key (e.g. the HIS "
                       "patient id): a redelivery gets the same answer and queues one review.",
           tags=TAGS, body=PatientSchema,
           responses={200: MemberSchema, 201: MemberSchema, 202: ReviewReceiptSchema, 409: None})
    def his_patient_registered(self, request: Request) -> tuple[int, Any]:
        patient = request.json_body
        if isinstance(patient, dict):
            patient = {**patient, "source": "his"}
        answer = self.interfaces.identify({
            "patient": patient, "source": caller(request).subject,  # webhook:<integration id>
            "source_ref": request.headers.get("Idempotency-Key") or None,
            "original": request.get_data(as_text=True), "original_format": "application/json",
        }, idempotency_key=idempotency_key(request))
        if answer["outcome"] == "review":
            return 202, ReviewReceiptSchema().dump(answer["review"])
        return STATUS[answer["outcome"]], answer["member"]
