"""Pushes from the HIS/EMR: signed webhooks (``webhook=True``: HMAC over timestamp and body, replays refused;
see ``gateway.auth.webhooks``) and HL7 v2 messages over HTTP (an API key, as interface engines send a fixed
header more easily than an HMAC). Other services' webhook routes live beside their other routes."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from gateway.http import caller, idempotency_key, route
from gateway.upstream import Upstream
from services.interfaces.schemas import ReviewReceiptSchema
from services.members.schemas import MemberSchema, PatientSchema

TAGS = ("webhooks",)
STATUS = {"enrolled": 201, "matched": 200}

HL7_MEDIA_TYPES = ("application/hl7-v2", "x-application/hl7-v2+er7", "text/plain")
"""What an HL7 v2 message (ER7, segments ended by CR) may be sent as; the ACK comes back as the first."""


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

    @route("POST", "/v1/hl7", "hl7:send", body=HL7_MEDIA_TYPES, idempotent=False, tags=("hl7",),
           summary="The HIS sends one HL7 v2 message (2.3 to 2.5.1; API key); the answer is its ACK",
           description="ADT^A04 registers, ADT^A08 updates, ADT^A40 merges (reversibly), DFT^P03 completes a paid "
                       "visit, SIU^S12 books and SIU^S15 cancels an appointment. The body is one message as the HIS writes it; its character set is MSH-18's (UTF-8, "
                       "GB 18030-2000, BIG-5). The answer is always 200 with the ACK: MSA-1 `AA` done, `AE` with an "
                       "ERR segment naming the field, `AR` not taken (not HL7, a type or version not taken, a "
                       "facility or branch not allowed). MSH-10 is the idempotency key: the same facility's message "
                       "with the same control id again gets the same ACK and has no second effect. The same messages "
                       "may be sent over MLLP (TCP port HL7_MLLP_PORT, default 2575).",
           responses={200: HL7_MEDIA_TYPES[0]})
    def hl7_message(self, request: Request) -> Response:
        answer = self.interfaces.receive_hl7(request.get_data(cache=True))
        return Response(answer["ack"].encode("utf-8"), status=200,
                        headers={"Content-Type": f"{HL7_MEDIA_TYPES[0]}; charset=utf-8", "Cache-Control": "no-store"})
