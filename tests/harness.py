"""Fixtures and helpers behind tests/conftest.py (kept apart so the conftest stays readable)."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import eventlet
import pytest
from kombu import Connection

REPO = Path(__file__).resolve().parents[1]
RUN_ID = uuid.uuid4().hex[:8]
RABBIT_HOST = os.environ.get("CARELOOP_TEST_RABBIT_HOST", "127.0.0.1:5672")
PG_ADMIN_URL = os.environ.get("CARELOOP_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
_counter = itertools.count()


def pg_admin(sql: str) -> None:
    """One statement on the test server's admin database, outside a transaction (``CREATE``/``DROP DATABASE``)."""
    import psycopg2

    connection = psycopg2.connect(PG_ADMIN_URL)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


@contextlib.contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A database of its own on the test server for a measurement (its URL), dropped after; the kit's green wait
    callback set aside meanwhile (psycopg2's ``COPY`` does not run under it)."""
    import psycopg2.extensions

    green = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(None)
    try:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg_admin(f'CREATE DATABASE "{name}"')
        try:
            yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        psycopg2.extensions.set_wait_callback(green)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def amqp_uri() -> Iterator[str]:
    vhost = f"careloop-test-{RUN_ID}"
    try:
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.exit(f"cannot create a RabbitMQ vhost for the tests ({error}); is RabbitMQ running and "
                    "rabbitmqctl on PATH? `make test` starts it when it is installed.", returncode=3)
    uri = f"pyamqp://guest:guest@{RABBIT_HOST}/{vhost}"
    yield uri
    try:
        _rabbitmqctl("delete_vhost", vhost)
    except (OSError, subprocess.CalledProcessError):
        pass


DELETE_AT_MOST = 1000  # rows: a table emptied by DELETE below this, by TRUNCATE from it (``Databases.give_back``)


class Databases:
    """Fresh, migrated databases per test, cloned from a template per backend and service.

    On PostgreSQL a database that ``start_service`` made for a test is emptied when the test's services have
    stopped (one ``TRUNCATE`` of every table but ``alembic_version``) and handed to a later test, instead of
    a ``CREATE DATABASE`` per service and test and a ``DROP DATABASE`` (a checkpoint) per database at the
    end: measured here, create 0.11-0.17 s and drop 0.2-0.5 s apiece, the emptying ~0.05 s."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.templates: dict[tuple[str, str], str] = {}
        self.pg_databases: list[str] = []
        self.idle: dict[str, list[str]] = {}  # service -> emptied databases ready for another test
        self.tables: dict[str, list[str]] = {}  # service -> its template's tables
        self.reused = 0

    def _pg_admin(self, sql: str) -> None:
        pg_admin(sql)

    def _pg_url(self, name: str) -> str:
        return PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://") + "/" + name

    def _template(self, backend: str, service: str) -> str:
        key = (backend, service)
        if key not in self.templates:
            from services.kit.migrate import upgrade

            if backend == "sqlite":
                path = self.tmp / f"template-{service}.db"
                upgrade(service, f"sqlite:///{path}")
                self.templates[key] = str(path)
            else:
                name = f"cl_{RUN_ID}_tpl_{service}"
                self._pg_admin(f'CREATE DATABASE "{name}"')
                self.pg_databases.append(name)
                upgrade(service, self._pg_url(name))
                self.tables[service] = self._tables_of(name)
                self.templates[key] = name
        return self.templates[key]

    def fresh(self, backend: str, service: str) -> str:
        template = self._template(backend, service)
        number = next(_counter)
        if backend == "sqlite":
            path = self.tmp / f"{service}-{number}.db"
            shutil.copyfile(template, path)
            return f"sqlite:///{path}"
        name = f"cl_{RUN_ID}_{service}_{number}"
        self._pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self.pg_databases.append(name)
        return self._pg_url(name)

    def borrow(self, backend: str, service: str) -> str:
        """A fresh database for ``service``: on PostgreSQL an emptied one when there is one, else a new one."""
        if backend == "postgresql" and self.idle.get(service):
            self.reused += 1
            return self._pg_url(self.idle[service].pop())
        return self.fresh(backend, service)

    def _tables_of(self, name: str) -> list[str]:
        import psycopg2

        connection = psycopg2.connect(self._pg_url(name).replace("+psycopg2", ""))
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
                return [row[0] for row in cursor.fetchall()]
        finally:
            connection.close()

    def give_back(self, service: str, url: str) -> None:
        """Empty a PostgreSQL database a test has finished with and keep it for the next test of ``service``.

        Only if its tables are still the template's (a test that changed the schema leaves it to be dropped)
        and nothing holds a lock on them (``lock_timeout``: a stuck session leaves it to be dropped too).

        Only the tables that hold a row are emptied, and the sequences a test advanced are set back to their
        start: the state ``TRUNCATE ... RESTART IDENTITY CASCADE`` of every table left. A ``TRUNCATE`` makes
        new files for each table, index and TOAST table, so emptying a service's ~30 tables that way cost
        0.3-0.7 s a database on the loaded machine although a test writes to a few. A table of a few rows
        is emptied by ``DELETE`` (foreign keys and triggers off: ``session_replication_role``, every
        referencing table is emptied too), a bigger one by ``TRUNCATE``; where the role cannot be set (not
        a superuser) every table holding a row is truncated. The lock taken first on every table keeps the
        old guarantee that no other session is still writing into one."""
        import psycopg2

        name = url.rsplit("/", 1)[1]
        tables = self.tables.get(service)
        if not tables or name not in self.pg_databases:
            return
        emptied = [table for table in tables if table != "alembic_version"]
        connection = psycopg2.connect(url.replace("+psycopg2", ""))
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
                if [row[0] for row in cursor.fetchall()] != tables:
                    return
                cursor.execute("SET LOCAL lock_timeout = '2s'")
                if emptied:
                    listed = ", ".join(f'"{table}"' for table in emptied)
                    cursor.execute(f"LOCK TABLE {listed} IN ACCESS EXCLUSIVE MODE")
                    cursor.execute(" UNION ALL ".join(
                        f"SELECT '{table}', count(*) FROM (SELECT 1 FROM \"{table}\" LIMIT {DELETE_AT_MOST}) AS rows"
                        for table in emptied))
                    holding = {table: rows for table, rows in cursor.fetchall() if rows}
                    truncated = [table for table, rows in holding.items() if rows >= DELETE_AT_MOST]
                    deleted = [table for table, rows in holding.items() if rows < DELETE_AT_MOST]
                    if deleted:
                        cursor.execute("SAVEPOINT replica")
                        try:
                            cursor.execute("SET LOCAL session_replication_role = replica")
                        except psycopg2.Error:
                            cursor.execute("ROLLBACK TO SAVEPOINT replica")
                            truncated, deleted = truncated + deleted, []
                        for table in deleted:
                            cursor.execute(f'DELETE FROM "{table}"')
                    if truncated:
                        cursor.execute("TRUNCATE " + ", ".join(f'"{table}"' for table in truncated)
                                       + " RESTART IDENTITY CASCADE")
                cursor.execute("SELECT setval(format('%I.%I', schemaname, sequencename), start_value, false) "
                               "FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL")
            connection.commit()
        except psycopg2.Error:
            return
        finally:
            connection.close()
        self.idle.setdefault(service, []).append(name)

    def drop_all(self) -> None:
        """Drop this run's PostgreSQL databases, on one connection. Each DROP DATABASE makes PostgreSQL
        checkpoint, 0.2–0.7 s apiece on a busy machine, so a whole run's few hundred take minutes: that is
        why it runs after the session (``pytest_sessionfinish``), where no test's timeout counts it."""
        if not self.pg_databases:
            return
        import psycopg2

        connection = psycopg2.connect(PG_ADMIN_URL)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                for name in reversed(self.pg_databases):
                    try:
                        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    except psycopg2.Error:
                        pass
        finally:
            connection.close()
        self.pg_databases.clear()


_registries: list[Databases] = []


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    registry = Databases(tmp_path_factory.mktemp("databases"))
    _registries.append(registry)
    yield registry  # dropped by pytest_sessionfinish, not here: a fixture's teardown counts in a test's timeout


def _source_tree() -> dict[str, str]:
    """What ``git status`` says of the work tree (ignored files too), with a digest of each changed file."""
    import hashlib

    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "-z"], cwd=REPO, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    state = {}
    for entry in out.split("\0"):
        path = entry[3:]
        if not path or "__pycache__" in path or path.endswith(".pyc"):
            continue  # Python's own bytecode cache, written by any import
        target = REPO / path
        digest = hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else "dir"
        state[path] = f"{entry[:2]} {digest}"
    return state


