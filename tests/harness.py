"""Fixtures and helpers behind tests/conftest.py (kept apart so the conftest stays readable)."""

from __future__ import annotations

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


class Databases:
    """Fresh, migrated databases per test, cloned from a template per backend and service."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.templates: dict[tuple[str, str], str] = {}
        self.pg_databases: list[str] = []

    def _pg_admin(self, sql: str) -> None:
        import psycopg2

        connection = psycopg2.connect(PG_ADMIN_URL)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()

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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    count = sum(len(registry.pg_databases) for registry in _registries)
    if count:
        import sys
        import time

        started = time.monotonic()
        print(f"\ndropping this run's {count} PostgreSQL test databases (each DROP is a checkpoint) ...",
              file=sys.stderr, flush=True)
        for registry in _registries:
            registry.drop_all()
        print(f"dropped in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


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
    with Connection(amqp_uri) as connection:
        for name in names:
            channel = connection.channel()
            try:
                channel.queue_delete(name)
            except Exception:
                pass
            finally:
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

    def start(service_cls: type, backend: str = "sqlite", database_url: str | None = None,
              **overrides: Any) -> Any:
        url = database_url or databases.fresh(backend, service_cls.name)
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
