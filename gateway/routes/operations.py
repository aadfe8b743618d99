"""What operators and orchestrators ask: liveness, readiness, metrics, the API document, dead letters, and the
cross-service visit audit (records)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import prometheus_client
from marshmallow import validate
from werkzeug.wrappers import Request, Response

from gateway.http import idempotency_key, query_args, route
from gateway.paths import one_of
from gateway.readiness import Readiness
from gateway.upstream import PeerProxy, Upstream
from services.kit.errors import NotFound
from services.kit.schemas import Schema, StrictInteger, load
from services.records.schemas import (
    VisitAuditQuerySchema,
    VisitAuditReportSchema,
    VisitAuditRunSchema,
    VisitAuditSchema,
)

TAGS = ("operations",)
DOCS_DIR = Path(__file__).resolve().parents[1] / "docs_ui"
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "careloop-docs.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# the page loads only its own files: no CDN, no inline script, no framing by other sites
DOCS_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


HEALTH = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}}}
READY = {"type": "object", "required": ["status", "down", "checks", "services"], "properties": {
    "status": {"type": "string", "enum": ["ready", "not ready"]},
    "down": {"type": "array", "items": {"type": "string"},
             "description": "The dependencies that do not answer: broker, database (the gateway's), or a service"},
    "checks": {"type": "object", "additionalProperties": {"type": "string"},
               "description": "Each dependency: \"ok\" or \"down: <why>\""},
    "services": {"type": "object", "additionalProperties": {"type": "string"}}}}
DEAD_LETTERS = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {
    "type": "object", "properties": {"handler_queue": {"type": "string", "nullable": True},
                                     "event_id": {"type": "string", "nullable": True},
                                     "attempts": {"type": "integer", "nullable": True},
                                     "error": {"type": "string", "nullable": True},
                                     "parked_at": {"type": "string", "nullable": True}, "payload": {}}}}}}
REPLAYED = {"type": "object", "required": ["replayed"], "properties": {"replayed": {"type": "integer"}}}


AUDIT_TIMEOUT_SECONDS = 300.0


class LimitQuerySchema(Schema):
    limit = StrictInteger(validate=validate.Range(min=1, max=10_000))


def _docs_file(name: str, content_type: str) -> Response:
    response = Response((DOCS_DIR / name).read_bytes(), content_type=content_type)
    response.headers["Content-Security-Policy"] = DOCS_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "public, max-age=3600" if name != "index.html" else "no-cache"
    return response


class OperationRoutes:
    readiness = Readiness()
    members = Upstream("members")
    notifications = Upstream("notifications")
    # a run walks every visit of its window (~4,500 visits/s measured, tests/perf/RESULTS.md): not the
    # usual 10 s deadline
    visit_auditor = Upstream("records", timeout=AUDIT_TIMEOUT_SECONDS)

    # the probes and the scrape are outside the bound of requests in flight (gateway.admission): they are
    # answered however busy the process is
    @route("GET", "/health", public=True, summary="The gateway process is up", tags=TAGS,
           responses={200: HEALTH}, shed=False)
    def health(self, request: Request) -> Any:
        return {"status": "ok"}

    @route("GET", "/ready", public=True, tags=TAGS, responses={200: READY, 503: READY}, shed=False,
           summary="The broker, the gateway's database and every service answer (503 naming those that do not)")
    def ready(self, request: Request) -> Any:
        checks = self.readiness()
        down = [name for name, state in checks.items() if state != "ok"]
        services = {name: state for name, state in checks.items() if name not in ("broker", "database")}
        body = {"status": "not ready" if down else "ready", "down": down, "checks": checks, "services": services}
        return (503, body, {"Retry-After": "5"}) if down else body

    @route("GET", "/metrics", "ops:metrics", summary="Prometheus metrics of the gateway process", tags=TAGS,
           responses={200: "text/plain"}, shed=False)
    def metrics(self, request: Request) -> Response:
        return Response(prometheus_client.generate_latest(), content_type=prometheus_client.CONTENT_TYPE_LATEST)

    @route("GET", "/openapi.json", public=True, summary="This API, as OpenAPI 3", tags=TAGS,
           responses={200: {"type": "object"}})
    def openapi(self, request: Request) -> Any:
        from gateway.openapi import document

        return document(type(self))

    @route("GET", "/docs", public=True, summary="The interactive API page (served here; no internet needed)",
           tags=TAGS, responses={200: "text/html"})
    def docs(self, request: Request) -> Response:
        return _docs_file("index.html", "text/html; charset=utf-8")

    @route("GET", "/docs/<asset>", public=True, summary="A file of the interactive API page", tags=TAGS,
           responses={200: tuple(sorted(set(t.split(";")[0] for t in DOCS_ASSETS.values()))), 404: None},
           path_types={"asset": one_of("file of the API page", tuple(sorted(DOCS_ASSETS)))})
    def docs_asset(self, request: Request, asset: str) -> Response:
        if asset not in DOCS_ASSETS:
            raise NotFound(f"No file {asset!r} in the API page.")
        return _docs_file(asset, DOCS_ASSETS[asset])

    @route("GET", "/v1/ops/dead-letters/<service>", "ops:dead-letters",
           summary="Events a service parked after its handler kept failing", tags=TAGS,
           query=LimitQuerySchema, responses={200: DEAD_LETTERS, 404: None})
    def dead_letters(self, request: Request, service: str) -> Any:
        args = load(LimitQuerySchema(), query_args(request))
        return {"items": self._upstream(service).dead_letters(limit=args.get("limit"))}

    @route("POST", "/v1/ops/dead-letters/<service>/replay", "ops:dead-letters",
           summary="Send parked events back to their handlers", tags=TAGS, query=LimitQuerySchema,
           responses={200: REPLAYED, 404: None})
    def replay_dead_letters(self, request: Request, service: str) -> Any:
        args = load(LimitQuerySchema(), query_args(request))
        return self._upstream(service).replay_dead_letters(limit=args.get("limit"))

    @route("GET", "/v1/ops/audit/visits", "ops:audit", tags=TAGS, query=VisitAuditQuerySchema,
           summary="The latest finished visit audit (or the one named) with a page of its findings: visits whose "
                   "points or tier spend do not match their bill", responses={200: VisitAuditReportSchema, 404: None})
    def visit_audit(self, request: Request) -> Any:
        return self.visit_auditor.visit_audit(query_args(request))

    @route("POST", "/v1/ops/audit/visits", "ops:audit", tags=TAGS, body=VisitAuditRunSchema,
           summary="Audit the completed visits of a window now (default: the lookback days up to the settle "
                   "window) and answer the run; the same Idempotency-Key is the same run",
           responses={200: VisitAuditSchema})
    def run_visit_audit(self, request: Request) -> Any:
        return self.visit_auditor.audit_visits(request.json_body or {}, idempotency_key=idempotency_key(request))

    def _upstream(self, service: str) -> Any:
        for value in vars(self).values():
            if isinstance(value, PeerProxy) and value.service_name == service:
                return value
        raise NotFound(f"No service {service!r}.")
