"""Property-based testing of the whole API with schemathesis, against the live gateway.

The test reads ``/openapi.json`` from the running gateway, so every route — also those added later by
other services — is fuzzed without changing this file. Each operation is called with a credential
whose role holds its permission (``x-roles`` in the document; webhook routes are signed as an
integration of such a role), with valid data and with invalid data. It must never answer 5xx, never
with a status, content type, header or body its document does not promise, and it must refuse
invalid data with a 4xx. Examples per operation: ``CARELOOP_FUZZ_EXAMPLES`` (default 25).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.auth import webhooks

EXAMPLES = int(os.environ.get("CARELOOP_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


def pick_role(definition: dict[str, Any]) -> str | None:
    roles = definition.get("x-roles")
    if not roles:
        return None
    return "group_admin" if "group_admin" in roles else roles[0]


def send(suite, case: Any, definition: dict[str, Any], role: str | None) -> requests.Response:
    headers: dict[str, str] = {}
    if role is not None and not definition.get("x-webhook"):
        headers["Authorization"] = f"Bearer {suite.key(role)}"
    kwargs = case.as_transport_kwargs(base_url=suite.base_url, headers=headers)
    kwargs.setdefault("timeout", 30)
    if definition.get("x-webhook"):
        if "json" in kwargs:
            kwargs["data"] = json.dumps(kwargs.pop("json")).encode()
            kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Type": "application/json"}
        body = kwargs.get("data") or b""
        body = body.encode() if isinstance(body, str) else body
        slug, secret = suite.integration(role or "integration")
        kwargs["headers"] = {**kwargs.get("headers", {}), **webhooks.signed_headers(slug, secret, body)}
        kwargs["data"] = body
    return suite.http.request(**kwargs)


def fuzz(suite, operation: Any, mode: GenerationMode, checks: list[Any], failures: list[str]) -> int:
    definition = operation.definition.raw
    role = pick_role(definition)
    calls = 0

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal calls
        response = send(suite, case, definition, role)
        calls += 1
        try:
            case.validate_response(response, checks=checks)
        except (Failure, FailureGroup) as failure:
            failures.append(f"{operation.label} [{mode.value}] {response.status_code}: {str(failure)[:600]}")

    run()
    return calls


@pytest.mark.timeout(1200)  # every operation, valid and invalid data: minutes, growing with the API
def test_schemathesis_finds_no_server_error_and_no_schema_violation(suite):
    document = suite.call("GET", "/openapi.json", role=None).json()
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    calls = 0
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        calls += fuzz(suite, operation, GenerationMode.POSITIVE, CHECKS, failures)
        if operation.body or operation.query:
            calls += fuzz(suite, operation, GenerationMode.NEGATIVE, [*CHECKS, negative_data_rejection], failures)
    assert operations == sum(len(methods) for methods in document["paths"].values())
    assert calls >= operations * 5
    assert not failures, "\n\n".join(dict.fromkeys(failures))


def test_the_fuzzer_reports_a_response_that_breaks_its_promise(suite):
    """The harness above can fail: promise a field /health never sends, and it is caught."""
    document = suite.call("GET", "/openapi.json", role=None).json()
    health = document["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    health["required"] = ["status", "uptime"]
    schema = schemathesis.openapi.from_dict(document)
    operation = next(r.ok() for r in schema.get_all_operations() if r.ok().path == "/health")
    failures: list[str] = []
    assert fuzz(suite, operation, GenerationMode.POSITIVE, CHECKS, failures) >= 1
    assert failures and "uptime" in failures[0]
