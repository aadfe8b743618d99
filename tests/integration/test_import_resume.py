"""An import killed half-way (SIGKILL of the interfaces process doing it) resumes where it stopped and ends
with exactly the file's members, none twice (issue 19). 5,000 rows here; 100,000 in
``tests/perf/test_import_perf.py``."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.kit.caller import Identity
from services.members.service import MembersService
from tests import import_samples
from tests.harness import REPO, scalar, wait_for
from tests.integration.test_event_guarantees import consumers_of
from tests.integration.test_imports import report, settled, upload

ADMIN = Identity(kind="staff", subject="admin", role="group_admin", branches=("*",))


@pytest.fixture
def interfaces_process(amqp_uri: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """``interfaces_process(url)``: interfaces as its own ``nameko run`` process (as deployed);
    ``interfaces_process(url, service="members")``: another service so."""
    started: list[subprocess.Popen] = []

    def start(url: str, service: str = "interfaces", **env: str) -> subprocess.Popen:
        log_path = tmp_path / f"{service}-{len(started)}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [str(REPO / ".venv" / "bin" / "nameko"), "run", "--config", "deploy/config.yml",
                 f"services.{service}.service:{service.capitalize()}Service"],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "AMQP_URI": amqp_uri, "DATABASE_URL": url, "SERVICE_NAME": service,
                     "METRICS_PORT": "0", "LOG_LEVEL": "INFO", "IMPORT_DIR": str(tmp_path / "imports"), **env})
        started.append(process)
        wait_for(lambda: process.poll() is not None or consumers_of(amqp_uri, f"rpc-{service}") > 0, timeout=60,
                 interval=0.2, message=f"the {service} process consuming its RPC queue")
        assert process.poll() is None, log_path.read_text()
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def killed_half_way_then_resumed(rows: int, batch: int, start_service, rpc, databases, interfaces_process,
                                 tmp_path: Path, timeout: float) -> None:
    members = start_service(MembersService, "postgresql")
    url = databases.fresh("postgresql", "interfaces")
    first = interfaces_process(url, IMPORT_BATCH_ROWS=str(batch))
    proxy = rpc(caller=ADMIN, timeout=60)
    path = import_samples.write_csv(tmp_path / "members.csv", import_samples.members(rows))
    job = upload(proxy, path)
    proxy.interfaces.start_import_check(job["id"])
    settled(proxy, job["id"], "validated", timeout=timeout)
    proxy.interfaces.commit_import(job["id"], idempotency_key=f"commit-{job['id']}")

    def half_way():
        return proxy.interfaces.get_import(job["id"])["processed_rows"] >= rows // 2
    wait_for(half_way, timeout=timeout, interval=0.1, message="half the rows imported")
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(timeout=15) == -signal.SIGKILL
    enrolled_when_killed = scalar(members.database_url, "SELECT count(*) FROM members")
    assert rows // 2 <= enrolled_when_killed < rows  # it really was half-way

    interfaces_process(url, IMPORT_BATCH_ROWS=str(batch))  # the restart carries the job on
    job = settled(proxy, job["id"], "done", timeout=timeout)
    assert job["counts"]["imported"] == rows and job["counts"]["invalid"] == 0
    assert scalar(members.database_url, "SELECT count(*) FROM members") == rows
    assert scalar(members.database_url, "SELECT count(DISTINCT phone_index) FROM members") == rows
    assert report(proxy, job["id"], "commit") == []


@pytest.mark.timeout(600)
@pytest.mark.backends("postgresql")
def test_an_import_killed_half_way_resumes_and_imports_each_row_once(
        start_service, rpc, backend, databases, interfaces_process, tmp_path):
    killed_half_way_then_resumed(5000, 250, start_service, rpc, databases, interfaces_process, tmp_path, 300)

