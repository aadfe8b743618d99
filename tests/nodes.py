"""Infrastructure a test may break on purpose: a private RabbitMQ node, a private PostgreSQL cluster and a
TCP proxy it can cut.

Never stop the machine's shared RabbitMQ (127.0.0.1:5672) or PostgreSQL (127.0.0.1:5432): a test that needs
the broker or the database to go away starts its own here, on free ports and with its own data folder, and
stops that one.

``RabbitNode`` — a RabbitMQ node of the test's own (no management plugin), stopped and started again on
the same ports and the same data folder, so durable queues and persistent messages survive, as in a
real broker restart::

    from tests.nodes import RabbitNode, TcpProxy

    node = RabbitNode(tmp_path / "rabbit")   # ports chosen free now; nothing started yet
    node.start()                             # boots (or boots again); returns once AMQP accepts connections
    node.amqp_uri()                          # "pyamqp://guest:guest@127.0.0.1:<port>/" (``vhost=`` for another)
    node.stop()                              # graceful shutdown (clients see the connection close)
    node.kill()                              # SIGKILL of the node's processes (a crash; no goodbye to clients)
    node.start()                             # same port, same data: durable queues and messages are back
    node.ctl("list_queues", "name", "messages")   # ``rabbitmqctl -n <node> ...``, returns stdout
    node.queue_depths()                      # {queue name: messages ready + unacknowledged}
    node.running                             # whether the node's process is alive
    node.close()                             # stop if running; delete the data folder if the node made it

    with RabbitNode() as node: ...           # a temporary folder, started on entry, closed on exit

A start takes ~6 s and a stop ~3 s on a 2-core machine. The pytest fixture ``rabbit_node`` (import it
into a conftest or test module) gives a started node per test, closed after it.

``TcpProxy`` — a TCP forwarder in a process of its own (so a busy test process cannot slow it), which the
test switches between three states; put it between a client and a server (e.g. a service and its broker
or database)::

    proxy = TcpProxy(node.port)     # target 127.0.0.1:<port> (``target_host=`` for another host)
    proxy.start()                   # listens on a free port: point the client at ``proxy.port``
    proxy.cut()                     # resets every open connection and refuses new ones (ECONNREFUSED)
    proxy.blackhole()               # connections stay open but nothing passes either way (a silent partition);
                                    # new connections are accepted and hang
    proxy.restore()                 # forwards again (new connections; a blackholed one resumes)
    proxy.connections               # how many client connections are open now
    proxy.close()                   # ends the proxy process and every connection through it

Every switch returns once the proxy process has applied it. Both classes are context managers.

``PostgresCluster`` — a PostgreSQL cluster of the test's own (the machine's ``initdb``/``pg_ctl`` from
/usr/lib/postgresql/<version>/bin, trust authentication, run as user ``postgres`` when we are root), on a
free port with its data in a temporary folder of its own (as root: the folder is the postgres user's, so
leave ``base_dir`` out — pytest keeps its own temporary folders root-only); stopped and started again on the
same data::

    cluster = PostgresCluster()              # port chosen free now; nothing created yet
    cluster.start()                          # initdb on first start; returns once it accepts connections
    cluster.create_database("points")        # and ``cluster.url("points")`` -> a SQLAlchemy URL
    cluster.url("points", port=proxy.port)   # the same database reached another way (a ``TcpProxy``)
    cluster.stop()                           # fast shutdown (clients' sessions are ended)
    cluster.stop(mode="immediate")           # a crash: no checkpoint, recovery on the next start
    cluster.restart(down_for=5)
    cluster.close()                          # stop; delete the folder if the cluster made it
"""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

