"""The HTTP POST of one delivery: signed, bounded in time, never following redirects (a redirect could lead
off the allowlist); any 2xx is delivered."""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from services.kit.signing import signature_headers

USER_AGENT = "CareLoop-Webhooks/1"


def session() -> requests.Session:
    """One per process: keeps connections to the targets alive between deliveries; ignores proxy variables
    of the environment (a proxy would be a way around the allowlist)."""
    http = requests.Session()
    http.trust_env = False
    return http


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status: int | None
    error: str | None
    duration_ms: int


def post(session: requests.Session, url: str, secret: str, body: str, headers: dict[str, str],
         timeout: float) -> Outcome:
    raw = body.encode("utf-8")
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers,
                   **signature_headers(secret, raw)}
    started = time.perf_counter()
    try:
        response = session.post(url, data=raw, headers=all_headers, timeout=timeout, allow_redirects=False)
        response.close()
        status, error = response.status_code, None
    except requests.RequestException as failure:
        status, error = None, type(failure).__name__
    took = int((time.perf_counter() - started) * 1000)
    return Outcome(status is not None and 200 <= status < 300, status, error, took)
