"""``GET /v1/members/{id}`` through the gateway, authenticated, beside a bare nameko HTTP→RPC echo.

Everything runs as separate ``nameko run`` processes (gateway, members, echo HTTP, echo RPC) on a
vhost of this run; ``wrk`` (another process) loads them with 10 and 50 connections. The gateway runs
with its production path: API key authentication, rate limiters (set high enough never to refuse),
JSON access log at INFO. Authentication is also timed on its own, in this process.

The machine is shared (2 cores, other engineers' test runs): echo and gateway runs alternate for
``CARELOOP_PERF_ROUNDS`` rounds (default 3) and the median round is reported, with the CPU time each
process spent per request (from /proc; much less sensitive to other load than the rates are).

    .venv/bin/python -m pytest tests/perf/test_gateway_perf.py -m perf -s -p no:randomly

Figures go to the terminal (see tests/perf/RESULTS.md, section "Gateway (issue 8)").
``CARELOOP_PERF_PROFILE=<dir>`` runs each process under cProfile and leaves ``<dir>/<process>.prof``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import timeit
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import yaml
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway.auth import Authenticator, issue_api_key
from gateway.auth.recent import Recent
from gateway.auth.tokens import TokenKeys
from services.kit.clock import utcnow
from tests.e2e.conftest import free_port
from tests.harness import REPO, service_config, store_for
from tests.nodes import stop_process_groups
from tests.perf import UNLIMITED_GATEWAY

pytestmark = [pytest.mark.perf, pytest.mark.timeout(1800)]

DURATION = os.environ.get("CARELOOP_PERF_SECONDS", "10")
ROUNDS = int(os.environ.get("CARELOOP_PERF_ROUNDS", "3"))
NAMEKO = str(REPO / ".venv" / "bin" / "nameko")


class ConfigLoader(yaml.SafeLoader):
    """Reads deploy/config.yml for its LOGGING section; nameko's env-var tags elsewhere stay plain text."""


for _tag in ("!env_var", "!raw_env_var"):
    ConfigLoader.add_constructor(_tag, lambda loader, node: loader.construct_scalar(node))


def start(tmp: Path, name: str, target: str, config: dict[str, Any]) -> subprocess.Popen:
    path = tmp / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    log = open(tmp / f"{name}.log", "wb")
    command = [NAMEKO, "run", "--config", str(path), target]
    if os.environ.get("CARELOOP_PERF_PROFILE"):
        profile = Path(os.environ["CARELOOP_PERF_PROFILE"]) / f"{name}.prof"
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
    return subprocess.Popen(command, cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})


def wait_http(url: str, processes: list[subprocess.Popen], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise AssertionError("a process of the benchmark stopped; see its log")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {seconds} s")


def wrk(url: str, connections: int, headers: dict[str, str] | None = None) -> dict[str, float]:
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{DURATION}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    assert errors is None, output

    def percentile(p: int) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rate, "p50": percentile(50), "p99": percentile(99)}


def cpu_seconds(process: subprocess.Popen) -> float:
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(url: str, connections: int, headers: dict[str, str] | None,
             processes: list[subprocess.Popen]) -> dict[str, Any]:
    """One wrk run, with each process's CPU milliseconds per request during it."""
    before = [cpu_seconds(p) for p in processes]
    result = wrk(url, connections, headers)
    after = [cpu_seconds(p) for p in processes]
    requests_done = result["rps"] * float(DURATION)
    result["cpu_ms"] = [(a - b) / requests_done * 1000 for a, b in zip(after, before, strict=True)]
    return result


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]


