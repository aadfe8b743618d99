"""What every request passes before a route runs, shared by all routes of a gateway process: the
client's address, the rate limits, the idempotency store, and the housekeeping of the gateway's
request tables (old replies, webhook receipts, sign-in counts, ended sessions)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import eventlet
from nameko.extensions import SharedExtension
from sqlalchemy import delete

from gateway.auth import lockout
from gateway.idempotency import IdempotencyStore
from gateway.models import RefreshToken, StaffSession
from gateway.ratelimit import ClientAddress, Limit, Limiter
from services.kit.clock import utcnow

log = logging.getLogger(__name__)

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
        replay window, stale sign-in counts, refresh tokens and sessions long ended."""
        now = utcnow()
        self.idempotency.purge()
        self.auth.webhooks.purge()
        with self.database.store.transaction() as session:
            lockout.purge(session, self.lockout_policy, now)
            session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now - timedelta(days=1)))
            session.execute(delete(StaffSession).where(StaffSession.expires_at < now - timedelta(days=90)))

    def client_address(self, environ: dict[str, Any]) -> str:
        return self.address.of(environ)

    def admit(self, environ: dict[str, Any], rate_limit: str | None = None) -> str:
        """The client's address, once it passed the per-address limit (and the route's extra one, if any)."""
        address = self.client_address(environ)
        self.per_address.hit(address)
        if rate_limit:
            self.limiters[rate_limit].hit(address)
        return address
