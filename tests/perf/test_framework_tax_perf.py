"""The framework tax: nameko's RPC against the raw AMQP round trip it is built on, in one run (issue 17).

``pytest tests/perf/test_framework_tax_perf.py -m perf -s -p no:randomly`` (RabbitMQ running; ~4 minutes)

Four echoes answer the same call (``echo(number, sequence, {"rule": …, "branch": …})`` → ``[args, kwargs]``),
each in a process of its own, on a vhost of the run:

- **raw AMQP**: a py-amqp consumer answering on the request's ``reply_to``; the callers publish with
  RabbitMQ's direct reply-to (``amq.rabbitmq.reply-to``), one connection each, JSON bodies, no confirms,
  no framework — the ceiling;
- **nameko echo, default serializer**: ``tests.perf.echo_service:EchoService`` under ``nameko run``, called
  through standalone ``ClusterRpcProxy``s, kombu's ``json``;
- **nameko echo, kit serializer**: the same with ``serializer: careloop-json`` (``services/kit/serializer.py``)
  on both ends;
- **kit service echo**: ``KitEcho``, the echo as a CareLoop ``Service`` (the kit's container, consumer and
  replies, caller identity, telemetry) with the kit's serializer — what every service pays per call.

The callers (greenthreads, each with its own connection or proxy) run in a process of their own per
measure; rounds interleave the three at 1 and at 20 callers so that the machine's other load hits all of
them. Each measure prints calls/s, p50/p99 and the CPU ms per call of the callers' process and of the
echo's. ``test_worker_pool_sizes`` runs the kit service echo with several ``max_workers`` (nameko's
prefetch is the same number) beside the raw echo at 20 callers.

``TAX_BEFORE=<dir>`` adds the kit service echo as older code had it, run from ``<dir>`` (e.g.
``git archive <commit> | tar -x -C <dir>``, with ``.venv`` linked; ``echo_service.py`` and ``profiled.py`` are copied in) on
nameko's default serializer (``TAX_BEFORE_SERIALIZER=kit``: on the kit's, for a checkout that has it): before
and after in one run.
``CARELOOP_PERF_PROFILE=<dir>`` runs the nameko echoes under cProfile counting CPU time once they answer
(``<dir>/<name>.prof``, ``tests/perf/profiled.py``) and each load process too
(``<dir>/callers-<mode>-<target>-<callers>.prof``); figures are then not comparable. ``TAX_SECONDS`` (8), ``TAX_ROUNDS`` (3), ``TAX_WORKERS`` ("10,20,40") change the run.
Figures go to tests/perf/RESULTS.md ("Framework tax (issue 17)").

``test_event_handler_tax`` (``-k event_handler``) is the same comparison for events, open loop: one publisher
sends ``perf_source``'s ``ticked`` events (persistent, at ``TAX_EVENT_RATE`` a second for ``TAX_EVENT_SECONDS``,
``TAX_ROUNDS`` rounds) and every handler process gets each of them, in its own queue: nameko's bare
``event_handler``, the kit's ``event_handler`` doing nothing (inbox claim, commit before the ack) and the kit's
handler emitting one event through the outbox (its relay publishing it). Each prints the CPU ms per event of its
process and of its PostgreSQL backends, measured from the first publish until every event is handled (inbox rows
written; outbox rows sent). ``TAX_BEFORE`` adds the kit handlers of older code beside them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.kit.serializer import NAMEKO_CONFIG
from tests.harness import PG_ADMIN_URL, REPO, scalar, wait_for
from tests.perf.tax_echo import cpu_seconds

pytestmark = pytest.mark.perf

SECONDS = float(os.environ.get("TAX_SECONDS", "8"))
WARM_UP = 2.0
ROUNDS = int(os.environ.get("TAX_ROUNDS", "3"))
BEFORE = Path(os.environ["TAX_BEFORE"]) if os.environ.get("TAX_BEFORE") else None
BEFORE_KIT_SERIALIZER = os.environ.get("TAX_BEFORE_SERIALIZER", "") == "kit"
"""``TAX_BEFORE_SERIALIZER=kit``: the older kit echo on the kit's serializer too (for a checkout that has it)."""
WORKERS = [int(n) for n in os.environ.get("TAX_WORKERS", "10,20,40").split(",")]
RAW_QUEUE = "perf.raw_echo"
NAMEKO = str(REPO / ".venv" / "bin" / "nameko")
KIT_SERVICE = {"SERVICE_CONTAINER_CLS": "services.kit.container.Container", "METRICS_PORT": 0,
               "RPC_REPLY_CONFIRMS": os.environ.get("TAX_REPLY_CONFIRMS", "") == "1"}
