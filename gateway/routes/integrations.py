"""Pushes from the HIS/EMR: signed webhooks (``webhook=True``: HMAC over timestamp and body, replays refused;
see ``gateway.auth.webhooks``) and HL7 v2 messages over HTTP (an API key, as interface engines send a fixed
header more easily than an HMAC). Other services' webhook routes live beside their other routes."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from gateway.http import idempotency_key, route
from gateway.upstream import Upstream
from services.members.schemas import EnrolmentSchema, MemberSchema

TAGS = ("webhooks",)
HL7_MEDIA_TYPES = ("application/hl7-v2", "x-application/hl7-v2+er7", "text/plain")
"""What an HL7 v2 message (ER7, segments ended by CR) may be sent as; the ACK comes back as the first."""


class IntegrationRoutes:
    members = Upstream("members")
    interfaces = Upstream("interfaces")

    @route("POST", "/v1/webhooks/patients", "members:enrol", webhook=True,
           summary="The HIS registers a patient (signed webhook; enrols a member with source his)",
           description="Send Idempotency-Key (e.g. the HIS patient id) so that a redelivery enrols once; "
                       "a patient already enrolled is 409 naming the member.",
           tags=TAGS, body=EnrolmentSchema, responses={201: MemberSchema, 409: None})
    def his_patient_registered(self, request: Request) -> tuple[int, Any]:
        patient = request.json_body
        if isinstance(patient, dict):
            patient = {**patient, "source": "his"}
        return 201, self.members.enrol(patient, idempotency_key=idempotency_key(request))

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
