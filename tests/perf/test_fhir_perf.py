"""FHIR Patient search by identifier through the gateway at 10 connections, beside ``GET /v1/members/{id}``
in the same run (issue 18, item 1).

The same processes as the gateway benchmark (``test_gateway_perf``: ``nameko run`` of members and the
gateway on SQLite, ``wrk`` with 10 connections, rounds alternating, the median round shown, CPU per request
from /proc). A search by identifier is one RPC (``members.find_patient``: the member with its identifiers), as
the REST read is.

    CARELOOP_PERF_SECONDS=5 CARELOOP_PERF_ROUNDS=1 .venv/bin/python -m pytest tests/perf/test_fhir_perf.py -m perf -s -p no:randomly

Figures go to the terminal (tests/perf/RESULTS.md, section "FHIR facade (issue 18)").
"""

from __future__ import annotations

import os
import shutil
import sys
from urllib.parse import quote

import pytest
import requests

from gateway.auth import issue_api_key
from tests.e2e.conftest import free_port
from tests.harness import service_config, store_for
from tests.nodes import stop_process_groups
from tests.perf import UNLIMITED_GATEWAY
from tests.perf.test_gateway_perf import DURATION, ROUNDS, measured, median_run, start, wait_http, wrk

pytestmark = [pytest.mark.perf, pytest.mark.timeout(1800)]

HIS = "https://his-jingan.example.org/mrn"


def test_fhir_patient_search_by_identifier_beside_the_rest_read(amqp_uri, databases, tmp_path):
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    members_db = databases.fresh("sqlite", "members")
    gateway_db = databases.fresh("sqlite", "gateway")
    base = {**service_config(amqp_uri), "max_workers": 10}
    port = free_port()
    processes = [
        start(tmp_path, "members", "services.members.service:MembersService", {**base, "DATABASE_URL": members_db}),
        start(tmp_path, "gateway", "gateway.service:GatewayService",
              {**base, "DATABASE_URL": gateway_db, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
               **UNLIMITED_GATEWAY, "READY_SERVICES": ["members"]}),
    ]
    try:
        gateway = f"http://127.0.0.1:{port}"
        wait_http(gateway + "/ready", processes)
        store = store_for(gateway_db)
        key = issue_api_key(store, "perf", "integration", ("*",)).key
        store.dispose()
        auth = {"Authorization": f"Bearer {key}"}
        member = requests.post(gateway + "/v1/members", headers=auth, timeout=30, json={
            "full_name": "Perf Patient", "phone": "13900139001", "birth_date": "1985-02-03", "home_branch": "SH01"})
        assert member.status_code == 201, member.text
        member_id = member.json()["id"]
        added = requests.post(f"{gateway}/v1/members/{member_id}/identifiers", headers=auth, timeout=30,
                              json={"identifiers": [{"system": HIS, "value": "MRN-PERF"}]})
        assert added.status_code == 200, added.text
        search = f"{gateway}/fhir/Patient?identifier={quote(f'{HIS}|MRN-PERF', safe='')}"
        found = requests.get(search, headers=auth, timeout=10).json()
        assert [entry["resource"]["id"] for entry in found["entry"]] == [member_id]
        read = f"{gateway}/v1/members/{member_id}"
        for url in (read, search):
            wrk(url, 10, auth)  # warm up every worker and connection
        rest_runs, fhir_runs = [], []
        for _round in range(ROUNDS):
            rest_runs.append(measured(read, 10, auth, processes))
            fhir_runs.append(measured(search, 10, auth, processes))
        rest, fhir = median_run(rest_runs), median_run(fhir_runs)
    finally:
        stop_process_groups(processes)

    load = os.getloadavg()
    print(f"\nFHIR facade (issue 18) — {DURATION} s per run, {ROUNDS} alternating rounds (median shown), wrk, "
          f"10 connections, python {sys.version.split()[0]}, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print("| request | req/s | p50 / p99 ms | CPU ms/request: members + gateway |")
    print("| --- | --- | --- | --- |")
    for name, run in (("GET /v1/members/{id}", rest), ("GET /fhir/Patient?identifier=system|value", fhir)):
        print(f"| {name} | {run['rps']:.0f} | {run['p50']:.1f} / {run['p99']:.1f} | "
              f"{run['cpu_ms'][0]:.2f} + {run['cpu_ms'][1]:.2f} |")
    assert rest["rps"] > 0 and fhir["rps"] > 0