"""The kit service echo's settings as deploy/config.yml gives them (``TAX_REPLY_CONFIRMS=1``: wait for
the broker's confirm of each reply, as nameko does)."""


def start_echo(tmp: Path, name: str, target: str, amqp_uri: str, kit_serializer: bool,
               max_workers: int = 10, cwd: Path = REPO, **settings: Any) -> subprocess.Popen:
    config: dict[str, Any] = {"AMQP_URI": amqp_uri, "max_workers": max_workers,
                              **(NAMEKO_CONFIG if kit_serializer else {}), **settings}
    path = tmp / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    command = [NAMEKO, "run", "--config", str(path), target]
    if os.environ.get("CARELOOP_PERF_PROFILE"):  # CPU time, from wait_ready() on (tests/perf/profiled.py)
        command = [sys.executable, "-m", "tests.perf.profiled",
                   str(Path(os.environ["CARELOOP_PERF_PROFILE"]) / f"{name}.prof"), *command[1:]]
    return subprocess.Popen(command, cwd=cwd, stdout=(tmp / f"{name}.log").open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def start_raw(tmp: Path, amqp_uri: str, prefetch: int = 10) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "tests.perf.tax_echo", "serve", amqp_uri, RAW_QUEUE,
                                str(prefetch)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=(tmp / "raw.log").open("ab"), start_new_session=True, text=True)
    assert process.stdout.readline().strip() == "ready", "the raw echo did not start; see raw.log"
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def measure(mode: str, amqp_uri: str, target: str, callers: int, server: subprocess.Popen, kit: bool = False,
            seconds: float = SECONDS, warm_up: float = WARM_UP) -> dict[str, Any]:
    """One load process: ``callers`` callers for ``seconds`` after ``warm_up``; its JSON report."""
    command = [sys.executable, "-W", "ignore", "-m", "tests.perf.tax_echo", "load", mode, amqp_uri, target,
               str(callers), str(warm_up), str(seconds), str(server.pid), *(["kit"] if kit else [])]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=seconds + 120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["error_count"] == 0, report
    return report


def wait_ready(amqp_uri: str, echoes: dict[str, tuple[str, str, subprocess.Popen, bool]]) -> None:
    """Each echo answered a short load once (the services take a few seconds to start)."""
    for _name, (mode, target, process, kit) in echoes.items():
        for attempt in range(30):
            assert process.poll() is None, f"{target} stopped; see its log"
            try:
                measure(mode, amqp_uri, target, 1, process, kit, seconds=0.2, warm_up=0.1)
                if os.environ.get("CARELOOP_PERF_PROFILE") and mode == "nameko":
                    process.send_signal(signal.SIGUSR1)  # the profile starts now: steady state only
                break
            except AssertionError:
                if attempt == 29:
                    raise


def table(rows: list[tuple[str, int, int, dict[str, Any]]]) -> str:
    lines = ["| echo | callers | round | calls/s | p50 / p99 ms | CPU ms/call: callers + echo |", "| --- " * 6 + "|"]
    for name, callers, round_number, m in rows:
        lines.append(f"| {name} | {callers} | {round_number} | {m['per_second']} | {m['p50_ms']} / {m['p99_ms']} "
                     f"| {m['caller_cpu_ms']} + {m['server_cpu_ms']} |")
    return "\n".join(lines)


