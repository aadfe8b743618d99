"""What operators and orchestrators ask: liveness, readiness, metrics, the API document, dead letters."""

from __future__ import annotations

from typing import Any

import prometheus_client
from werkzeug.wrappers import Request, Response

from gateway.http import query_args, route
from gateway.readiness import Readiness
from gateway.upstream import DeadlineProxy, Upstream
from services.kit.errors import NotFound

TAGS = ("operations",)


class OperationRoutes:
    readiness = Readiness()
    members = Upstream("members")
    notifications = Upstream("notifications")

    @route("GET", "/health", public=True, summary="The gateway process is up", tags=TAGS)
    def health(self, request: Request) -> Any:
        return {"status": "ok"}

    @route("GET", "/ready", public=True, summary="The broker and every service answer", tags=TAGS)
    def ready(self, request: Request) -> Any:
        states = self.readiness()
        ready = all(state == "ok" for state in states.values())
        return (200 if ready else 503), {"status": "ready" if ready else "not ready", "services": states}

    @route("GET", "/metrics", "ops:metrics", summary="Prometheus metrics of the gateway process", tags=TAGS)
    def metrics(self, request: Request) -> Response:
        return Response(prometheus_client.generate_latest(), content_type=prometheus_client.CONTENT_TYPE_LATEST)

    @route("GET", "/openapi.json", public=True, summary="This API, as OpenAPI 3", tags=TAGS)
    def openapi(self, request: Request) -> Any:
        from gateway.openapi import document

        return document(type(self))

    @route("GET", "/v1/ops/dead-letters/<service>", "ops:dead-letters",
           summary="Events a service parked after its handler kept failing", tags=TAGS)
    def dead_letters(self, request: Request, service: str) -> Any:
        return {"items": self._upstream(service).dead_letters(limit=query_args(request).get("limit"))}

    @route("POST", "/v1/ops/dead-letters/<service>/replay", "ops:dead-letters",
           summary="Send parked events back to their handlers", tags=TAGS)
    def replay_dead_letters(self, request: Request, service: str) -> Any:
        return self._upstream(service).replay_dead_letters(limit=query_args(request).get("limit"))

    def _upstream(self, service: str) -> Any:
        for value in vars(self).values():
            if isinstance(value, DeadlineProxy) and value.service_name == service:
                return value
        raise NotFound(f"No service {service!r}.")