RABBITMQ_BIN = Path(os.environ.get("CARELOOP_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
"""Where ``rabbitmq-server`` and ``rabbitmqctl`` are (Debian's wrappers in /usr/sbin switch to the rabbitmq
user and read /etc/rabbitmq; the scripts behind them do neither)."""


def free_port() -> int:
    """A TCP port nobody listens on now (the kernel's choice; taken by the caller a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class RabbitNode:
    """A private RabbitMQ node: ``start``, ``stop``/``kill``, ``start`` again on the same data."""

    def __init__(self, base_dir: Path | str | None = None, *, name: str | None = None, port: int | None = None,
                 dist_port: int | None = None) -> None:
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="careloop-rabbit-"))
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.name = name or f"careloop-test-{secrets.token_hex(4)}@localhost"
        self.port = port or free_port()
        self.dist_port = dist_port or free_port()
        self._process: subprocess.Popen | None = None
        self._prepare()

    # -- files ------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        home = self.base_dir / "home"
        for folder in ("home", "mnesia", "log"):
            (self.base_dir / folder).mkdir(exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)
        (self.base_dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            "disk_free_limit.absolute = 10MB\n")
        (self.base_dir / "enabled_plugins").write_text("[].\n")
        (self.base_dir / "rabbitmq-env.conf").write_text("")

    def environment(self) -> dict[str, str]:
        """The environment ``rabbitmq-server`` and ``rabbitmqctl`` run with for this node."""
        base = self.base_dir
        return {
            **os.environ,
            "HOME": str(base / "home"),  # the Erlang cookie of this node, for the server and rabbitmqctl
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "node.pid"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),  # not /etc/rabbitmq's (it names the shared node)
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    # -- life cycle -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def amqp_uri(self, vhost: str = "/", port: int | None = None) -> str:
        """The URI of this node (``port``: reach it another way, e.g. through a ``TcpProxy``)."""
        path = "" if vhost == "/" else vhost
        return f"pyamqp://guest:guest@127.0.0.1:{port or self.port}/{path}"

    def start(self, timeout: float = 90) -> None:
        """Boot the node (again, on the same data) and return once it accepts AMQP connections."""
        if self.running:
            return
        if _port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken by someone else; cannot start {self.name}")
        output = open(self.base_dir / "log" / "console.log", "ab")
        try:
            self._process = subprocess.Popen([str(RABBITMQ_BIN / "rabbitmq-server")], env=self.environment(),
                                             cwd=self.base_dir, stdout=output, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            output.close()
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self._process.poll() is not None:
                raise RuntimeError(f"RabbitMQ node {self.name} exited while starting (code "
                                   f"{self._process.returncode}):\n{self.console_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"RabbitMQ node {self.name} did not start in {timeout} s:\n{self.console_tail()}")
            time.sleep(0.2)
        self.ctl("await_startup", "--timeout", str(int(max(deadline - time.monotonic(), 5))))

    def stop(self, timeout: float = 60) -> None:
        """Shut the node down gracefully (clients get a connection-close) and wait until it is gone."""
        if not self.running:
            return
        try:
            self.ctl("shutdown", "--timeout", str(int(timeout)), timeout=timeout + 10)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.kill()
            return
        self._reap(timeout)

    def kill(self) -> None:
        """SIGKILL the node's processes (a crash: clients learn of it only from their sockets)."""
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._reap(30)

    def _reap(self, timeout: float) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        deadline = time.monotonic() + timeout
        while _port_open(self.port) and time.monotonic() < deadline:  # Erlang children may linger a moment
            time.sleep(0.1)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down ``down_for`` seconds, start again."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def close(self) -> None:
        """Stop the node if it runs; delete its folder if this object made it."""
        try:
            self.stop()
        finally:
            if self._own_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- looking inside ---------------------------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """Run ``rabbitmqctl -n <this node> <args>``; returns its output (raises on failure)."""
        result = subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", self.name, *args],
                                env=self.environment(), capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, result.args, result.stdout, result.stderr)
        return result.stdout

    def queue_depths(self, vhost: str = "/") -> dict[str, int]:
        """Messages in each queue of ``vhost``, ready and unacknowledged together."""
        depths = {}
        for line in self.ctl("list_queues", "-p", vhost, "--no-table-headers", "name", "messages").splitlines():
            name, _, count = line.rpartition("\t")
            if name:
                depths[name] = int(count)
        return depths

    def console_tail(self, lines: int = 30) -> str:
        path = self.base_dir / "log" / "console.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def __enter__(self) -> RabbitNode:
        self.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


@pytest.fixture
def rabbit_node(tmp_path: Path) -> Iterator[RabbitNode]:
    """A started private RabbitMQ node for one test (stopped and removed after it)."""
    node = RabbitNode(tmp_path / "rabbit")
    node.start()
    try:
        yield node
    finally:
        node.close()


# -- a private PostgreSQL cluster ------------------------------------------------------------------

def _postgres_bin() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin (``CARELOOP_PG_BIN`` to choose another)."""
    if os.environ.get("CARELOOP_PG_BIN"):
        return Path(os.environ["CARELOOP_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda path: int(path.parts[-3]))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)")
    return found[-1].parent


class PostgresCluster:
    """A private PostgreSQL cluster: ``start``, ``stop``, ``start`` again on the same data."""

    def __init__(self, base_dir: Path | str | None = None, *, port: int | None = None) -> None:
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="careloop-pg-"))
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.data = self.base_dir / "data"
        self.socket_dir = self.base_dir / "socket"
        self.log = self.base_dir / "postgresql.log"
        self.bin = _postgres_bin()
        # initdb refuses to run as root: the server runs as the postgres user then, and owns the folder
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.running = False

    def _run(self, *argv: str, timeout: float = 120) -> str:
        result = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=timeout,
                                cwd=self.base_dir)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr or result.stdout}\n"
                               f"{self.log_tail()}")
        return result.stdout

    def start(self, timeout: float = 90) -> None:
        """initdb on the first start; start the server; return once it accepts connections."""
        if self.running:
            return
        if _port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken by someone else; cannot start PostgreSQL there")
        if not (self.data / "PG_VERSION").exists():
            self.socket_dir.mkdir(exist_ok=True)
            if self._as:
                shutil.chown(self.base_dir, "postgres")
                shutil.chown(self.socket_dir, "postgres")
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                           f"unix_socket_directories = '{self.socket_dir}'\nmax_connections = 400\n"
                           "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(timeout)),
                  "start", timeout=timeout + 10)
        self.running = True

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """``fast`` ends the clients' sessions and shuts down cleanly; ``immediate`` is a crash."""
        if not self.running:
            return
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", str(int(timeout)), "stop",
                  timeout=timeout + 10)
        self.running = False

    def restart(self, down_for: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_for)
        self.start()

    def url(self, database: str, port: int | None = None) -> str:
        """A SQLAlchemy URL of ``database`` (``port``: reach it another way, e.g. through a ``TcpProxy``)."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{port or self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> list[tuple]:
        """Run one statement in autocommit (CREATE DATABASE and the like); rows if it returns any."""
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall()) if cursor.description else []
        finally:
            connection.close()

    def create_database(self, name: str) -> str:
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        try:
            if self.running:
                self.stop("immediate")
        finally:
            if self._own_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


# -- the TCP proxy --------------------------------------------------------------------------------

class TcpProxy:
    """A TCP forwarder to ``target_host:target_port`` that a test can cut, blackhole and restore."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> None:
        if self._process is not None:
            return
        self._process = subprocess.Popen(
            [sys.executable, "-u", __file__, "proxy", str(self.port), self.target[0], str(self.target[1])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        self._expect("ready", timeout)

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until ``restore``."""
        self._command("cut")

    def blackhole(self) -> None:
        """Keep connections open but pass nothing, either way, until ``restore``."""
        self._command("blackhole")

    def restore(self) -> None:
        self._command("open")

    @property
    def connections(self) -> int:
        return int(self._command("count"))

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        process.stdout.close()

    def _command(self, word: str, timeout: float = 10) -> str:
        if self._process is None:
            raise RuntimeError("the proxy is not started")
        self._process.stdin.write(word + "\n")
        self._process.stdin.flush()
        return self._expect("ok", timeout)

    def _expect(self, word: str, timeout: float) -> str:
        # the proxy answers at once; a line that does not come means it died
        line = self._process.stdout.readline().strip()
        if not line.startswith(word):
            raise RuntimeError(f"the TCP proxy answered {line!r}, expected {word!r}")
        return line[len(word):].strip()

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN: the peer sees "connection reset", as when a link or host dies."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.close()


def stop_process_groups(processes: list[subprocess.Popen], timeout: float = 15) -> None:
    """SIGTERM every process group still running, then wait for each; SIGKILL (and reap) one that does not
    end within ``timeout`` (processes started with ``start_new_session=True``)."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _serve_proxy(port: int, target: tuple[str, int]) -> None:  # pragma: no cover - runs in the proxy process
    """The proxy process: one selector loop; commands on stdin (open, cut, blackhole, count), answers on stdout."""
    selector = selectors.DefaultSelector()
    peers: dict[socket.socket, socket.socket] = {}
    mode = "open"
    listener: socket.socket | None = None

    def listen() -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, "accept")
        return sock

    def drop(sock: socket.socket) -> None:
        other = peers.pop(sock, None)
        for each in (sock, other):
            if each is None:
                continue
            peers.pop(each, None)
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(each)
            _reset(each)

    def watch(sock: socket.socket) -> None:
        with contextlib.suppress(KeyError):
            selector.register(sock, selectors.EVENT_READ, "pipe")

    listener = listen()
    stdin = sys.stdin
    selector.register(stdin, selectors.EVENT_READ, "command")
    print("ready", flush=True)
    while True:
        for key, _events in selector.select():
            if key.data == "command":
                line = stdin.readline()
                if not line:
                    for sock in list(peers):
                        drop(sock)
                    return
                word = line.strip()
                if word == "count":
                    print(f"ok {len(peers) // 2}", flush=True)
                    continue
                if word == "cut":
                    for sock in list(peers):
                        drop(sock)
                    if listener is not None:
                        selector.unregister(listener)
                        listener.close()
                        listener = None
                elif word == "blackhole":
                    for sock in list(peers):
                        with contextlib.suppress(KeyError, ValueError):
                            selector.unregister(sock)
                elif word == "open":
                    for sock in list(peers):
                        watch(sock)
                if word in ("open", "blackhole") and listener is None:
                    listener = listen()
                mode = word if word in ("open", "cut", "blackhole") else mode
                print(f"ok {mode}", flush=True)
            elif key.data == "accept":
                try:
                    client, _address = key.fileobj.accept()
                except BlockingIOError:
                    continue
                try:
                    upstream = socket.create_connection(target, timeout=5)
                except OSError:
                    _reset(client)
                    continue
                client.setblocking(False)
                upstream.setblocking(False)
                peers[client], peers[upstream] = upstream, client
                if mode == "open":
                    watch(client)
                    watch(upstream)
            else:
                sock = key.fileobj
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    drop(sock)
                    continue
                try:
                    peers[sock].setblocking(True)
                    peers[sock].sendall(data)
                    peers[sock].setblocking(False)
                except (OSError, KeyError):
                    drop(sock)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "proxy":  # pragma: no cover
    _serve_proxy(int(sys.argv[2]), (sys.argv[3], int(sys.argv[4])))