_tree_before: dict[str, str] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _tree_before.update(_source_tree())


def _check_source_tree(session: pytest.Session) -> None:
    """Fail the run if a test wrote into the source tree (tests write under tmp_path and /tmp only)."""
    after = _source_tree()
    changed = sorted(path for path in set(after) | set(_tree_before) if after.get(path) != _tree_before.get(path))
    if changed:
        import sys

        print("\nthe source tree changed during this run (a test must write under tmp_path, never here):\n  "
              + "\n  ".join(f"{path}: {_tree_before.get(path, 'absent')} -> {after.get(path, 'gone')}"
                             for path in changed), file=sys.stderr, flush=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _check_source_tree(session)
    count = sum(len(registry.pg_databases) for registry in _registries)
    if count:
        import sys
        import time

        started = time.monotonic()
        reused = sum(registry.reused for registry in _registries)
        print(f"\ndropping this run's {count} PostgreSQL test databases (each DROP is a checkpoint; {reused} "
              "times a test was given an emptied one instead of a new one) ...", file=sys.stderr, flush=True)
        for registry in _registries:
            registry.drop_all()
        print(f"dropped in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


BACKENDS = ("postgresql", "sqlite")  # PostgreSQL first: production's database is the one every test runs on


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--backends", default=",".join(BACKENDS),
                     help="databases to run on, comma separated (postgresql, sqlite): tests that take `backend` "
                          "run once per backend; every other test runs on the first")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*names): the only databases this test can run on")


