"""The ceiling the gateway is measured against: a bare nameko HTTP entrypoint calling a bare RPC echo.

Two processes, like the gateway and a service: ``EchoService`` answers ``echo`` over RPC;
``EchoHttp`` serves ``GET /echo/<value>`` and asks ``EchoService`` — no auth, no checks, no database.
"""

from __future__ import annotations

import json

from nameko.rpc import RpcProxy, rpc
from nameko.web.handlers import http


class EchoService:
    name = "perf_echo"

    @rpc
    def echo(self, value: str) -> dict:
        return {"value": value}


class EchoHttp:
    name = "perf_echo_http"
    echo = RpcProxy("perf_echo")

    @http("GET", "/echo/<value>")
    def get(self, request, value: str):  # noqa: ANN001, ANN201 - nameko's plain HTTP signature
        return 200, {"Content-Type": "application/json"}, json.dumps(self.echo.echo(value))
