"""FHIR's manners on the gateway's routes: ``application/fhir+json``, ``OperationOutcome`` errors, bundles.

``@fhir_route("GET", "/fhir/Patient/<member_id>", "members:read", resource="Patient", interaction="read")``
is the gateway's ``@route`` (authentication, permission, path checks, rate limits, idempotency, request id)
with three differences: the body may be ``application/fhir+json``; answers are ``application/fhir+json``; a
refusal is an ``OperationOutcome`` whose ``issue.code`` says why (FHIR's IssueType) with the HTTP status of
the REST routes (400, 401, 403, 404, 409, 412, 422, 429, 503). ``resource``, ``interaction`` and
``search`` say what the route does, for the CapabilityStatement (``capability.py``). FHIR routes are not in
the OpenAPI document: the CapabilityStatement is FHIR's own description of them.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from werkzeug.wrappers import Request, Response

from gateway.http import Route, json_response
from services.kit.errors import BadRequest, Invalid

FHIR_JSON = "application/fhir+json"
BODY_TYPES = (FHIR_JSON, "application/json")
FHIR_VERSION = "4.0.1"
PERMISSION_SYSTEM = "urn:careloop:permission"
"""The coding system of the permission a 403 names (``issue.details.coding``)."""

ISSUE_CODES = {
    400: "structure", 401: "login", 403: "forbidden", 404: "not-found", 409: "conflict", 412: "conflict",
    413: "too-costly", 422: "processing", 429: "throttled", 503: "transient",
}
"""HTTP status → FHIR IssueType of the ``OperationOutcome`` (500: ``exception``)."""


def outcome(status: int, message: str, *, code: str | None = None, severity: str = "error",
            fields: dict[str, Any] | None = None, permission: str | None = None) -> dict[str, Any]:
    """An ``OperationOutcome``: one issue for the message, one more per offending field (``expression``)."""
    issue: dict[str, Any] = {"severity": severity, "code": code or ISSUE_CODES.get(status, "exception"),
                             "diagnostics": message}
    if permission is not None:
        issue["details"] = {"coding": [{"system": PERMISSION_SYSTEM, "code": permission}], "text": message}
    issues = [issue]
    for field, messages in sorted((fields or {}).items()):
        texts = messages if isinstance(messages, list) else [messages]
        issues.append({"severity": severity, "code": "invalid" if status < 500 else "exception",
                       "diagnostics": "; ".join(str(text) for text in texts), "expression": [str(field)]})
    return {"resourceType": "OperationOutcome", "issue": issues}


def fhir_response(status: int, resource: Any, request_id: str, headers: dict[str, str] | None = None) -> Response:
    response = json_response(status, resource, request_id, headers)
    response.headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
    return response


class FhirRoute(Route):
    """A gateway route under ``/fhir`` (see the module's docstring)."""

    in_openapi = False
    body_types = BODY_TYPES
    respond = staticmethod(fhir_response)

    def __init__(self, method: str, url: str, permission: str | None = None, *, resource: str | None = None,
                 interaction: str = "read", search: tuple[tuple[str, str, str], ...] = (),
                 operation: str | None = None, conditional_create: bool = False, versioned_update: bool = False,
                 **kwargs: Any) -> None:
        self.resource = resource
        self.interaction = interaction
        self.search = search  # (name, FHIR search type, what it matches)
        self.operation = operation
        self.conditional_create = conditional_create
        self.versioned_update = versioned_update
        super().__init__(method, url, permission, **kwargs)

    def _error(self, exc: Exception, request: Request, request_id: str) -> Response:
        response = super()._error(exc, request, request_id)
        body = json.loads(response.get_data(as_text=True))
        error = body.get("error", {})
        permission = (error.get("details") or {}).get("permission") if response.status_code == 403 else None
        resource = outcome(response.status_code, error.get("message", ""), fields=error.get("fields"),
                           permission=permission)
        headers = {name: value for name, value in response.headers.items()
                   if name in ("Retry-After", "WWW-Authenticate")}
        return fhir_response(response.status_code, resource, request_id, headers)


fhir_route = FhirRoute.decorator


def validated(model: Any, resource: Any, resource_type: str) -> Any:
    """``resource`` (a dict) as the ``fhir.resources.R4B`` ``model``: 400 if it is not one."""
    if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
        raise BadRequest(f"The body must be a {resource_type} resource (resourceType {resource_type}).")
    try:
        return model.model_validate(resource)
    except ValidationError as error:
        fields = {".".join(str(part) for part in item["loc"]) or resource_type: [item["msg"]]
                  for item in error.errors()[:20]}
        raise BadRequest(f"This is not a valid FHIR {resource_type}.", fields) from None


def count_of(args: Any, default: int = 20, most: int = 100) -> int:
    """``_count`` as a page size: 1 to ``most`` (default ``default``)."""
    raw = args.get("_count")
    if raw is None:
        return default
    try:
        count = int(raw)
    except ValueError:
        raise Invalid("_count must be a whole number.", {"_count": ["Not a whole number."]}) from None
    if not 1 <= count <= most:
        raise Invalid(f"_count must be 1 to {most}.", {"_count": [f"1 to {most}."]})
    return count


def searchset(request: Request, resources: list[dict[str, Any]], next_cursor: str | None,
              resource_path: str) -> dict[str, Any]:
    """A ``searchset`` Bundle of ``resources``, with ``link`` self and (when there is more) next, which
    repeats the query with ``_cursor`` (opaque: the owning service's cursor)."""
    base = request.host_url.rstrip("/") + request.path
    every = list(request.args.items(multi=True))
    args = [(key, value) for key, value in every if key != "_cursor"]
    links = [{"relation": "self", "url": base + ("?" + urlencode(every) if every else "")}]
    if next_cursor:
        links.append({"relation": "next", "url": base + "?" + urlencode([*args, ("_cursor", next_cursor)])})
    root = request.host_url.rstrip("/") + "/fhir/"
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if resources:  # FHIR JSON has no empty arrays
        bundle["entry"] = [{"fullUrl": f"{root}{resource['resourceType']}/{resource['id']}", "resource": resource,
                            "search": {"mode": "match"}} for resource in resources]
    return bundle
