"""The FHIR routes: HTTP in FHIR's terms → the owning service's RPCs → FHIR resources back.

Patient is a member (``members``); a Patient arriving (create, conditional create) goes through the identity
rule (``interfaces.identify``), like every patient that arrives from outside.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.wrappers import Request

from gateway.fhir import capability, clinical, encounter, patient
from gateway.fhir.http import FHIR_JSON, count_of, fhir_route, outcome, searchset
from gateway.http import caller, idempotency_key
from gateway.paths import UUID_EXAMPLE, UUID_PATTERN, PathType
from gateway.routes.records import reason
from gateway.upstream import Upstream
from services.kit.errors import BadRequest, Invalid, NotFound

STARTED = datetime.now(UTC).isoformat(timespec="seconds")
IF_MATCH = re.compile(r'^(?:W/)?"?([0-9]{1,9})"?$')
REVIEW_SYSTEM = "urn:careloop:identity-review"

PATIENT_SEARCH = (
    ("identifier", "token", "system|value: the card number under the group's card system, or a HIS's MRN "
                            "under its system"),
    ("telecom", "token", "the mobile phone (phone|<number> or <number>; local numbers read in the group's region)"),
    ("phone", "token", "the mobile phone"),
    ("name", "string", "a word of the full name"),
    ("family", "string", "the family name (the full name's first word)"),
    ("given", "string", "a given name (a later word of the full name)"),
    ("birthdate", "date", "the date of birth (YYYY-MM-DD, eq): narrows a search by another parameter"),
)
PATIENT_PARAMS = frozenset(name for name, _kind, _doc in PATIENT_SEARCH) | {"_count", "_cursor"}
ENCOUNTER_SEARCH = (
    ("patient", "reference", "Patient/<member id> (required)"),
    ("date", "date", "the visit's day (UTC), with eq, ge, gt, le or lt; twice for a range"),
    ("status", "token", "planned, arrived, in-progress, finished, cancelled (comma-separated: any of them)"),
)
ENCOUNTER_PARAMS = frozenset(name for name, _kind, _doc in ENCOUNTER_SEARCH) | {"_count", "_cursor"}
ENTRY_ID = {"entry_id": PathType("health-record entry", rf"{UUID_PATTERN}-[1-9][0-9]{{0,2}}",
                                 "ids are <member id>-<position>", f"{UUID_EXAMPLE}-1", max_length=40)}
BY_PATIENT = (("patient", "reference", "Patient/<member id> (required)"),)
CLINICAL_PARAMS = frozenset({"patient", "reason"})
DATE_TESTS = {"eq": str.__eq__, "ge": str.__ge__, "gt": str.__gt__, "le": str.__le__, "lt": str.__lt__}
DAY = re.compile(r"^(eq|ge|gt|le|lt)?([0-9]{4}-[0-9]{2}-[0-9]{2})$")


def _date_test(value: str) -> Any:
    """A FHIR date search value (``ge2026-12-01``) as a test of a ``YYYY-MM-DD`` day."""
    found = DAY.match(value)
    if found is None:
        raise Invalid("date must be YYYY-MM-DD with an optional eq, ge, gt, le or lt.", {"date": ["e.g. ge2026-12-01"]})
    test, day = DATE_TESTS[found.group(1) or "eq"], found.group(2)
    return lambda other: bool(other) and test(other, day)


def _only(args: Any, known: frozenset[str] | set[str], what: str) -> None:
    """Refuse parameters this server does not serve (rather than ignore them and answer too much)."""
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise BadRequest(f"Unknown parameters: {', '.join(unknown)}.",
                         {name: [f"Not a parameter of {what} here (see /fhir/metadata)."] for name in unknown})


def _token(value: str) -> tuple[str | None, str]:
    system, bar, code = value.partition("|")
    return (system or None, code) if bar else (None, value)


def _version(request: Request) -> int | None:
    header = request.headers.get("If-Match")
    if header is None:
        return None
    found = IF_MATCH.match(header.strip())
    if found is None:
        raise BadRequest('If-Match must be W/"<versionId>" (the Patient\'s meta.versionId).')
    return int(found.group(1))


def _etag(resource: dict[str, Any]) -> dict[str, str]:
    return {"ETag": f'W/"{resource["meta"]["versionId"]}"'}


def _narrowed(resource: dict[str, Any], args: Any, primary: str) -> bool:
    """Whether a Patient found by ``primary`` also meets the query's other parameters."""
    name = (resource.get("name") or [{}])[0]
    words = [word.casefold() for word in (name.get("text") or "").split()]
    for key, value in args.items(multi=True):
        wanted = value.casefold()
        if key == primary or key in ("_count", "_cursor"):
            continue
        if key == "birthdate" and resource.get("birthDate") != value.removeprefix("eq"):
            return False
        if key == "family" and not (words and words[0].startswith(wanted)):
            return False
        if key == "given" and not any(word.startswith(wanted) for word in words[1:]):
            return False
        if key == "name" and not any(word.startswith(wanted) for word in words):
            return False
        if key in ("telecom", "phone"):
            digits = re.sub(r"\D", "", _token(value)[1]).lstrip("0")
            phones = [re.sub(r"\D", "", item["value"]) for item in resource.get("telecom", ())
                      if item["system"] == "phone"]
            if not digits or not any(phone.endswith(digits) for phone in phones):
                return False
        if key == "identifier" and {"system": _token(value)[0], "value": _token(value)[1]} not in \
                resource.get("identifier", ()):
            return False
    return True


