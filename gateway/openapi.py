"""The OpenAPI 3 document, generated from the routes and the services' marshmallow contracts.

Every route of the gateway class appears, with its permission (``x-permission``) and the roles that
hold it (``x-roles``), its security (staff token or API key; HMAC signature on webhook routes), its
parameters (path, the query schema, ``Idempotency-Key`` on mutating routes, ``X-Request-Id``), its
body, its answers and every error it can give. ``responses`` of a route maps a status to a marshmallow
schema (JSON), ``None`` (the standard error body), a dict (a raw JSON schema) or media type(s) (a string
or a tuple of strings, for answers that are not JSON).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields

from gateway import permissions
from gateway.auth.webhooks import INTEGRATION_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from gateway.http import Route
from gateway.idempotency import MAX_KEY_LENGTH
from gateway.paths import PLACEHOLDER, path_params
from services.kit.schemas import Schema

VERSION = "1.0.0"
ERROR_STATUSES = {
    400: "The request cannot be read (malformed JSON, wrong content type)",
    401: "No valid credentials (or, on a webhook route, no valid signature)",
    403: "The caller's role, key scope or branch may not do this",
    404: "Not found",
    409: "Conflicts with the current state (a duplicate, a taken slot), or a request with this "
         "Idempotency-Key is still running (see Retry-After)",
    410: "What this names is over for good (an expired link); nothing to retry",
    413: "The body is larger than 1 MiB",
    422: "The input breaks a rule; `fields` says which",
    429: "Too many requests; see Retry-After",
    500: "Our error; quote the request id",
    503: "A dependency failed (a service did not answer, the broker or the gateway's database cannot be reached); "
         "retry after Retry-After (same Idempotency-Key)",
}
DESCRIPTION = """Membership, loyalty and patient care for a hospital or dental group.

**Authentication.** People sign in at `POST /v1/auth/login` and send the access token they get
(`Authorization: Bearer <token>`, 15 minutes; renew with the refresh token at `/v1/auth/refresh`).
Systems send an API key (`Authorization: Bearer cl_<id>_<secret>`). Webhook routes (`x-webhook`) take
requests signed with HMAC-SHA256 of `"<timestamp>." + body` under the integration's secret, in
`X-CareLoop-Integration`, `X-CareLoop-Timestamp` (Unix seconds, at most 5 minutes old) and
`X-CareLoop-Signature: v1=<hex>`; each signature is accepted once.

**Authorisation.** Each route names a permission (`x-permission`) held by the roles in `x-roles`; a
`branch` in the path or query must be one of the caller's branches.

**Conventions.** Errors are `{"error": {"code", "message", "fields"}, "request_id"}`. Lists are
`{"items": [...], "next_cursor"}`: pass `cursor=<next_cursor>` for the next page, until it is null.
Mutating routes take `Idempotency-Key`: the same key and body give the first answer again
(`Idempotent-Replayed: true`), the same key with another body is 422. Money is
`{"amount": <integer minor units>, "currency": "CNY"}`; times are UTC ISO 8601, dates `YYYY-MM-DD`.
Every answer carries `X-Request-Id`. Limits: 1 MiB bodies; requests per credential and per address
(429 with `Retry-After`).