@pytest.mark.timeout(1800)
def test_nameko_echo_against_the_raw_amqp_round_trip(amqp_uri, tmp_path):
    raw = start_raw(tmp_path, amqp_uri)
    default = start_echo(tmp_path, "perf_echo", "tests.perf.echo_service:EchoService", amqp_uri, False)
    kit = start_echo(tmp_path, "perf_echo_kit_serializer", "tests.perf.echo_service:KitSerializerEcho", amqp_uri, True)
    service = start_echo(tmp_path, "perf_kit_echo", "tests.perf.echo_service:KitEcho", amqp_uri, True, **KIT_SERVICE)
    echoes = {"raw AMQP": ("raw", RAW_QUEUE, raw, False),
              "nameko echo, default serializer": ("nameko", "perf_echo", default, False),
              "nameko echo, kit serializer": ("nameko", "perf_echo_kit_serializer", kit, True),
              "kit service echo": ("nameko", "perf_kit_echo", service, True)}
    if BEFORE:  # the kit as it was, from a checkout of older code, on nameko's default serializer
        for module in ("echo_service.py", "profiled.py"):
            shutil.copy(REPO / "tests" / "perf" / module, BEFORE / "tests" / "perf" / module)
        before = start_echo(tmp_path, "perf_kit_echo_before", "tests.perf.echo_service:KitEchoBefore", amqp_uri,
                            BEFORE_KIT_SERIALIZER, cwd=BEFORE, **KIT_SERVICE)
        echoes["kit service echo, before"] = ("nameko", "perf_kit_echo_before", before, BEFORE_KIT_SERIALIZER)
    try:
        wait_ready(amqp_uri, echoes)
        rows, ratios = [], {}
        for round_number in range(1, ROUNDS + 1):
            for callers in (1, 20):
                figures = {name: measure(mode, amqp_uri, target, callers, process, kit_serializer)
                           for name, (mode, target, process, kit_serializer) in echoes.items()}
                rows += [(name, callers, round_number, m) for name, m in figures.items()]
                raw_rate = figures["raw AMQP"]["per_second"]
                for name in list(echoes)[1:]:
                    ratios.setdefault((name, callers), []).append(round(figures[name]["per_second"] / raw_rate, 2))
        print("\nFRAMEWORK TAX (load average {:.1f} {:.1f} {:.1f})\n".format(*os.getloadavg()) + table(rows))
        for (name, callers), values in ratios.items():
            print(f"{name} / raw AMQP at {callers} callers, each round: {values} (median {statistics.median(values)})")
        kit_ratios = ratios[("nameko echo, kit serializer", 20)] + ratios[("nameko echo, kit serializer", 1)]
        print("target nameko echo >= 0.5 x raw AMQP with the kit's serializer: "
              + ("met" if statistics.median(kit_ratios) >= 0.5 else "NOT met")
              + f" (median {statistics.median(kit_ratios)})")
    finally:
        for _mode, _target, process, _kit in echoes.values():
            stop(process)


@pytest.mark.timeout(1800)
def test_worker_pool_sizes(amqp_uri, tmp_path):
    """20 callers against the kit service echo with each ``max_workers`` (= prefetch), beside the raw echo;
    one echo at a time (they share the queue's name), started afresh for each measure."""
    raw = start_raw(tmp_path, amqp_uri)
    try:
        rows = []
        for round_number in range(1, ROUNDS + 1):
            rows.append(("raw AMQP", 20, round_number, measure("raw", amqp_uri, RAW_QUEUE, 20, raw)))
            for workers in WORKERS:
                process = start_echo(tmp_path, f"perf_kit_echo_w{workers}", "tests.perf.echo_service:KitEcho",
                                     amqp_uri, True, max_workers=workers, **KIT_SERVICE)
                try:
                    wait_ready(amqp_uri, {"echo": ("nameko", "perf_kit_echo", process, True)})
                    rows.append((f"kit service echo, max_workers {workers}", 20, round_number,
                                 measure("nameko", amqp_uri, "perf_kit_echo", 20, process, True)))
                finally:
                    stop(process)
        print("\nWORKER POOL SIZES (load average {:.1f} {:.1f} {:.1f})\n".format(*os.getloadavg()) + table(rows))
    finally:
        stop(raw)


EVENT_RATE = float(os.environ.get("TAX_EVENT_RATE", "100"))
EVENT_SECONDS = float(os.environ.get("TAX_EVENT_SECONDS", "20"))
HANDLERS = {"nameko event_handler (bare)": ("perf_bare_handler", "BareEventHandler", False),
            "kit event_handler": ("perf_kit_handler", "KitEventHandler", True),
            "kit event_handler + outbox event": ("perf_kit_relay", "KitRelayHandler", True)}
"""name -> (service, class in tests/perf/echo_service.py, whether it has a database)."""


def handler_queue(service: str) -> str:
    return f"evt-perf_source-ticked--{service}.ticked"


def pg_backends_cpu(database_urls: list[str]) -> float:
    """CPU seconds so far of the PostgreSQL backends serving ``database_urls`` (their pooled connections)."""
    import psycopg2
    from sqlalchemy.engine import make_url

    names = [make_url(url).database for url in database_urls]
    connection = psycopg2.connect(PG_ADMIN_URL)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s)", (names,))
            pids = [row[0] for row in cursor.fetchall()]
    finally:
        connection.close()
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (OSError, ValueError, IndexError):  # a backend that ended meanwhile
            pass
    return total