def chosen_backends(config: pytest.Config) -> list[str]:
    names = [name.strip() for name in config.getoption("--backends").split(",") if name.strip()]
    unknown = set(names) - set(BACKENDS)
    if unknown or not names:
        raise pytest.UsageError(f"--backends takes {', '.join(BACKENDS)}; got {', '.join(sorted(unknown)) or 'none'}")
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``backend``: each chosen backend (``--backends``) this test's ``backends`` marker allows."""
    if "backend" not in metafunc.fixturenames:
        return
    names = chosen_backends(metafunc.config)
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is not None:
        names = [name for name in names if name in marker.args]
    metafunc.parametrize("backend", names)


def primary_backend(request: pytest.FixtureRequest) -> str:
    """The test's own ``backend`` when it takes one; otherwise the first chosen (PostgreSQL by default)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "backend" in callspec.params:
        return callspec.params["backend"]
    names = chosen_backends(request.config)
    marker = request.node.get_closest_marker("backends")
    if marker is not None:
        allowed = [name for name in names if name in marker.args]
        if not allowed:
            pytest.skip(f"runs only on {', '.join(marker.args)}, not chosen by --backends")
        return allowed[0]
    return names[0]


def service_config(amqp_uri: str, database_url: str | None = None, **overrides: Any) -> dict[str, Any]:
    from services.kit.serializer import NAMEKO_CONFIG

    config = {
        "AMQP_URI": amqp_uri,
        "SERVICE_CONTAINER_CLS": "services.kit.container.Container",
        "GROUP_FILE": str(REPO / "config" / "group.yml"),
        "EVENT_RETRY_DELAYS": [0.05, 0.1, 0.2],
        "OUTBOX_POLL_SECONDS": 0.2,
        "max_workers": 10,
        "parent_calls_tracked": 10,
        "HL7_MLLP_HOST": "127.0.0.1",  # interfaces' MLLP listener: loopback, on a free port (never the demo's 2575)
        "HL7_MLLP_PORT": 0,
        **NAMEKO_CONFIG,  # the kit's serializer, as deploy/config.yml
    }
    if database_url:
        config["DATABASE_URL"] = database_url
    config.update(overrides)
    return config


def _queues_of(container: Any) -> list[str]:
    names = {f"rpc-{container.service_name}"}
    for extension in list(container.entrypoints) + list(container.subextensions):
        queue = getattr(extension, "queue", None)
        if queue is not None and getattr(queue, "name", None):
            names.add(queue.name)
    names.add(f"careloop.dead.{container.service_name}")
    return sorted(names)


def delete_queues(amqp_uri: str, names: list[str]) -> None:
    """Delete ``names`` on one channel (an absent queue is no error for RabbitMQ); a channel the broker
    closed over one queue (e.g. another connection's exclusive queue) is replaced for the rest."""
    with Connection(amqp_uri) as connection:
        channel = None
        for name in names:
            try:
                if channel is None:
                    channel = connection.channel()
                channel.queue_delete(name)
            except Exception:
                channel = _close_quietly(channel)
        _close_quietly(channel)


def _close_quietly(channel: Any) -> None:
    if channel is not None:
        try:
            channel.close()
        except Exception:
            pass


@pytest.fixture
def start_service(amqp_uri: str, databases: Databases,
                  request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Start a service container; its database is fresh unless ``database_url`` is given."""
    from nameko.containers import get_container_cls

    started: list[Any] = []
    borrowed: list[tuple[str, str]] = []

    def start(service_cls: type, backend: str | None = None, database_url: str | None = None,
              **overrides: Any) -> Any:
        url = database_url
        if url is None:
            url = databases.borrow(backend or primary_backend(request), service_cls.name)
            borrowed.append((service_cls.name, url))
        config = service_config(amqp_uri, url, **overrides)
        container = get_container_cls(config)(service_cls, config)
        container.database_url = url
        container.start()
        started.append(container)
        return container

    yield start
    queues: set[str] = set()
    for container in started:
        queues.update(_queues_of(container))
    # each stop waits up to a second for its consumer loop; stop them side by side
    list(eventlet.GreenPool(len(started) or 1).imap(_stop, started))
    delete_queues(amqp_uri, sorted(queues))
    for service, url in borrowed:
        if url.startswith("postgresql"):
            databases.give_back(service, url)


def _stop(container: Any) -> None:
    try:
        container.stop()
    except Exception:
        container.kill()


@pytest.fixture
def rpc(amqp_uri: str) -> Iterator[Callable[..., Any]]:
    """``rpc()`` -> a cluster proxy; ``rpc(caller=Identity(...))`` calls as that caller."""
    from nameko.standalone.rpc import ClusterRpcProxy

    proxies: list[Any] = []

    def make(caller: Any = None, timeout: float = 15) -> Any:
        context = {"caller": caller.to_context()} if caller is not None else None
        proxy = ClusterRpcProxy(service_config(amqp_uri), timeout=timeout, context_data=context)
        proxies.append(proxy)
        return proxy.start()

    yield make
    for proxy in proxies:
        proxy.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 10, interval: float = 0.05,
             message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    import eventlet

    deadline = eventlet.hubs.get_hub().clock() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if eventlet.hubs.get_hub().clock() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        eventlet.sleep(interval)


def events_handled(service: str, handler: str, outcome: str) -> float:
    """How many events ``service.handler`` has acknowledged with ``outcome`` (ok, duplicate, retried,
    dead_lettered) in this process: the one trace a redelivery dropped by the inbox leaves."""
    from prometheus_client import REGISTRY

    labels = {"service": service, "handler": handler, "outcome": outcome}
    return REGISTRY.get_sample_value("careloop_events_handled_total", labels) or 0


def queued_for(amqp_uri: str, service: str) -> int:
    """Messages waiting for ``service``'s event handlers, ready or delivered and not yet acknowledged (the
    broker's own count, ``rabbitmqctl list_queues``), its delay queues included: 0 means nothing in flight."""
    vhost = amqp_uri.rsplit("/", 1)[1]
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers", "name", "messages"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    rows = (line.rsplit("\t", 1) for line in out.splitlines() if "\t" in line)
    return sum(int(count) for name, count in rows if f"--{service}." in name or name.startswith("careloop.retry"))


def store_for(url: str) -> Any:
    from services.kit.db import Store

    return Store(url, pool_size=2)


def query(url: str, sql: str, **params: Any) -> list[Any]:
    """Rows of ``sql`` on a service's database, read the way the service reads it.

    Through a kit ``Store`` transaction, so that on SQLite the read waits its turn at the process's
    green gate; a bare connection would busy-wait inside SQLite (blocking the whole process) while a
    service in this process holds the write lock."""
    from sqlalchemy import text

    store = store_for(url)
    try:
        with store.transaction() as session:
            return list(session.execute(text(sql), params))
    finally:
        store.dispose()


def scalar(url: str, sql: str, **params: Any) -> Any:
    return query(url, sql, **params)[0][0]
