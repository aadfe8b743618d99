"""The suite as real processes on a broker and a database of its own, with every connection through a proxy.

``Stack`` starts a private RabbitMQ node and a private PostgreSQL cluster (``tests.nodes``), migrates one
database per service, declares the event topology, and runs each service and the gateway as
``nameko run --config deploy/config.yml <target>`` under the local runner's ``Supervisor`` (so a process that
dies is started again, as in ``make run``). Each service's broker connection and its database connection go
through a ``TcpProxy`` of its own, which a scenario can cut. Nothing here touches the machine's shared
RabbitMQ or PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from deploy.entrypoint import processes
from deploy.local.supervise import Child, Supervisor
from tests.nodes import PostgresCluster, RabbitNode, TcpProxy, free_port

REPO = Path(__file__).resolve().parents[2]
NAMEKO = str(Path(sys.executable).parent / "nameko")
SERVICES = list(processes())  # members, points, records, notifications, gateway (deploy/services.yml)
PROFILES = os.environ.get("CARELOOP_STACK_PROFILE", "")
"""A folder: every process runs under cProfile and leaves ``<folder>/<process>.prof`` when the stack closes,
counting the CPU time spent after ``Stack.profile_start()`` (the steady state, not start-up)."""


class Stack:
    """Every CareLoop process, supervised, on a private broker and database, each link through a proxy (unless
    ``proxied=False``: the benchmarks of tests/perf/test_flow_perf.py)."""

    def __init__(self, base: Path, proxied: bool = True, env: dict[str, dict[str, str]] | None = None) -> None:
        """``proxied=False``: every link goes straight to the broker and the database (benchmarks: no proxy
        processes on the CPUs; nothing can then be cut). ``env``: extra environment per service."""
        self.base = base
        self.proxied = proxied
        self.env = env or {}
        self.logs = base / "log"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.rabbit = RabbitNode(base / "rabbit")
        self.pg = PostgresCluster()  # a folder of its own: pytest keeps its tmp root-only, the server runs as postgres
        self.broker_proxies: dict[str, TcpProxy] = {}
        self.db_proxies: dict[str, TcpProxy] = {}
        self.gateway_urls: list[str] = []
        self.supervisor = Supervisor([], cwd=REPO, runner_log=self.logs / "runner.log",
                                     out=open(self.logs / "runner.out", "a"))  # noqa: SIM115 - closed in close()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.api_key = ""
        self.integration: tuple[str, str] = ("", "")
        self.last_ready = ""

    # -- starting -----------------------------------------------------------------------------------

    def start(self) -> None:
        from services.kit.migrate import upgrade

        self.rabbit.start()
        self.pg.start()
        for service in SERVICES:
            self.pg.create_database(service)
            upgrade(service, self.pg.url(service))
            if self.proxied:
                self.broker_proxies[service] = TcpProxy(self.rabbit.port)
                self.db_proxies[service] = TcpProxy(self.pg.port)
                self.broker_proxies[service].start()
                self.db_proxies[service].start()
        subprocess.run([sys.executable, "-W", "ignore", "-m", "services.kit.topology"], cwd=REPO, check=True,
                       env=dict(os.environ, AMQP_URI=self.rabbit.amqp_uri()), capture_output=True)
        for service in SERVICES:
            self.add_process(service)
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()
        self.wait_ready(120)
        self._credentials()

    def add_process(self, service: str, replica: int = 1) -> Child:
        """Start (and supervise) one more process of ``service``; a gateway replica listens on its own port."""
        target = processes()[service]["target"]
        name = service if replica == 1 else f"{service}-{replica}"
        broker, database = self.broker_proxies.get(service), self.db_proxies.get(service)
        env = dict(os.environ, SERVICE_NAME=service, METRICS_PORT=str(free_port()), LOG_LEVEL="WARNING",
                   PYTHONWARNINGS="ignore",
                   AMQP_URI=self.rabbit.amqp_uri(port=broker.port if broker else None),
                   DATABASE_URL=self.pg.url(service, port=database.port if database else None))
        if service == "records":
            env["AUDIT_SETTLE_MINUTES"] = "0"  # the checks run after a drain: nothing is in flight any more
        if service == "interfaces":  # replicas side by side, beside a demo that may hold 2575
            env["HL7_MLLP_PORT"] = "0"
        if service == "gateway":
            port = free_port()
            env["WEB_SERVER_ADDRESS"] = f"127.0.0.1:{port}"
            self.gateway_urls.append(f"http://127.0.0.1:{port}")
        env.update(self.env.get(service, {}))
        command = [NAMEKO, "run", "--config", "deploy/config.yml", target]
        if PROFILES:  # under cProfile counting CPU time from profile_start() on (tests/perf/profiled.py)
            command = [sys.executable, "-m", "tests.perf.profiled", str(Path(PROFILES) / f"{name}.prof"), *command[1:]]
        child = Child(name, command, env=env, log_path=self.logs / f"{name}.log")
        with self._lock:
            self.supervisor.children[name] = child
            self.supervisor._start(child)
        return child

    def remove_process(self, name: str) -> None:
        """Stop a process for good (SIGTERM, then SIGKILL): the supervisor forgets it first."""
        with self._lock:
            child = self.supervisor.children.pop(name)
        if name.startswith("gateway-"):
            port = child.env["WEB_SERVER_ADDRESS"].rsplit(":", 1)[1]
            self.gateway_urls.remove(f"http://127.0.0.1:{port}")
        if child.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGTERM)
            try:
                child.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait(timeout=10)

    def _supervise(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.supervisor.poll()
            time.sleep(0.2)

    def _credentials(self) -> None:
        from gateway.auth import issue_api_key, webhooks
        from services.kit.db import Store

        store = Store(self.pg.url("gateway"), pool_size=1)
        try:
            self.api_key = issue_api_key(store, "fault load", "group_admin", ("*",)).key
            _view, secret = webhooks.create_integration(store, "his-faults", "HIS (fault suite)", "integration", "*",
                                                        None, None)
            self.integration = ("his-faults", secret)
        finally:
            store.dispose()

    # -- looking ------------------------------------------------------------------------------------

    def ready(self) -> bool:
        try:
            response = requests.get(self.gateway_urls[0] + "/ready", timeout=10)
        except requests.RequestException as error:
            self.last_ready = repr(error)
            return False
        self.last_ready = f"{response.status_code} {response.text[:500]}"
        return response.status_code == 200

    def wait_ready(self, seconds: float) -> float:
        """Seconds until the gateway's /ready answers 200 (every dependency answers); fails after ``seconds``."""
        started = time.monotonic()
        while not self.ready():
            if time.monotonic() - started > seconds:
                raise AssertionError(f"the suite was not ready in {seconds:.0f} s (/ready: {self.last_ready}; "
                                     f"logs: {self.logs}):\n{self.log_tails()}")
            time.sleep(0.25)
        return time.monotonic() - started

    def profile_start(self) -> None:
        """Profiled processes (``CARELOOP_STACK_PROFILE``) start counting now; nothing otherwise."""
        if PROFILES:
            for child in self.children().values():
                with contextlib.suppress(ProcessLookupError, TypeError):
                    os.kill(child.pid, signal.SIGUSR1)

    def children(self) -> dict[str, Child]:
        with self._lock:
            return dict(self.supervisor.children)

    def dead(self) -> list[str]:
        """Processes not running now (a restart pending counts as dead)."""
        return [name for name, child in self.children().items() if not child.running()]

    def restarts(self) -> dict[str, int]:
        return {name: child.restarts for name, child in self.children().items()}

    def rss_kib(self) -> dict[str, int]:
        """Each process's resident memory now, from /proc/<pid>/status."""
        sizes = {}
        for name, child in self.children().items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes[name] = int(line.split()[1])
        return sizes

    def sql(self, service: str, statement: str) -> list[tuple]:
        """Rows of ``statement`` on a service's database, read directly (not through its proxy)."""
        return self.pg.execute(statement, service)

    def queue_depths(self) -> dict[str, int]:
        return self.rabbit.queue_depths()

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for name in self.children():
            path = self.logs / f"{name}.log"
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name}.log\n" + "\n".join(tail))
        return "\n".join(out)

    # -- stopping -----------------------------------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.supervisor.stop_all(timeout=15)
        finally:
            for proxy in [*self.broker_proxies.values(), *self.db_proxies.values()]:
                proxy.close()
            self.supervisor.out.close()
            self.rabbit.close()
            self.pg.close()
