"""Rate limits per credential and per client address (429 with ``Retry-After``).

Each limit is a rate and a burst, kept with GCRA (the token bucket as one timestamp per key): O(1),
no background work, fair under steady load. Limits are per gateway process: with N replicas a
client may reach N times the figure, so set them per replica. Defaults (``deploy/config.yml``):
per credential 50/s with bursts of 200, per address 100/s with bursts of 400, sign-in attempts per
address 10/min with bursts of 10 (the lockout in ``gateway.auth.lockout`` counts failures on top).

Addresses: the peer address, or — when the peer is one of ``TRUSTED_PROXIES`` (CIDRs of the
ingress) — the nearest untrusted address of ``X-Forwarded-For``.
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass
from typing import Any

from services.kit.errors import RateLimited
from services.kit.telemetry import counter

RATE_LIMITED = counter("careloop_gateway_rate_limited_total", "Requests refused by a rate limit", ("scope",))


@dataclass(frozen=True)
class Limit:
    rate: float  # requests per second, sustained
    burst: int  # requests allowed at once

    @classmethod
    def parse(cls, text: Any) -> Limit | None:
        """``"50/s burst 200"``, ``"10/min burst 10"``; empty or ``off`` disables the limit."""
        spec = str(text or "").strip().lower()
        if not spec or spec == "off":
            return None
        rate_part, _, burst_part = spec.partition("burst")
        count, _, unit = rate_part.strip().partition("/")
        seconds = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600}[unit.strip()]
        rate = float(count) / seconds
        burst = int(burst_part.strip()) if burst_part.strip() else max(1, math.ceil(rate))
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate limit {text!r}: rate and burst must be positive")
        return cls(rate=rate, burst=burst)


class Limiter:
    """One limit over many keys (credentials, addresses)."""

    def __init__(self, scope: str, limit: Limit | None, max_keys: int = 100_000) -> None:
        self.scope = scope
        self.limit = limit
        self.max_keys = max_keys
        self._tat: dict[str, float] = {}  # theoretical arrival time per key
        if limit is not None:
            self._interval = 1.0 / limit.rate
            self._tolerance = self._interval * (limit.burst - 1)

    def hit(self, key: str, now: float | None = None) -> None:
        """Count one request for ``key``; ``RateLimited`` (with ``retry_after``) when over the limit."""
        if self.limit is None:
            return
        now = time.monotonic() if now is None else now
        tat = max(self._tat.get(key, now), now)
        allowed_at = tat - self._tolerance
        if now < allowed_at:
            RATE_LIMITED.labels(self.scope).inc()
            wait = allowed_at - now
            raise RateLimited(f"Too many requests ({self.scope}); slow down and retry after {math.ceil(wait)} s.",
                              details={"retry_after": max(1, math.ceil(wait)), "limit": self.scope})
        if len(self._tat) >= self.max_keys:
            self._forget_idle(now)
        self._tat[key] = tat + self._interval

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]
        if len(self._tat) >= self.max_keys:  # all busy: an attack with many keys; start over
            self._tat.clear()


class ClientAddress:
    """The client's address behind the configured trusted proxies."""

    def __init__(self, trusted: Any) -> None:
        if isinstance(trusted, str):
            trusted = [part for part in trusted.replace(",", " ").split() if part]
        self.trusted = [ipaddress.ip_network(cidr, strict=False) for cidr in trusted or ()]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def of(self, environ: dict[str, Any]) -> str:
        peer = environ.get("REMOTE_ADDR") or "unknown"
        if not self.trusted or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer
