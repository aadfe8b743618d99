"""Calling the services from the gateway: ``kit.peers.Peer`` with the gateway's own deadline.

``Upstream("members")`` gives a route a proxy whose calls give up after ``RPC_TIMEOUT`` seconds (default
10) with ``Unavailable`` (the route answers 503 with ``Retry-After``); the request message carries the same
time to live, so a request nobody picked up in time is dropped by the broker instead of being run long
after the caller gave up. Mutating routes take an Idempotency-Key, so the caller's retry is safe either way.
"""

from __future__ import annotations

from services.kit.peers import Peer, PeerProxy

__all__ = ["Upstream", "PeerProxy"]


class Upstream(Peer):
    timeout_setting = "RPC_TIMEOUT"
    default_timeout = 10.0
    # A request outlives neither its deadline nor a broker restart usefully: keep it in memory
    # (nameko's default is persistent, which makes the broker write every request to disk).
    persistent = False
