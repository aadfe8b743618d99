"""The health record's parts as FHIR resources, and appointments: AllergyIntolerance, Condition, CarePlan
(records' health profile and care plans) and Appointment (records' bookings).

- AllergyIntolerance / Condition: one per entry of the profile's ``allergies`` / ``medical_history``, id
  ``<member id>-<position>`` at the profile's version (a saved profile may renumber them); the text as
  ``code.text`` (records keeps words, not codes).
- CarePlan: one per recall type; ``period.end`` the next recall, the clinical texts as ``note``.
- Appointment: ``booked``/``checked_in`` → booked/arrived, ``cancelled``, ``no_show`` → noshow; the patient and
  the doctor (``Practitioner/<doctor id>``) as participants; the slot as ``slot``. Booking takes
  ``slot`` (``Slot/<slot id>``) and the patient; records applies the booking horizon and the double-booking rule.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.appointment import Appointment

from gateway.fhir.http import validated
from services.kit.errors import Invalid

TO_FHIR_SEVERITY = {"mild": "mild", "moderate": "moderate", "severe": "severe", "life_threatening": "severe"}
TO_FHIR_APPOINTMENT = {"booked": "booked", "checked_in": "arrived", "cancelled": "cancelled", "no_show": "noshow"}
CATEGORY_SYSTEM = "urn:careloop:item-category"
RECALL_SYSTEM = "urn:careloop:recall-type"


def _patient(member_id: str) -> dict[str, str]:
    return {"reference": f"Patient/{member_id}"}


def allergies(profile: dict[str, Any]) -> list[dict[str, Any]]:
    member_id = profile["member_id"]
    found = []
    for n, allergy in enumerate(profile.get("allergies") or (), start=1):
        resource: dict[str, Any] = {
            "resourceType": "AllergyIntolerance", "id": f"{member_id}-{n}", "patient": _patient(member_id),
            "code": {"text": allergy["substance"]},
            "criticality": "high" if allergy["severity"] == "life_threatening" else "low",
            "reaction": [{"manifestation": [{"text": allergy.get("reaction") or allergy["substance"]}],
                          "severity": TO_FHIR_SEVERITY[allergy["severity"]]}],
        }
        if allergy.get("noted_on"):
            resource["recordedDate"] = allergy["noted_on"]
        found.append(resource)
    return found


def conditions(profile: dict[str, Any]) -> list[dict[str, Any]]:
    member_id = profile["member_id"]
    found = []
    for n, condition in enumerate(profile.get("medical_history") or (), start=1):
        resource: dict[str, Any] = {
            "resourceType": "Condition", "id": f"{member_id}-{n}", "subject": _patient(member_id),
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                      "code": "problem-list-item"}]}],
            "code": {"text": condition["condition"]},
        }
        if condition.get("since"):
            resource["onsetString"] = condition["since"]
        if condition.get("notes"):
            resource["note"] = [{"text": condition["notes"]}]
        found.append(resource)
    return found


def care_plan(plan: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "CarePlan", "id": plan["id"], "subject": _patient(plan["member_id"]),
        "status": "active" if plan.get("status") == "active" else "on-hold", "intent": "plan",
        "category": [{"coding": [{"system": RECALL_SYSTEM, "code": plan["recall_type"]}]}],
        "period": {"end": plan["next_recall_on"]},
        "meta": {"versionId": str(plan.get("version") or 1), "lastUpdated": plan.get("updated_at")},
    }
    if plan.get("last_reset_on"):
        resource["period"]["start"] = plan["last_reset_on"]
    notes = [{"text": f"{label}: {plan[key]}"} for key, label in (("guidance", "Guidance"), ("diet", "Diet"),
                                                                 ("prevention", "Prevention")) if plan.get(key)]
    if notes:
        resource["note"] = notes
    if not resource["meta"]["lastUpdated"]:
        del resource["meta"]["lastUpdated"]
    return resource


def appointment(booked: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Appointment", "id": booked["id"], "status": TO_FHIR_APPOINTMENT[booked["status"]],
        "serviceCategory": [{"coding": [{"system": CATEGORY_SYSTEM, "code": booked["service_category"]}]}],
        "start": booked["starts_at"], "end": booked["ends_at"], "slot": [{"reference": f"Slot/{booked['slot_id']}"}],
        "participant": [{"actor": _patient(booked["member_id"]), "status": "accepted"},
                        {"actor": {"reference": f"Practitioner/{booked['doctor_id']}"}, "status": "accepted"},
                        {"actor": {"reference": f"Location/{booked['branch']}"}, "status": "accepted"}],
    }
    if booked.get("cancel_reason"):
        resource["cancelationReason"] = {"text": booked["cancel_reason"]}
    return resource


def booking(body: Any) -> dict[str, Any]:
    """A proposed or booked Appointment as records' ``BookingSchema``: one ``Slot/<id>`` and the patient."""
    proposed = validated(Appointment, body, "Appointment")
    if proposed.status not in ("proposed", "pending", "booked"):
        raise Invalid("A new Appointment is proposed, pending or booked.", {"status": ["proposed, pending or booked"]})
    slots = [item.reference.removeprefix("Slot/") for item in proposed.slot or ()
             if (item.reference or "").startswith("Slot/")]
    patients = [item.actor.reference.removeprefix("Patient/") for item in proposed.participant
                if item.actor is not None and (item.actor.reference or "").startswith("Patient/")]
    if len(slots) != 1 or len(patients) != 1:
        raise Invalid("Book one slot (slot: Slot/<id>) for one patient (participant actor Patient/<id>).",
                      {"slot": ["One Slot/<id>."], "participant": ["One Patient/<id>."]})
    category = next((c.code for concept in proposed.serviceCategory or () for c in concept.coding or ()
                     if c.system == CATEGORY_SYSTEM), None)
    return {"member_id": patients[0], "slot_id": slots[0], **({"service_category": category} if category else {})}