class FhirRoutes:
    members = Upstream("members")
    interfaces = Upstream("interfaces")
    records = Upstream("records")

    def _patient(self, member_id: str) -> dict[str, Any]:
        """The Patient of a member: one call (``members.get_patient``: the member with its identifiers)."""
        view = self.members.get_patient(member_id)
        return patient.resource(view, view["identifiers"])

    @fhir_route("GET", "/fhir/metadata", public=True, summary="The FHIR CapabilityStatement")
    def fhir_metadata(self, request: Request) -> Any:
        return capability.statement(type(self), STARTED)

    # --- Patient (a member) ---------------------------------------------------------------------------

    @fhir_route("GET", "/fhir/Patient/<member_id>", "members:read", resource="Patient", interaction="read",
                summary="Read a Patient (a member)")
    def fhir_patient(self, request: Request, member_id: str) -> Any:
        resource = self._patient(member_id)
        return 200, resource, _etag(resource)

    @fhir_route("GET", "/fhir/Patient", "members:read", resource="Patient", interaction="search-type",
                search=PATIENT_SEARCH, summary="Search Patients")
    def fhir_patients(self, request: Request) -> Any:
        args = request.args
        _only(args, PATIENT_PARAMS, "a Patient search")
        count = count_of(args)
        cursor = args.get("_cursor")
        resources: list[dict[str, Any]] = []
        next_cursor = None
        if "identifier" in args:
            primary = "identifier"
            system, value = _token(args["identifier"])
            if not system or not value:
                raise Invalid("identifier must be system|value.", {"identifier": ["system|value"]})
            try:
                view = self.members.find_patient({"system": system, "value": value})
                resources = [patient.resource(view, view["identifiers"])]
            except NotFound:
                resources = []
        else:
            primary = next((key for key in ("phone", "telecom", "name", "family", "given") if key in args), None)
            if primary is None:
                raise Invalid("Search by identifier, telecom, phone, name, family or given (birthdate and the "
                              "others narrow it).", {"_query": ["Give identifier, telecom, phone, name, family or "
                                                                "given."]})
            criterion = ({"phone": _token(args[primary])[1]} if primary in ("phone", "telecom")
                         else {"q": args[primary]})
            page = self.members.find_members({**criterion, "limit": count, "cursor": cursor})
            # a list masks phones: each entry is read as a Patient read would be (what the caller may see)
            resources = [self._patient(item["id"]) for item in page["items"]]
            next_cursor = page["next_cursor"]
        resources = [resource for resource in resources if _narrowed(resource, args, primary)]
        return searchset(request, resources, next_cursor, "Patient")

    @fhir_route("POST", "/fhir/Patient", "members:enrol", resource="Patient", interaction="create",
                conditional_create=True, summary="Create a Patient (through the identity rule)")
    def fhir_create_patient(self, request: Request) -> Any:
        principal = request.principal
        fields = patient.member_fields(request.json_body, tuple(principal.identity.branches))
        condition = request.headers.get("If-None-Exist")
        if condition is not None:
            self._check_condition(condition, fields["identifiers"])
        answer = self.interfaces.identify({
            "patient": {**fields, "source": "his"}, "source": f"fhir:{caller(request).subject}",
            "source_ref": request.headers.get("Idempotency-Key") or None,
            "original": request.get_data(as_text=True), "original_format": FHIR_JSON,
        }, idempotency_key=idempotency_key(request))
        if answer["outcome"] == "review":
            review = answer["review"]
            body = outcome(202, f"A member probably is this patient: it waits for a branch manager in identity "
                                f"review {review['id']} (branch {review['branch']}); no Patient was created.",
                           code="informational", severity="information")
            body["issue"][0]["details"] = {"coding": [{"system": REVIEW_SYSTEM, "code": review["id"]}]}
            return 202, body
        resource = self._patient(answer["member"]["id"])
        status = 201 if answer["outcome"] == "enrolled" else 200
        location = f"{request.host_url.rstrip('/')}/fhir/Patient/{resource['id']}/_history/{resource['meta']['versionId']}"
        return status, resource, {**_etag(resource), "Location": location}

    @staticmethod
    def _check_condition(condition: str, identifiers: list[dict[str, str]]) -> None:
        """``If-None-Exist: identifier=system|value`` naming one of the Patient's identifiers: the database's
        unique (system, value) makes concurrent conditional creates one member (a search first would not)."""
        pairs = parse_qsl(condition.removeprefix("?"), keep_blank_values=True)
        if len(pairs) != 1 or pairs[0][0] != "identifier":
            raise BadRequest("If-None-Exist must be identifier=system|value (the only condition served).",
                             {"If-None-Exist": ["identifier=system|value"]})
        system, value = _token(pairs[0][1])
        if not system or not value:
            raise BadRequest("If-None-Exist must be identifier=system|value.", {"If-None-Exist": ["system|value"]})
        if {"system": system, "value": value} not in identifiers:
            raise Invalid("If-None-Exist must name one of the Patient's own identifiers.",
                          {"If-None-Exist": ["Not among the Patient's identifiers."]})

    @fhir_route("PUT", "/fhir/Patient/<member_id>", "members:update", resource="Patient", interaction="update",
                versioned_update=True, summary="Update a Patient (If-Match: W/\"<versionId>\"; stale: 412)")
    def fhir_update_patient(self, request: Request, member_id: str) -> Any:
        expected = _version(request)
        change, identifiers = patient.changes(request.json_body, member_id,
                                              tuple(request.principal.identity.branches))
        key = idempotency_key(request)
        member = self.members.update_member(member_id, change, idempotency_key=key, expected_version=expected)
        held = self.members.identifiers(member_id)["items"]
        new = [item for item in identifiers if item not in held]
        if new:
            held = self.members.add_identifiers(member_id, {"identifiers": new},
                                                idempotency_key=f"{key}:identifiers" if key else None)["items"]
        resource = patient.resource(member, held)
        return 200, resource, _etag(resource)

    # --- Encounter (a visit) --------------------------------------------------------------------------

    @fhir_route("GET", "/fhir/Encounter/<visit_id>", "visits:read", resource="Encounter", interaction="read",
                summary="Read an Encounter (a visit with its bill)")
    def fhir_encounter(self, request: Request, visit_id: str) -> Any:
        return encounter.resource(self.records.get_visit(visit_id))

    @fhir_route("GET", "/fhir/Encounter", "visits:read", resource="Encounter", interaction="search-type",
                search=ENCOUNTER_SEARCH, summary="Search a patient's Encounters")
    def fhir_encounters(self, request: Request) -> Any:
        args = request.args
        _only(args, ENCOUNTER_PARAMS, "an Encounter search")
        if "patient" not in args:
            raise Invalid("Search Encounters by patient (date and status narrow it).", {"patient": ["Required."]})
        member_id = args["patient"].removeprefix("Patient/")
        dates = [_date_test(value) for value in args.getlist("date")]
        statuses = set(",".join(args.getlist("status")).split(",")) - {""}
        page = self.records.list_visits(member_id, limit=count_of(args), cursor=args.get("_cursor"))
        resources = [encounter.resource(visit) for visit in page["items"]]
        resources = [item for item in resources if (not statuses or item["status"] in statuses)
                     and all(test(item.get("period", {}).get("start", "")[:10]) for test in dates)]
        return searchset(request, resources, page["next_cursor"], "Encounter")

    @fhir_route("POST", "/fhir/Encounter", "his:bills", resource="Encounter", interaction="create",
                summary="Create a finished Encounter: the HIS's bill completes the visit (once per identifier)")
    def fhir_create_encounter(self, request: Request) -> Any:
        visit = self.records.complete_visit(encounter.bill(request.json_body))
        resource = encounter.resource(visit)
        location = f"{request.host_url.rstrip('/')}/fhir/Encounter/{resource['id']}"
        return 201, resource, {"Location": location}

    # --- the health record (clinical: records:read, a reason, audited by records) -------------------------

    def _clinical_search(self, request: Request) -> str:
        """The patient of a clinical search (``patient=Patient/<id>``); other parameters are refused."""
        _only(request.args, CLINICAL_PARAMS, "this search")
        if "patient" not in request.args:
            raise Invalid("Search by patient.", {"patient": ["Required: Patient/<member id>."]})
        return request.args["patient"].removeprefix("Patient/")

    @fhir_route("GET", "/fhir/AllergyIntolerance", "records:read", resource="AllergyIntolerance",
                interaction="search-type", search=BY_PATIENT,
                summary="A patient's allergies (clinical: X-Access-Reason; audited)")
    def fhir_allergies(self, request: Request) -> Any:
        profile = self.records.get_health_profile(self._clinical_search(request), reason(request))
        return searchset(request, clinical.allergies(profile), None, "AllergyIntolerance")

    def _entry(self, request: Request, entry_id: str, of_profile: Any) -> dict[str, Any]:
        """The profile entry ``<member id>-<position>`` (``clinical.allergies`` / ``conditions``)."""
        member_id, _dash, position = entry_id.rpartition("-")
        entries = of_profile(self.records.get_health_profile(member_id, reason(request)))
        if int(position) > len(entries):
            raise NotFound(f"No such entry in the health profile (it has {len(entries)}).")
        return entries[int(position) - 1]

    @fhir_route("GET", "/fhir/AllergyIntolerance/<entry_id>", "records:read", resource="AllergyIntolerance",
                interaction="read", path_types=ENTRY_ID,
                summary="An allergy of the health profile (clinical: X-Access-Reason; audited)")
    def fhir_allergy(self, request: Request, entry_id: str) -> Any:
        return self._entry(request, entry_id, clinical.allergies)

    @fhir_route("GET", "/fhir/Condition/<entry_id>", "records:read", resource="Condition", interaction="read",
                path_types=ENTRY_ID, summary="A condition of the medical history (clinical: X-Access-Reason; audited)")
    def fhir_condition(self, request: Request, entry_id: str) -> Any:
        return self._entry(request, entry_id, clinical.conditions)

    @fhir_route("GET", "/fhir/Condition", "records:read", resource="Condition", interaction="search-type",
                search=BY_PATIENT, summary="A patient's medical history (clinical: X-Access-Reason; audited)")
    def fhir_conditions(self, request: Request) -> Any:
        profile = self.records.get_health_profile(self._clinical_search(request), reason(request))
        return searchset(request, clinical.conditions(profile), None, "Condition")

    @fhir_route("GET", "/fhir/CarePlan", "records:read", resource="CarePlan", interaction="search-type",
                search=BY_PATIENT, summary="A patient's care plans (clinical: X-Access-Reason; audited)")
    def fhir_care_plans(self, request: Request) -> Any:
        plans = self.records.get_care_plans(self._clinical_search(request), reason(request))["items"]
        return searchset(request, [clinical.care_plan(plan) for plan in plans], None, "CarePlan")

    # --- Appointment ----------------------------------------------------------------------------------

    @fhir_route("GET", "/fhir/Appointment/<appointment_id>", "appointments:read", resource="Appointment",
                interaction="read", summary="Read an Appointment")
    def fhir_appointment(self, request: Request, appointment_id: str) -> Any:
        return clinical.appointment(self.records.get_appointment(appointment_id))

    @fhir_route("GET", "/fhir/Appointment", "appointments:read", resource="Appointment", interaction="search-type",
                search=BY_PATIENT, summary="A patient's appointments")
    def fhir_appointments(self, request: Request) -> Any:
        booked = self.records.list_appointments({"member_id": self._clinical_search(request)})["items"]
        return searchset(request, [clinical.appointment(item) for item in booked], None, "Appointment")

    @fhir_route("POST", "/fhir/Appointment", "appointments:write", resource="Appointment", interaction="create",
                summary="Book a slot (Slot/<id>) for a patient: the booking horizon and double-booking rules apply")
    def fhir_book(self, request: Request) -> Any:
        booked = self.records.book(clinical.booking(request.json_body), idempotency_key=idempotency_key(request))
        resource = clinical.appointment(booked)
        return 201, resource, {"Location": f"{request.host_url.rstrip('/')}/fhir/Appointment/{resource['id']}"}

    @fhir_route("PUT", "/fhir/Appointment/<appointment_id>", "appointments:write", resource="Appointment",
                interaction="update", summary="Cancel an Appointment (status cancelled; cancelationReason.text)")
    def fhir_cancel_appointment(self, request: Request, appointment_id: str) -> Any:
        body = request.json_body if isinstance(request.json_body, dict) else {}
        if body.get("resourceType") != "Appointment" or body.get("id") != appointment_id:
            raise BadRequest("The body must be the Appointment with the id in the URL.")
        if body.get("status") != "cancelled":
            raise Invalid("The only change served is a cancellation (status cancelled); book again to move it.",
                          {"status": ["cancelled"]})
        reason_text = (body.get("cancelationReason") or {}).get("text")
        return clinical.appointment(self.records.cancel_appointment(appointment_id, reason_text))

    # --- Patient/$everything --------------------------------------------------------------------------

    @fhir_route("GET", "/fhir/Patient/<member_id>/$everything", "records:read", resource="Patient",
                operation="$everything",
                summary="The patient and their record (clinical: X-Access-Reason; audited), visits a page at a time")
    def fhir_everything(self, request: Request, member_id: str) -> Any:
        _only(request.args, {"_count", "_cursor", "reason"}, "$everything")
        cursor = request.args.get("_cursor")
        resources: list[dict[str, Any]] = []
        if cursor is None:  # the first page: the patient and the whole record; the next pages: more visits
            why = reason(request)
            profile = self.records.get_health_profile(member_id, why)
            resources = [self._patient(member_id), *clinical.allergies(profile),
                         *clinical.conditions(profile),
                         *(clinical.care_plan(plan) for plan in self.records.get_care_plans(member_id, why)["items"]),
                         *(clinical.appointment(item) for item in
                           self.records.list_appointments({"member_id": member_id})["items"])]
        page = self.records.list_visits(member_id, limit=count_of(request.args), cursor=cursor)
        resources += [encounter.resource(visit) for visit in page["items"]]
        return searchset(request, resources, page["next_cursor"], "Patient")
