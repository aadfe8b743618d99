"""Pushes from the HIS/EMR as signed webhooks (``webhook=True``: HMAC over timestamp and body, replays
refused; see ``gateway.auth.webhooks``). Other services' webhook routes live beside their other routes."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import idempotency_key, route
from gateway.upstream import Upstream
from services.members.schemas import EnrolmentSchema, MemberSchema

TAGS = ("webhooks",)


class IntegrationRoutes:
    members = Upstream("members")

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
