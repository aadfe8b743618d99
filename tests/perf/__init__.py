"""Benchmarks (``make perf``): figures printed beside a ceiling measured in the same run; kept in RESULTS.md."""

UNLIMITED_GATEWAY = {"RATE_LIMIT_CREDENTIAL": "100000/s burst 100000", "RATE_LIMIT_ADDRESS": "100000/s burst 100000",
                     "GATEWAY_MAX_IN_FLIGHT": "100000"}
"""A gateway's settings for a benchmark: no rate limit, and no load shedding — the benchmarks measure what the
gateway and the services do with the connections they are given (closed loops of 10–50 connections queue in
the gateway's workers, as before the bound of requests in flight), not how many 503s a bound hands out."""
