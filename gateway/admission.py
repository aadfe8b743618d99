"""What every request passes before a route runs, shared by all routes of a gateway process: the bound
of requests in flight, the client's address, the rate limits, the idempotency store, and the housekeeping
of the gateway's request tables (old replies, webhook receipts, sign-in counts, ended sessions).

**Load shedding.** A gateway process runs each request in one of its ``max_workers`` nameko workers; a
request that finds them all busy used to wait for one without bound, so when the offered rate stayed above
what the services could handle (a broker restart's backlog, a starved machine) hundreds of requests queued
in the gateway, each holding its client, and ``/ready`` and ``/health`` waited behind them. Now at most
``GATEWAY_MAX_IN_FLIGHT`` requests (default ``max_workers`` − 2) run at once; one more is answered at once
``503`` with ``Retry-After: 1`` (``careloop_gateway_requests_shed_total``), which every client of a 503
already handles (retry with the same ``Idempotency-Key``). Routes declared ``shed=False`` (``/health``,
``/ready``, ``/metrics``) are outside the bound, and the two workers it leaves free are theirs, so the
orchestrator's probes and Prometheus are answered however busy the process is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import eventlet
from nameko.extensions import SharedExtension
from sqlalchemy import delete

from gateway.auth import lockout
from gateway.idempotency import IdempotencyStore
from gateway.member import codes as member_codes
from gateway.models import RefreshToken, StaffSession
from gateway.ratelimit import ClientAddress, Limit, Limiter
from services.kit.clock import utcnow
from services.kit.errors import Unavailable
from services.kit.telemetry import counter, gauge

log = logging.getLogger(__name__)

IN_FLIGHT = gauge("careloop_gateway_requests_in_flight", "Requests of the process running now (shed=False routes not counted)")
SHED = counter("careloop_gateway_requests_shed_total",
               "Requests answered 503 at once because the process had GATEWAY_MAX_IN_FLIGHT requests running")
RESERVED_WORKERS = 2
"""Workers of a gateway process left to the routes outside the bound (probes, metrics)."""

DEFAULT_LIMITS = {
    "RATE_LIMIT_CREDENTIAL": "50/s burst 200",
    "RATE_LIMIT_ADDRESS": "100/s burst 400",
    "RATE_LIMIT_LOGIN": "10/min burst 10",
    "RATE_LIMIT_LINKS": "30/min burst 10",  # a patient's confirm/cancel links (gateway/routes/links.py), per address
}


class Admission(SharedExtension):
    def setup(self) -> None:
        config = self.container.config
        self.address = ClientAddress(config.get("TRUSTED_PROXIES") or ())
        self.per_credential = Limiter("credential", Limit.parse(config.get("RATE_LIMIT_CREDENTIAL",
                                                                           DEFAULT_LIMITS["RATE_LIMIT_CREDENTIAL"])))
        self.per_address = Limiter("address", Limit.parse(config.get("RATE_LIMIT_ADDRESS",
                                                                     DEFAULT_LIMITS["RATE_LIMIT_ADDRESS"])))
        self.limiters = {"login": Limiter("login", Limit.parse(config.get("RATE_LIMIT_LOGIN",
                                                                          DEFAULT_LIMITS["RATE_LIMIT_LOGIN"]))),
                         "links": Limiter("links", Limit.parse(config.get("RATE_LIMIT_LINKS",
                                                                          DEFAULT_LIMITS["RATE_LIMIT_LINKS"])))}
        self.housekeeping_seconds = float(config.get("GATEWAY_HOUSEKEEPING_SECONDS", 300))
        workers = int(config.get("max_workers", 10))
        self.max_in_flight = int(config.get("GATEWAY_MAX_IN_FLIGHT") or max(workers - RESERVED_WORKERS, 1))
        if self.max_in_flight < 1:
            raise ValueError("GATEWAY_MAX_IN_FLIGHT must be at least 1")
        self.in_flight = 0
        self._running = False

    def start(self) -> None:
        from gateway.auth import Authenticator
        from services.kit.db import Database

        config = self.container.config
        self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
        self.auth = next(d for d in self.container.dependencies if isinstance(d, Authenticator))
        rpc_timeout = float(config.get("RPC_TIMEOUT", 10))
        self.idempotency = IdempotencyStore(self.database.store, stale_after=2 * rpc_timeout + 30,
                                            retention=timedelta(hours=float(config.get("IDEMPOTENCY_HOURS", 24))))
        self.lockout_policy = lockout.Policy.from_config(config)
        if not self._running:
            self._running = True
            self._thread = self.container.spawn_managed_thread(self._housekeeping_forever,
                                                               identifier="gateway-housekeeping")

    def stop(self) -> None:
        self._running = False
        thread, self._thread = getattr(self, "_thread", None), None
        if thread is not None:
            thread.kill()

    def kill(self) -> None:
        self.stop()

    def _housekeeping_forever(self) -> None:
        while self._running:
            eventlet.sleep(self.housekeeping_seconds)
            if not self._running:
                return
            try:
                self.housekeeping()
            except Exception:
                log.exception("gateway housekeeping failed; will try again")

    def housekeeping(self) -> None:
        """Forget what no longer matters: stored replies past retention, webhook receipts past the
        replay window, stale sign-in counts, refresh tokens and sessions long ended, members' old codes and sessions."""
        now = utcnow()
        self.idempotency.purge()
        self.auth.webhooks.purge()
        with self.database.store.transaction() as session:
            lockout.purge(session, self.lockout_policy, now)
            session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now - timedelta(days=1)))
            session.execute(delete(StaffSession).where(StaffSession.expires_at < now - timedelta(days=90)))
        member_codes.purge(self.database.store, member_codes.CodePolicy.from_config(self.container.config), now)

    @contextmanager
    def in_flight_slot(self, shed: bool = True) -> Iterator[None]:
        """Run a request inside the process's bound of requests in flight — or, when the bound is reached,
        raise ``Unavailable`` (503, ``Retry-After: 1``) before anything of the request is read. ``shed=False``
        (probes, metrics): always run, outside the count. Green threads switch only at I/O, so the count
        needs no lock."""
        if not shed:
            yield
            return
        if self.in_flight >= self.max_in_flight:
            SHED.inc()
            raise Unavailable("The gateway is handling as many requests as it can just now; try again in a "
                              "second (with the same Idempotency-Key if you sent one).",
                              details={"retry_after": 1, "reason": "overloaded"})
        self.in_flight += 1
        IN_FLIGHT.set(self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
            IN_FLIGHT.set(self.in_flight)

    def client_address(self, environ: dict[str, Any]) -> str:
        return self.address.of(environ)

    def admit(self, environ: dict[str, Any], rate_limit: str | None = None) -> str:
        """The client's address, once it passed the per-address limit (and the route's extra one, if any)."""
        address = self.client_address(environ)
        self.per_address.hit(address)
        if rate_limit:
            self.limiters[rate_limit].hit(address)
        return address
