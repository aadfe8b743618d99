"""Patient ⇄ member: what a FHIR Patient means in CareLoop and back.

- ``identifier``: the member's identifiers as members keeps them (``{system, value}``): the card number under
  the group's card system first, then each HIS's own patient id (MRN) under that HIS's system URI.
- ``name``: the member's one full name, as ``text``; read back its first word is ``family`` and the rest
  ``given`` (family name first, as members writes names). Written, ``family`` then ``given`` (or ``text``).
- ``telecom``: the mobile (``phone``, the member's phone first) and the e-mail; masked numbers stay masked
  for roles that may not see them.
- ``gender``: female, male, other; FHIR's ``unknown`` is members' ``undisclosed``.
- ``birthDate``: the date of birth (required by members).
- ``managingOrganization``: the member's home branch, ``Organization/<branch code>`` (or an identifier whose
  value is the branch code); a caller with one branch may leave it out.
- ``meta.versionId``: the member's version (``If-Match``), ``meta.lastUpdated`` its ``updated_at``;
  ``active``: the membership is active (not frozen, closed or merged); a merged member ``link``s (replaced-by)
  to the member it was merged into.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.patient import Patient

from gateway.fhir.http import validated
from services.kit.errors import Invalid

TO_FHIR_GENDER = {"female": "female", "male": "male", "other": "other", "undisclosed": "unknown"}
FROM_FHIR_GENDER = {fhir: ours for ours, fhir in TO_FHIR_GENDER.items()}
BRANCH_PREFIX = "Organization/"


def resource(member: dict[str, Any], identifiers: list[dict[str, str]]) -> dict[str, Any]:
    """The FHIR Patient of a member (members' ``MemberSchema`` answer) and its identifiers."""
    words = (member.get("full_name") or "").split()
    name: dict[str, Any] = {"use": "official", "text": member.get("full_name")}
    if words:
        name["family"] = words[0]
        if words[1:]:
            name["given"] = words[1:]
    telecom = []
    if member.get("phone"):
        telecom.append({"system": "phone", "value": member["phone"], "use": "mobile", "rank": 1})
    if member.get("email"):
        telecom.append({"system": "email", "value": member["email"]})
    patient: dict[str, Any] = {
        "resourceType": "Patient", "id": member["id"],
        "meta": {"versionId": str(member.get("version") or 1), "lastUpdated": member.get("updated_at")},
        "identifier": [{"system": item["system"], "value": item["value"]} for item in identifiers],
        "active": member.get("status") == "active",
        "name": [name] if member.get("full_name") else [],
        "telecom": telecom,
        "gender": TO_FHIR_GENDER.get(member.get("gender") or "undisclosed", "unknown"),
        "birthDate": member.get("birth_date"),
        "managingOrganization": {"reference": BRANCH_PREFIX + member["home_branch"]},
    }
    if member.get("merged_into"):
        patient["link"] = [{"other": {"reference": f"Patient/{member['merged_into']}"}, "type": "replaced-by"}]
    return {key: value for key, value in patient.items() if value not in (None, [])}


def _full_name(patient: Patient) -> str | None:
    for name in patient.name or ():
        if name.use in ("old", "maiden"):
            continue
        words = [name.family or "", *(name.given or ())]
        joined = " ".join(word.strip() for word in words if word and word.strip())
        return joined or (name.text or "").strip() or None
    return None


def _branch(patient: Patient, branches: tuple[str, ...]) -> str:
    organisation = patient.managingOrganization
    if organisation is not None:
        if organisation.reference and organisation.reference.startswith(BRANCH_PREFIX):
            return organisation.reference.removeprefix(BRANCH_PREFIX)
        if organisation.identifier is not None and organisation.identifier.value:
            return organisation.identifier.value
    real = [branch for branch in branches if branch != "*"]
    if len(real) == 1 and "*" not in branches:
        return real[0]
    raise Invalid("Say which branch the patient belongs to: managingOrganization Organization/<branch code>.",
                  {"managingOrganization": ["Required (Organization/<branch code>) unless you have one branch."]})


def member_fields(body: Any, branches: tuple[str, ...]) -> dict[str, Any]:
    """A Patient (the request's body) as members' ``PatientSchema`` (enrol or identify): 400 if it is not a
    valid R4 Patient, 422 if it lacks what a member needs (a name, a birth date, a branch)."""
    patient = validated(Patient, body, "Patient")
    missing = {}
    full_name = _full_name(patient)
    if full_name is None:
        missing["name"] = ["A name is needed (family and given, or text)."]
    if patient.birthDate is None:
        missing["birthDate"] = ["The date of birth is needed."]
    if patient.gender is not None and patient.gender not in FROM_FHIR_GENDER:
        missing["gender"] = ["One of female, male, other, unknown."]
    if missing:
        raise Invalid("This Patient lacks what a member needs.", missing)
    phones = [item.value for item in sorted((t for t in patient.telecom or () if t.system in ("phone", "sms")
                                             and t.value), key=lambda t: (t.use != "mobile", t.rank or 99))]
    emails = [item.value for item in patient.telecom or () if item.system == "email" and item.value]
    identifiers = [{"system": item.system, "value": item.value} for item in patient.identifier or ()
                   if item.system and item.value]
    fields: dict[str, Any] = {
        "full_name": full_name, "birth_date": patient.birthDate.isoformat(),
        "gender": FROM_FHIR_GENDER[patient.gender or "unknown"], "phones": phones[:5],
        "phone": phones[0] if phones else None, "email": emails[0] if emails else None,
        "identifiers": identifiers, "home_branch": _branch(patient, branches),
    }
    return fields


def changes(body: Any, member_id: str, branches: tuple[str, ...]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """An update (``PUT``): the member's changed details (members' ``MemberChangesSchema``) and the identifiers
    the Patient carries. ``id`` must be the path's."""
    if isinstance(body, dict) and body.get("id") != member_id:
        raise Invalid("The Patient's id must be the id in the URL.", {"id": [f"Must be {member_id}."]})
    fields = member_fields(body, branches)
    change = {key: fields[key] for key in ("full_name", "birth_date", "gender", "home_branch")}
    if fields["phone"]:
        change["phone"] = fields["phone"]
    change["email"] = fields["email"]
    return change, fields["identifiers"]
