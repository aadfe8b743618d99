"""HL7 ADT^A04 over MLLP (1 and 10 connections) beside the signed JSON bill webhook (1 and 10 clients), one run.

The whole suite runs as real processes (``tests/faults/stack.py`` without proxies: every service and the
gateway under the local runner's supervisor, on a private RabbitMQ node and PostgreSQL cluster); the
interfaces process listens for MLLP on a free port. Each A04 is a new patient, so each one is a full
registration: the message log claimed, members' ``enrol`` (idempotent, outbox row), the facility's patient
link, the ACK kept encrypted — and the ACK sent only after that commit. Each connection sends its next message
when the ACK of the previous one came (MLLP's original mode), for ``CARELOOP_PERF_SECONDS`` (default 10).

Beside it, same run and same duration: ``POST /v1/webhooks/bills`` (signed, one bill per request, completing
a paid visit for one of the members the A04s registered), from 1 and then 10 clients, each waiting for its
answer. Figures: messages (requests) per second, and p50/p99 time from send to ACK (to answer).

    .venv/bin/python -m pytest tests/perf/test_hl7_perf.py -m perf -s -p no:randomly

Figures are printed; tests/perf/RESULTS.md ("HL7 v2 over MLLP (issue 18)") keeps them.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import eventlet
import pytest
import requests
from requests.adapters import HTTPAdapter

from gateway.auth import webhooks
from services.interfaces.hl7.mllp import FRAME_END, frame
from tests.faults.stack import Stack
from tests.nodes import free_port
from tests.perf import UNLIMITED_GATEWAY

pytestmark = [pytest.mark.perf, pytest.mark.timeout(1800)]

SECONDS = float(os.environ.get("CARELOOP_PERF_SECONDS", "10"))
RUN = uuid.uuid4().hex[:6].upper()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    port = free_port()
    started = Stack(Path(tmp_path_factory.mktemp("hl7")), proxied=False, env={
        "gateway": UNLIMITED_GATEWAY,
        "interfaces": {"HL7_FACILITIES": "HIS01=SH01,SH02,HZ01", "HL7_MLLP_PORT": str(port),
                       "HL7_MLLP_HOST": "127.0.0.1"}})
    started.mllp_port = port
    try:
        started.start()
        yield started
    finally:
        started.close()


class Numbers:
    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value += 1
        return self.value


def a04(number: int) -> bytes:
    stamp = time.strftime("%Y%m%d%H%M%S")
    return "\r".join((
        f"MSH|^~\\&|HISAPP|HIS01|CARELOOP|SMILE|{stamp}||ADT^A04^ADT_A01|{RUN}-{number}|P|2.5.1||||||UNICODE UTF-8",
        f"EVN|A04|{stamp}",
        f"PID|1||{RUN}-MRN-{number}^^^HIS01^MR||Perf{RUN}^Patient{number}||19{50 + number % 50}0{1 + number % 9}1"
        f"{number % 9}|F|||||139{number % 100_000_000:08d}^PRN^CP",
        "PV1|1|O|DENT^^^SH01")).encode() + b"\r"


def mllp_client(port: int, numbers: Numbers, until: float, latencies: list[float], codes: dict[str, int]) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    buffer = b""
    try:
        while time.monotonic() < until:
            started = time.monotonic()
            sock.sendall(frame(a04(numbers.next())))
            while FRAME_END not in buffer:
                chunk = sock.recv(65536)
                assert chunk, "the listener closed the connection"
                buffer += chunk
            answer, buffer = buffer.split(FRAME_END, 1)
            latencies.append(time.monotonic() - started)
            code = answer.decode().split("MSA|", 1)[1][:2]
            codes[code] = codes.get(code, 0) + 1
    finally:
        sock.close()


def bill_client(stack: Stack, members: list[str], numbers: Numbers, until: float, latencies: list[float],
                codes: dict[str, int]) -> None:
    http = requests.Session()
    http.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=1))
    slug, secret = stack.integration
    url = stack.gateway_urls[0] + "/v1/webhooks/bills"
    while time.monotonic() < until:
        number = numbers.next()
        body = json.dumps({"bill_id": f"PERF-{RUN}-{number}", "member_id": members[number % len(members)],
                           "branch": "SH01", "currency": "CNY",
                           "items": [{"category": "exam", "code": "EX01", "amount_minor": 12000}],
                           "payments": [{"method": "card", "amount_minor": 12000}]}).encode()
        headers = {"Content-Type": "application/json", **webhooks.signed_headers(slug, secret, body)}
        started = time.monotonic()
        response = http.post(url, data=body, headers=headers, timeout=30)
        latencies.append(time.monotonic() - started)
        codes[str(response.status_code)] = codes.get(str(response.status_code), 0) + 1


def measure(label: str, clients: int, client: Callable[..., None], *args: Any) -> dict[str, Any]:
    latencies: list[float] = []
    codes: dict[str, int] = {}
    began = time.monotonic()
    until = began + SECONDS
    pool = eventlet.GreenPool(clients)
    for _ in range(clients):
        pool.spawn_n(client, *args, until, latencies, codes)
    pool.waitall()
    elapsed = time.monotonic() - began
    ordered = sorted(latencies)

    def percentile(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 1)

    row = {"what": label, "clients": clients, "done": len(latencies), "per_s": round(len(latencies) / elapsed, 1),
           "p50_ms": percentile(0.5), "p99_ms": percentile(0.99), "answers": codes}
    print(json.dumps(row), flush=True)
    return row


def test_a04_over_mllp_beside_the_bill_webhook(stack: Stack) -> None:
    numbers = Numbers()
    warm = measure("warm-up A04", 1, mllp_client, stack.mllp_port, numbers)
    assert warm["answers"] == {"AA": warm["done"]}, warm
    rows = [measure("A04 over MLLP", 1, mllp_client, stack.mllp_port, numbers),
            measure("A04 over MLLP", 10, mllp_client, stack.mllp_port, numbers)]
    members = _members(stack)
    bills = Numbers()
    rows += [measure("bill webhook", 1, bill_client, stack, members, bills),
             measure("bill webhook", 10, bill_client, stack, members, bills)]
    print("\n| what | connections | done | per second | p50 ms | p99 ms | answers |\n| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['what']} | {row['clients']} | {row['done']} | {row['per_s']} | {row['p50_ms']} | "
              f"{row['p99_ms']} | {row['answers']} |")
    for row in rows[:2]:
        assert row["answers"] == {"AA": row["done"]}, row
    for row in rows[2:]:
        assert set(row["answers"]) == {"200"}, row


def _members(stack: Stack) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(stack.pg.url("interfaces"))
    try:
        with engine.connect() as connection:
            return [str(row[0]) for row in connection.execute(text(
                "SELECT DISTINCT member_id FROM hl7_messages WHERE member_id IS NOT NULL LIMIT 500"))]
    finally:
        engine.dispose()
