"""A real Prometheus (Debian's binary: own port, own data folder, a config written here) scrapes every
metrics endpoint of a running suite: each target is up, and every metric the Grafana dashboards and the
alert rules name is one the processes export (so a renamed metric breaks this test, not a dashboard)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.e2e.conftest import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# RabbitMQ's own metrics (rabbitmq_prometheus plugin): the suite's broker here is the machine's shared one,
# whose plugins a test must not change; their names are RabbitMQ's, checked in the alert's unit test.
FROM_THE_BROKER = re.compile(r"^rabbitmq_")
SYNTHETIC = {"up"}  # Prometheus's own series of each scrape


def names_used() -> set[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "careloop.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    queries += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    functions = {"sum", "max", "rate", "increase", "histogram_quantile", "clamp_min", "absent", "time", "vector",
                 "by", "on", "or", "and", "le", "count", "avg", "min"}
    names = set()
    for query in queries:
        without_labels = re.sub(r"\{[^}]*\}|\"[^\"]*\"|\[[^\]]*\]", " ", query)
        names |= {word for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_labels)
                  if word not in functions and ("_" in word or word in SYNTHETIC)}
    return names


def test_the_names_found_in_queries_are_metric_names():
    used = names_used()
    assert {"careloop_outbox_backlog", "careloop_entrypoint_latency_seconds_bucket", "up",
            "careloop_members_enrolled_total", "rabbitmq_queue_messages_ready"} <= used
    assert not {"service", "entrypoint", "sum", "by"} & used


def wait_for(probe, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s; last: {last!r}")


@pytest.fixture
def prometheus(tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: scripts/infra.sh prometheus (Debian: apt-get install prometheus)")
    processes = []

    def start(targets: list[str]) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            # a scrape may take seconds on a busy 2-core machine: the suite's services share the test process, whose
            # registry holds every metric of every test run before this one (in a full run, 2,800 tests' worth)
            "global": {"scrape_interval": "5s", "scrape_timeout": "5s", "evaluation_interval": "2s"},
            "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
            "scrape_configs": [{"job_name": "careloop", "static_configs": [{"targets": targets}]}]}))
        log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 - closed with the process below
        processes.append((subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT), log))
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
            except requests.ConnectionError:
                assert processes[-1][0].poll() is None, (tmp_path / "prometheus.log").read_text()
                return False

        wait_for(ready, 30, "Prometheus ready")
        return url

    yield start
    for process, log in processes:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_prometheus_scrapes_every_process_and_sees_every_metric_the_dashboards_and_alerts_use(suite, prometheus):
    targets = [f"127.0.0.1:{port}" for port in suite.metrics_ports.values()]
    url = prometheus(targets)
    assert suite.call("GET", "/health").status_code == 200

    seen: dict[str, str] = {}

    def all_up() -> dict[str, str] | None:
        active = requests.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        seen.clear()
        seen.update({target["labels"]["instance"]: f"{target['health']} {target.get('lastError', '')}".strip()
                     for target in active})
        return dict(seen) if sorted(seen) == sorted(targets) and set(seen.values()) == {"up"} else None

    try:
        wait_for(all_up, 90, "every target up")
    except AssertionError as error:
        raise AssertionError(f"{error}; targets: {seen}") from None
    # each target scraped in the last minute (the latest scrape alone may have run out its 2 s since all_up saw it:
    # the suite's processes share the test process and its two cores)
    up = requests.get(f"{url}/api/v1/query", params={"query": "max_over_time(up[1m])"},
                      timeout=5).json()["data"]["result"]
    assert {sample["metric"]["instance"]: sample["value"][1] for sample in up} == {target: "1" for target in targets}

    # metadata (HELP/TYPE) is listed for every family a target exposes, samples or not yet
    metadata = requests.get(f"{url}/api/v1/metadata", timeout=5).json()["data"]
    exported = set(metadata)
    suffixes = {"histogram": ("bucket", "count", "sum"), "counter": ("total",)}  # the families' sample names
    exported |= {f"{name.removesuffix('_total')}_{suffix}" for name, kinds in metadata.items()
                 for suffix in suffixes.get(kinds[0]["type"], ())}
    missing = {name for name in names_used() - SYNTHETIC if not FROM_THE_BROKER.match(name)} - exported
    assert not missing, f"named by dashboards or alerts but exported by no process: {sorted(missing)}"

    rules = requests.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert all(rule["health"] != "err" for group in rules for rule in group["rules"])
