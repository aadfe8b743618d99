"""The OpenAPI 3 document, generated from the routes and the services' marshmallow contracts."""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields

from gateway import permissions
from gateway.http import Route
from services.kit.schemas import Schema

VERSION = "1.0.0"
ERROR_STATUSES = {
    400: "The request cannot be read (malformed JSON, wrong content type)",
    401: "No valid credentials",
    403: "The caller's role or branch may not do this",
    404: "Not found",
    409: "Conflicts with the current state (a duplicate, a taken slot)",
    413: "The body is too large",
    422: "The input breaks a rule; `fields` says which",
    429: "Too many requests; see Retry-After",
    500: "Our error; quote the request id",
    503: "A service did not answer in time; retry (same Idempotency-Key)",
}


class ErrorDetailSchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields_ = fields.Dict(data_key="fields", required=True)
    details = fields.Dict()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema, required=True)
    request_id = fields.String()


def routes_of(service_cls: type) -> list[tuple[str, Route]]:
    found = []
    for name, method in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(method, "nameko_entrypoints", ()):
            if isinstance(entrypoint, Route):
                found.append((name, entrypoint))
    return sorted(found, key=lambda item: (item[1].url, item[1].method))


def _path(url: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-zA-Z_]+)>", r"{\1}", url)


def _schema_name(schema: Any) -> str:
    cls = schema if isinstance(schema, type) else type(schema)
    return cls.__name__.removesuffix("Schema")


@functools.lru_cache(maxsize=4)
def document(service_cls: type) -> dict[str, Any]:
    spec = APISpec(title="CareLoop API", version=VERSION, openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)],
                   info={"description": "Membership, loyalty and patient care for a hospital or dental group. "
                         "Money is integer minor units; times are UTC ISO 8601."})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer",
                                               "description": "A staff token or an API key (cl_<id>_<secret>)."})
    spec.components.schema("Error", schema=ErrorSchema)
    for status, description in ERROR_STATUSES.items():
        spec.components.response(f"E{status}", {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        })
    for name, route in routes_of(service_cls):
        operation: dict[str, Any] = {"operationId": name, "summary": route.summary, "tags": list(route.tags),
                                     "responses": {}}
        path_params = re.findall(r"<(?:[a-z]+:)?([a-zA-Z_]+)>", route.url)
        parameters: list[dict[str, Any]] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in path_params]
        if route.query_schema is not None:
            parameters.append({"in": "query", "schema": route.query_schema})
        if route.idempotent:
            parameters.append({"name": "Idempotency-Key", "in": "header", "required": False,
                               "schema": {"type": "string", "maxLength": 128},
                               "description": "Same key and body again: the first answer, no second effect."})
        if parameters:
            operation["parameters"] = parameters
        if route.body_schema is not None:
            operation["requestBody"] = {"required": True,
                                        "content": {"application/json": {"schema": route.body_schema}}}
        for status, schema in sorted(route.responses.items()):
            if schema is None:
                operation["responses"][str(status)] = {"$ref": f"#/components/responses/E{status}"}
            else:
                operation["responses"][str(status)] = {
                    "description": "OK" if status < 300 else "",
                    "content": {"application/json": {"schema": schema}}}
        if not any(300 > int(s) >= 200 for s in operation["responses"]):
            operation["responses"]["200"] = {"description": "OK", "content": {"application/json": {"schema": {}}}}
        statuses = {400, 500, 503}
        if not route.public:
            operation["security"] = [{"bearer": []}]
            operation["x-permission"] = route.permission
            operation["x-roles"] = list(permissions.roles_with(route.permission))
            statuses |= {401, 403, 429}
        if route.body_schema is not None or route.query_schema is not None:
            statuses |= {422}
        if route.body_schema is not None:
            statuses |= {413}
        for status in statuses:
            operation["responses"].setdefault(str(status), {"$ref": f"#/components/responses/E{status}"})
        spec.path(path=_path(route.url), operations={route.method.lower(): operation})
    return spec.to_dict()
