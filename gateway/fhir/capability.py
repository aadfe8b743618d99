"""The CapabilityStatement (``GET /fhir/metadata``), generated from the ``fhir_route`` routes of the gateway:
it lists exactly the resources, interactions, search parameters and operations that a route serves."""

from __future__ import annotations

import functools
from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from gateway.fhir.http import FHIR_JSON, FHIR_VERSION, FhirRoute
from gateway.openapi import VERSION, routes_of

SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")  # none of them is served


@functools.lru_cache(maxsize=4)
def statement(service_cls: type, published: str) -> dict[str, Any]:
    """The statement of ``service_cls``'s FHIR routes, validated as an R4B CapabilityStatement."""
    resources: dict[str, dict[str, Any]] = {}
    for _name, route in routes_of(service_cls):
        if not isinstance(route, FhirRoute) or route.resource is None:
            continue
        entry = resources.setdefault(route.resource, {"type": route.resource, "interaction": [],
                                                     "searchParam": [], "operation": []})
        if route.operation is not None:
            entry["operation"].append({"name": route.operation.lstrip("$"),
                                       "definition": f"http://hl7.org/fhir/OperationDefinition/"
                                                     f"{route.resource}-{route.operation.lstrip('$')}"})
            continue
        entry["interaction"].append({"code": route.interaction})
        for name, kind, documentation in route.search:
            entry["searchParam"].append({"name": name, "type": kind, "documentation": documentation})
        if route.conditional_create:
            entry["conditionalCreate"] = True
        if route.versioned_update:
            entry["versioning"] = "versioned-update"
            entry["updateCreate"] = False
    rest_resources = []
    for entry in sorted(resources.values(), key=lambda item: item["type"]):
        entry["interaction"].sort(key=lambda item: item["code"])
        rest_resources.append({key: value for key, value in entry.items() if value != []})
    document = {
        "resourceType": "CapabilityStatement", "status": "active", "date": published, "kind": "instance",
        "software": {"name": "CareLoop", "version": VERSION},
        "implementation": {"description": "CareLoop's FHIR facade (members, visits and care records)"},
        "fhirVersion": FHIR_VERSION, "format": [FHIR_JSON, "json"],
        "rest": [{"mode": "server",
                  "security": {"cors": False, "description": "Authorization: Bearer <staff token or API key>; "
                                                            "the same roles as the REST routes."},
                  "resource": rest_resources}],
    }
    CapabilityStatement.model_validate(document)
    return document