def ready_in(amqp_uri: str, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of ``queue``."""
    from kombu import Connection

    with Connection(amqp_uri) as connection:
        _name, ready, consumers = connection.default_channel.queue_declare(queue, passive=True)
    return ready, consumers


def publish_events(amqp_uri: str, rate: float, count: int) -> dict[str, Any]:
    command = [sys.executable, "-W", "ignore", "-m", "tests.perf.tax_echo", "publish", amqp_uri, "perf_source",
               "ticked", str(rate), str(count)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=count / rate + 120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(1800)
def test_event_handler_tax(amqp_uri, databases, tmp_path):
    handlers = dict(HANDLERS)
    if BEFORE:
        for module in ("echo_service.py", "profiled.py"):
            shutil.copy(REPO / "tests" / "perf" / module, BEFORE / "tests" / "perf" / module)
        handlers["kit event_handler, before"] = ("perf_kit_handler_before", "KitEventHandlerBefore", True)
        handlers["kit event_handler + outbox event, before"] = ("perf_kit_relay_before", "KitRelayHandlerBefore", True)
    urls: dict[str, str] = {}
    processes: dict[str, subprocess.Popen] = {}
    try:
        for name, (service, cls, with_db) in handlers.items():
            settings: dict[str, Any] = {}
            if with_db:
                urls[name] = databases.fresh("postgresql", "notifications")
                settings = {**KIT_SERVICE, "DATABASE_URL": urls[name]}
            processes[name] = start_echo(tmp_path, service, f"tests.perf.echo_service:{cls}", amqp_uri, True,
                                         cwd=BEFORE if name.endswith(", before") else REPO, **settings)
        for name, (service, _cls, _db) in handlers.items():
            def consuming(name: str = name, service: str = service) -> bool:
                assert processes[name].poll() is None, f"{service} stopped; see its log in {tmp_path}"
                try:
                    return ready_in(amqp_uri, handler_queue(service))[1] > 0
                except Exception:  # not declared yet
                    return False
            wait_for(consuming, timeout=60, interval=0.2, message=f"{service} consuming")

        handled = {name: 0 for name in handlers}

        def run(count: int, rate: float) -> dict[str, Any]:
            """Publish ``count`` events at ``rate``; CPU per event of each handler until all are handled."""
            cpu_before = {name: cpu_seconds(process.pid) for name, process in processes.items()}
            pg_before = {name: pg_backends_cpu([url]) for name, url in urls.items()}
            published = publish_events(amqp_uri, rate, count)
            for name in handlers:
                handled[name] += count
            for name, (service, _cls, with_db) in handlers.items():
                if with_db:
                    wait_for(lambda url=urls[name], total=handled[name]: scalar(
                        url, "SELECT count(*) FROM kit_inbox") >= total, timeout=120, interval=0.2,
                             message=f"{service} handling every event")
                else:
                    wait_for(lambda service=service: ready_in(amqp_uri, handler_queue(service))[0] == 0, timeout=120,
                             interval=0.2, message=f"{service} taking every event")
                if "outbox" in name:
                    wait_for(lambda url=urls[name], total=handled[name]: scalar(
                        url, "SELECT count(*) FROM kit_outbox WHERE sent_at IS NOT NULL") >= total, timeout=120,
                             interval=0.2, message=f"{service}'s relay publishing every event")
            figures = {}
            for name, process in processes.items():
                own = (cpu_seconds(process.pid) - cpu_before[name]) / count * 1000
                pg = (pg_backends_cpu([urls[name]]) - pg_before[name]) / count * 1000 if name in urls else 0.0
                figures[name] = {"process_ms": round(own, 3), "pg_ms": round(pg, 3)}
            return {"published": published, "figures": figures}

        run(int(EVENT_RATE * 2), EVENT_RATE)  # warm: pools filled, statements cached
        if os.environ.get("CARELOOP_PERF_PROFILE"):
            for process in processes.values():
                process.send_signal(signal.SIGUSR1)
        rows = []
        for round_number in range(1, ROUNDS + 1):
            result = run(int(EVENT_RATE * EVENT_SECONDS), EVENT_RATE)
            rows.append((round_number, result))
        lines = [f"EVENT HANDLER TAX: {EVENT_RATE:g} events/s for {EVENT_SECONDS:g} s a round, open loop "
                 "(load average {:.1f} {:.1f} {:.1f})".format(*os.getloadavg()),
                 "| handler | CPU ms/event: process, each round | PostgreSQL backends ms/event, each round |",
                 "| --- | --- | --- |"]
        for name in handlers:
            own = " / ".join(str(result["figures"][name]["process_ms"]) for _n, result in rows)
            pg = " / ".join(str(result["figures"][name]["pg_ms"]) for _n, result in rows)
            lines.append(f"| {name} | {own} | {pg} |")
        lines.append("published: " + ", ".join(f"{result['published']['published']} in "
                                                f"{result['published']['seconds']} s" for _n, result in rows))
        print("\n" + "\n".join(lines))
    finally:
        for process in processes.values():
            stop(process)