**FHIR R4.** The FHIR facade under `/fhir` (Patient, ...) is not in this document: its description is FHIR's
own, the CapabilityStatement at `GET /fhir/metadata`."""


class ErrorDetailSchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields_ = fields.Dict(data_key="fields", required=True)
    details = fields.Dict()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema, required=True)
    request_id = fields.String(required=True)


def routes_of(service_cls: type) -> list[tuple[str, Route]]:
    """Every ``@route`` of a gateway class (mixins included), sorted by path and method."""
    found = []
    for name, method in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(method, "nameko_entrypoints", ()):
            if isinstance(entrypoint, Route):
                found.append((name, entrypoint))
    return sorted(found, key=lambda item: (item[1].url, item[1].method))


def _path(url: str) -> str:
    return PLACEHOLDER.sub(r"{\1}", url)


def _schema_name(schema: Any) -> str:
    """``MemberSchema`` -> ``Member``; a name two services both use gets the service in front
    (``PointsBillItem``, ``RecordsBillItem``), the same every time the document is built."""
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__.removesuffix("Schema")
    if len(_SCHEMAS_NAMED.setdefault(name, {cls.__module__})) > 1 or _shared_name(name, cls):
        parts = cls.__module__.split(".")
        owner = parts[1] if parts[0] == "services" and len(parts) > 2 else parts[0]
        return owner.capitalize() + name
    return name


_SCHEMAS_NAMED: dict[str, set[str]] = {}


def _shared_name(name: str, cls: type) -> bool:
    """Whether another contract module also defines a schema called ``name``."""
    import sys

    for module_name, module in list(sys.modules.items()):
        if module_name == cls.__module__ or not module_name.endswith(".schemas"):
            continue
        if not (module_name.startswith("services.") or module_name.startswith("gateway.")):
            continue
        other = getattr(module, cls.__name__, None)
        if isinstance(other, type) and other is not cls:
            _SCHEMAS_NAMED[name].add(module_name)
            return True
    return False


REQUEST_ID_HEADER = {"description": "The id of this request (yours if you sent a valid one); quote it to support.",
                     "required": True, "schema": {"type": "string"}}


def _error_ref(status: int) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/E{status}"}


def _answer(status: int, schema: Any) -> dict[str, Any]:
    description = "OK" if status < 300 else ERROR_STATUSES.get(status, "")
    headers = {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}}
    if schema is None:
        return _error_ref(status)
    if isinstance(schema, (str, tuple)):
        media_types = (schema,) if isinstance(schema, str) else schema
        content = {media: {"schema": {"type": "string", "format": "binary"}} for media in media_types}
    else:
        content = {"application/json": {"schema": schema}}
    return {"description": description or "OK", "headers": headers, "content": content}


def _operation(name: str, route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": name, "summary": route.summary, "tags": list(route.tags),
                                 "responses": {}}
    if route.description:
        operation["description"] = route.description
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": path_type.openapi()}
        for name, path_type in route.path_types.items()]
    if route.query_schema is not None:
        parameters.append({"in": "query", "schema": route.query_schema})
    if route.idempotent:
        parameters.append({"name": "Idempotency-Key", "in": "header", "required": False,
                           "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH,
                                      "pattern": "^[!-~]([ -~]*[!-~])?$"},
                           "description": "Same key and body again: the first answer, no second effect."})
    if route.webhook:
        parameters += [
            {"name": INTEGRATION_HEADER, "in": "header", "required": True, "schema": {"type": "string"},
             "description": "The integration's id."},
            {"name": TIMESTAMP_HEADER, "in": "header", "required": True, "schema": {"type": "string"},
             "description": "Unix seconds when the request was signed (at most 5 minutes ago)."}]
    operation["parameters"] = parameters
    if isinstance(route.body_schema, (str, tuple)):  # not JSON: the route reads the bytes as sent
        media_types = (route.body_schema,) if isinstance(route.body_schema, str) else route.body_schema
        operation["requestBody"] = {"required": True, "content": {
            media: {"schema": {"type": "string", "format": "binary"}} for media in media_types}}
    elif route.body_schema is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.body_schema}}}
    if route.stream_body:
        operation["requestBody"] = {"required": True, "content": {route.stream_body: {
            "schema": {"type": "string", "format": "binary"}}}}
    for status, schema in sorted(route.responses.items()):
        operation["responses"][str(status)] = _answer(status, schema)
    if not any(300 > int(s) >= 200 for s in operation["responses"]):
        operation["responses"]["200"] = _answer(200, {"type": "object"})
    statuses = {429, 500, 503}
    mutating = route.method.upper() in ("POST", "PUT", "PATCH", "DELETE")
    if route.webhook:
        operation["security"] = [{"webhookSignature": []}]
        operation["x-webhook"] = True
    elif not route.public:
        operation["security"] = [{"staffToken": []}, {"apiKey": []}]
    else:
        operation["security"] = []
    if route.provider_signed:  # no credential of ours: the provider's signature, checked by notifications
        operation["x-provider-signed"] = True
        operation["description"] = (route.description + " " if route.description else "") + (
            "Authenticated by the provider's own signature (no staff token or API key); the body as the "
            "provider sends it (form, XML or JSON).")
        statuses |= {400, 401}
    if not route.public:
        operation["x-permission"] = route.permission
        operation["x-roles"] = list(permissions.roles_with(route.permission))
        statuses |= {401, 403}
    if route.body_schema is not None or route.query_schema is not None or route.idempotent or path_params(route.url):
        statuses |= {422}
    if route.body_schema is not None or mutating:
        statuses |= {400, 413}
    if route.idempotent:
        statuses |= {409, 422}
    if path_params(route.url):
        statuses |= {404}
    for status in statuses:
        operation["responses"].setdefault(str(status), _error_ref(status))
    return operation


@functools.lru_cache(maxsize=4)
def document(service_cls: type) -> dict[str, Any]:
    spec = APISpec(title="CareLoop API", version=VERSION, openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)],
                   info={"description": DESCRIPTION})
    spec.components.security_scheme("staffToken", {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A person's access token from POST /v1/auth/login (15 minutes)."})
    spec.components.security_scheme("apiKey", {
        "type": "http", "scheme": "bearer",
        "description": "A system's API key: cl_<key id>_<secret>."})
    spec.components.security_scheme("webhookSignature", {
        "type": "apiKey", "in": "header", "name": SIGNATURE_HEADER,
        "description": "v1=<hex HMAC-SHA256(secret, \"<X-CareLoop-Timestamp>.\" + raw body)>, with "
                       "X-CareLoop-Integration and X-CareLoop-Timestamp."})
    spec.components.schema("Error", schema=ErrorSchema)
    spec.components.header("RequestId", REQUEST_ID_HEADER)
    for status, description in ERROR_STATUSES.items():
        headers: dict[str, Any] = {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}}
        if status in (429, 503):
            headers["Retry-After"] = {"description": "Seconds to wait.", "required": True,
                                      "schema": {"type": "string", "pattern": "^[0-9]+$"}}
        if status == 401:
            headers["WWW-Authenticate"] = {"schema": {"type": "string"}}
        spec.components.response(f"E{status}", {
            "description": description, "headers": headers,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        })
    by_path: dict[str, dict[str, Any]] = {}
    for name, route in routes_of(service_cls):
        if not route.in_openapi:  # the FHIR facade: described by its CapabilityStatement (/fhir/metadata)
            continue
        by_path.setdefault(_path(route.url), {})[route.method.lower()] = _operation(name, route)
    for path, operations in by_path.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    document["tags"] = [{"name": tag} for tag in sorted({t for _n, r in routes_of(service_cls) if r.in_openapi
                                                         for t in r.tags})]
    return document