def auth_cost_us(store_url: str) -> dict[str, float]:
    """Microseconds one request's authentication costs (cached key or session, as in steady state)."""
    keys = TokenKeys.from_config({})
    auth = Authenticator.__new__(Authenticator)
    auth.database, auth.cache_seconds, auth.token_keys = SimpleNamespace(store=store_for(store_url)), 30.0, keys
    auth._keys, auth._sessions, auth._tokens = Recent(30.0, 10_000), Recent(30.0, 50_000), {}
    key = issue_api_key(auth.database.store, "perf", "front_desk", ("*",)).key
    key_request = Request(EnvironBuilder(headers={"Authorization": f"Bearer {key}"}).get_environ())
    token, _ = keys.issue_access("00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002",
                                 "front_desk", ("*",), utcnow(), 900)
    token_request = Request(EnvironBuilder(headers={"Authorization": f"Bearer {token}"}).get_environ())
    from gateway.auth.principal import Principal
    from services.kit.caller import Identity

    identity = Identity("staff", "00000000-0000-0000-0000-000000000001", "front_desk", ("*",))
    auth._sessions.put("00000000-0000-0000-0000-000000000002", Principal(identity, credential="user:x"))
    assert auth.principal(key_request) is not None and auth.principal(token_request) is not None
    number = 20_000

    def first_sight() -> None:  # a token this replica has not verified yet: the JWT signature is checked
        auth._tokens.clear()
        auth.principal(token_request)

    result = {"api_key": timeit.timeit(lambda: auth.principal(key_request), number=number) / number * 1e6,
              "staff_token": timeit.timeit(lambda: auth.principal(token_request), number=number) / number * 1e6,
              "staff_token_first": timeit.timeit(first_sight, number=number // 10) / (number // 10) * 1e6}
    auth.database.store.dispose()
    return result


def test_gateway_get_member_against_the_bare_echo(amqp_uri, databases, tmp_path):
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    members_db = databases.fresh("sqlite", "members")
    gateway_db = databases.fresh("sqlite", "gateway")
    logging_config = yaml.load((REPO / "deploy" / "config.yml").read_text().replace("${SERVICE_NAME:careloop}",
                                                                                          "perf").replace(
        "${LOG_LEVEL:INFO}", "INFO"), Loader=ConfigLoader)["LOGGING"]
    base = {**service_config(amqp_uri), "LOGGING": logging_config, "max_workers": 10}
    ports = {"gateway": free_port(), "echo": free_port()}
    processes = [
        start(tmp_path, "members", "services.members.service:MembersService",
              {**base, "DATABASE_URL": members_db}),
        start(tmp_path, "gateway", "gateway.service:GatewayService",
              {**base, "DATABASE_URL": gateway_db, "WEB_SERVER_ADDRESS": f"127.0.0.1:{ports['gateway']}",
               **UNLIMITED_GATEWAY, "READY_SERVICES": ["members"]}),
        start(tmp_path, "echo", "tests.perf.echo:EchoService", base),
        start(tmp_path, "echo_http", "tests.perf.echo:EchoHttp",
              {**base, "WEB_SERVER_ADDRESS": f"127.0.0.1:{ports['echo']}"}),
    ]
    try:
        gateway = f"http://127.0.0.1:{ports['gateway']}"
        echo = f"http://127.0.0.1:{ports['echo']}"
        wait_http(gateway + "/ready", processes)
        wait_http(echo + "/echo/warm", processes)
        store = store_for(gateway_db)
        key = issue_api_key(store, "perf", "front_desk", ("*",)).key
        store.dispose()
        auth = {"Authorization": f"Bearer {key}"}
        member = requests.post(gateway + "/v1/members", headers=auth, timeout=30, json={
            "full_name": "Perf Member", "phone": "13900139000", "birth_date": "1985-02-03", "home_branch": "SH01"})
        assert member.status_code == 201, member.text
        path = f"/v1/members/{member.json()['id']}"
        assert requests.get(gateway + path, headers=auth, timeout=10).status_code == 200
        for url, headers in ((gateway + path, auth), (echo + "/echo/x", None)):
            wrk(url, 10, headers)  # warm up every worker and connection
        rows = []
        for connections in (10, 50):
            bare_runs, our_runs = [], []
            for _round in range(ROUNDS):
                bare_runs.append(measured(echo + "/echo/" + member.json()["id"], connections, None, processes))
                our_runs.append(measured(gateway + path, connections, auth, processes))
            ratios = sorted(o["rps"] / b["rps"] for o, b in zip(our_runs, bare_runs, strict=True))
            rows.append((connections, median_run(bare_runs), median_run(our_runs), ratios))
        health = wrk(gateway + "/health", 10)
        me = wrk(gateway + "/v1/auth/me", 10, auth)
        serial_health = wrk(gateway + "/health", 1)
        serial_me = wrk(gateway + "/v1/auth/me", 1, auth)
        cost = auth_cost_us(gateway_db)
    finally:
        stop_process_groups(processes)

    load = os.getloadavg()
    print(f"\nGateway (issue 8) — {DURATION} s per run, {ROUNDS} alternating rounds (median round shown), "
          f"wrk, python {sys.version.split()[0]}, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print("| connections | echo req/s | echo p50 / p99 ms | gateway req/s | gateway p50 / p99 ms | "
          "gateway / echo (each round) | CPU ms/request: echo http + echo rpc | gateway + members |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for connections, bare, ours, ratios in rows:
        members_cpu, gateway_cpu, echo_cpu, echo_http_cpu = ours["cpu_ms"][0], ours["cpu_ms"][1], \
            bare["cpu_ms"][2], bare["cpu_ms"][3]
        print(f"| {connections} | {bare['rps']:.0f} | {bare['p50']:.1f} / {bare['p99']:.1f} | {ours['rps']:.0f} | "
              f"{ours['p50']:.1f} / {ours['p99']:.1f} | {' '.join(f'{r:.0%}' for r in ratios)} | "
              f"{echo_http_cpu:.2f} + {echo_cpu:.2f} | {gateway_cpu:.2f} + {members_cpu:.2f} |")
    print(f"GET /health (no auth, no RPC): {health['rps']:.0f} req/s at 10 connections, p50 {serial_health['p50']:.2f} ms "
          f"alone; GET /v1/auth/me (API key checked, no RPC): {me['rps']:.0f} req/s, p50 {serial_me['p50']:.2f} ms "
          "alone")
    print(f"authentication alone, in process: API key {cost['api_key']:.1f} µs, staff token (JWT) "
          f"{cost['staff_token']:.1f} µs per request ({cost['staff_token_first']:.1f} µs the first time a replica "
          "sees a token)")
    assert all(ours["rps"] > 0 and bare["rps"] > 0 for _c, bare, ours, _r in rows)
