"""Databases: one ``DATABASE_URL`` per service, SQLite (embedded default) or PostgreSQL, same code.

- ``Store`` owns an engine and hands out transactions (``with store.transaction() as session``).
- ``Database`` is the nameko dependency: ``self.db.session`` is the worker's session, opened on first
  use and committed by the kit *before* the RPC reply or event ack (see ``kit.container``); an error
  rolls it back. Batch jobs use ``self.db.transaction()`` for one short transaction per batch.

SQLite under eventlet: SQLite's busy-wait sleeps in C and would block the whole process while the
greenthread holding the write lock cannot run. So all transactions on one SQLite file in a process go
through a green gate (one at a time). SQLite therefore means one process per service; scale out on
PostgreSQL, where row locks and ``SKIP LOCKED`` do the work.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sys
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    PendingRollbackError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from services.kit import inbox
from services.kit.commit import AT_COMMIT, forget_rolled_back, mark_savepoint, run_at_commit
from services.kit.dialect_inserts import PostgresInsert, SqliteInsert
from services.kit.errors import Conflict, NotFound, Unavailable

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]

try:  # make psycopg2 wait cooperatively under eventlet (a no-op without eventlet's patching)
    import psycogreen.eventlet

    psycogreen.eventlet.patch_psycopg()
except ImportError:  # pragma: no cover - psycopg2/psycogreen are pinned dependencies
    pass

try:
    import psycopg2

    DRIVER_CONNECTION_ERRORS: tuple[type[Exception], ...] = (psycopg2.OperationalError, psycopg2.InterfaceError)
except ImportError:  # pragma: no cover
    DRIVER_CONNECTION_ERRORS = ()

UNREACHABLE_SQLSTATE_CLASSES = ("08", "57")
"""SQLSTATE classes that mean the server cannot serve now: connection exceptions, and operator intervention
(shutting down, starting up, connections terminated, a statement cancelled)."""
CONNECTION_INVALIDATED = "8s2b"
"""SQLAlchemy's code of ``PendingRollbackError`` for a connection found dead earlier in the transaction."""


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached just now (refused, dropped, restarting, the
    pool exhausted), as opposed to a statement it refused: the first is worth a retry, the second is not.

    The driver's own error counts as SQLAlchemy's wrapping of it does: a statement the kit sends from an engine
    event (the ``BEGIN`` with an event's inbox check, ``kit.inbox``) fails outside SQLAlchemy's handling."""
    if isinstance(error, (PoolTimeout, DisconnectionError)):
        return True
    if isinstance(error, PendingRollbackError):  # a statement after the connection died, in the same transaction
        return error.code == CONNECTION_INVALIDATED
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        if not isinstance(error, (OperationalError, InterfaceError)):
            return False
        error = error.orig
    if not isinstance(error, DRIVER_CONNECTION_ERRORS):
        return False
    code = error.pgcode  # None: the client's side (no connection, connection lost)
    return code is None or code[:2] in UNREACHABLE_SQLSTATE_CLASSES


def unavailable_instead(exc_info: Any) -> Any:
    """``exc_info`` of an ``Unavailable`` (a domain error: RPC callers get a 503 to retry, event handlers are
    retried later) in place of a database-unreachable error; other ``exc_info`` as given."""
    if exc_info is None or not database_unavailable(exc_info[1]):
        return exc_info
    try:
        raise Unavailable("The service's database cannot be reached just now; try again (with the same "
                          "idempotency key if the request had one).", details={"retry_after": 5}) from exc_info[1]
    except Unavailable:
        return sys.exc_info()


_sqlite_gates: dict[str, Semaphore] = {}


def _sqlite_gate(path: str) -> Semaphore:
    return _sqlite_gates.setdefault(path, Semaphore(1))


def normalise_url(url: str) -> str:
    """Resolve a relative SQLite path against the repository root and make its folder."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if not path.is_absolute():
            path = REPO_ROOT / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return parsed.set(database=str(path)).render_as_string(hide_password=False)
    return url


PING_AFTER_IDLE_SECONDS = 2.0
"""A pooled PostgreSQL connection idle longer than this is pinged before use (see ``_ping_when_idle``)."""


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Test a connection on checkout only if it sat in the pool for ``idle_seconds`` or more.

    ``pool_pre_ping`` costs a round trip on every checkout (~0.2 ms of CPU under eventlet, measured), paid
    by every command. A busy connection was just used successfully; an idle one may have been dropped by a
    database restart or a firewall. A failed ping raises ``DisconnectionError``, on which the pool
    replaces the connection and tries again. A connection that dies while busy fails its statement; the
    engine then invalidates the whole pool, so the other connections of that moment are replaced on their
    next checkout (one failed call per dead connection, the caller retries under its idempotency key).
    """
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return  # new, or used a moment ago
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(f"pooled connection was dropped: {error}") from error


READ_ALONE = "careloop_read_alone"
"""An execution option of a connection whose statements only read, each on its own (``Store.reading``): no
transaction is opened for them (no ``BEGIN``, so no ``COMMIT``; on SQLite no ``BEGIN IMMEDIATE``, the writer's lock)."""
BEGIN_PENDING = "careloop_begin_pending"
ENDED_ALONE = "careloop_ended_alone"
"""In a pooled connection's ``info``, set by the engine's ``commit``/``rollback`` event (before the dialect sends it):
whether this commit or rollback costs a round trip of its own (for the round-trip test; the kit sends those
outside SQLAlchemy's cursor events)."""
_TRANSACTION_IDLE = 0  # psycopg2.extensions.TRANSACTION_STATUS_IDLE: no transaction open on the server


PREPARED = "careloop_prepared"
"""An execution option: run this statement as a statement PostgreSQL keeps prepared per connection (``prepared``)."""
_PREPARED_ON = "careloop_prepared_on"  # in a pooled connection's ``info``: statement name -> True, or False: never
_TRYING = "trying"
_prepared_forms: dict[str, tuple[str, str, str, str]] = {}  # compiled SQL -> (name, PREPARE, EXECUTE, DEALLOCATE)


def prepared(statement: Any) -> Any:
    """``statement`` (run on a hot path; several joined by ``"; "`` are prepared each) prepared once per connection on
    PostgreSQL and then only executed: ``PREPARE <name> AS <statement>`` goes with its first run on a connection, in
    the same query (no round trip of its own), and every later run sends ``EXECUTE <name>(<parameters>)``. PostgreSQL
    then parses, analyses and plans it once per connection instead of on every run (psycopg2 binds parameters on the
    client, so without this every query is new text to the server): ~0.4 ms of the server's CPU for points' one-trip
    earn, as much as running it. SQLite and executemany run the statement as it is. A prepared statement survives a
    rollback; if the query that prepared it failed, the connection runs the statement as plain text from then on
    (whether the ``PREPARE`` took is unknown then; asking would cost a round trip). A statement is prepared again on
    its connection after ``REPLAN_AFTER`` runs there, then after twice as many, and so on (``_replan_due``)."""
    return statement.execution_options(**{PREPARED: True})


REPLAN_AFTER = 64
"""Runs of a prepared statement on a connection after which it is prepared again (``DEALLOCATE`` and ``PREPARE`` sent
with that run, no round trip of its own), then after twice as many, and so on: 64, 128, 256... PostgreSQL plans a
prepared statement's generic plan at its sixth run and keeps it until the statistics of a table it reads change (an
``ANALYZE``); one made while a table was a few pages — a new database, a benchmark's first seconds — is a sequential
scan, and it stays one as the table grows until autovacuum gets to the table (the outbox relay's mark, ``id =
ANY(:ids)``, read the whole outbox at each batch then). Planned again each time the connection has run it twice as
often, a plan is at most one doubling of the connection's runs old; a connection that ran a statement a million times
has planned it 15 times."""
_PREPARED_RUNS = "careloop_prepared_runs"  # in a pooled connection's ``info``: statement name -> (runs, next re-plan)


def _replan_due(info: dict[str, Any], name: str) -> bool:
    """Count a run of the prepared statement ``name`` on the connection whose ``info`` this is; whether this run is to
    prepare it again (``REPLAN_AFTER``)."""
    runs = info.setdefault(_PREPARED_RUNS, {})
    count, due = runs.get(name, (0, REPLAN_AFTER))
    count += 1
    if count < due:
        runs[name] = (count, due)
        return False
    runs[name] = (0, due * 2)
    return True


def _prepared_form(statement: str) -> tuple[str, str, str, str]:
    """(name, ``PREPARE`` text, ``EXECUTE`` text, ``DEALLOCATE`` text) of a compiled statement in psycopg2's
    ``%(name)s`` style. Statements joined by ``"; "`` (a lock, then a read: ``kit.locks.then``; a claim and its first
    read) are prepared one by one, each under the name followed by its place, and executed in turn in one query."""
    form = _prepared_forms.get(statement)
    if form is None:
        name = "careloop_" + hashlib.sha1(statement.encode()).hexdigest()[:20]
        parts = statement.split("; ")
        prepares, executes, deallocates = [], [], []
        for number, part in enumerate(parts):
            names: list[str] = []

            def positional(match: re.Match[str], names: list[str] = names) -> str:
                if match.group(1) not in names:
                    names.append(match.group(1))
                return f"${names.index(match.group(1)) + 1}"

            body = _PYFORMAT.sub(positional, part)
            part_name = name if len(parts) == 1 else f"{name}_{number}"
            arguments = f"({', '.join(f'%({argument})s' for argument in names)})" if names else ""
            prepares.append(f"PREPARE {part_name} AS {body}")
            executes.append(f"EXECUTE {part_name}{arguments}")
            deallocates.append(f"DEALLOCATE {part_name}")
        form = _prepared_forms[statement] = (name, ";".join(prepares), ";".join(executes), ";".join(deallocates))
    return form


_PYFORMAT = re.compile(r"%\((\w+)\)s")


def _prepare_marked(engine: Engine) -> None:
    """PostgreSQL: statements marked ``prepared`` run as prepared statements of their connection (``prepared``)."""
    @event.listens_for(engine, "connect")
    def _none_yet(_dbapi_connection: Any, record: Any) -> None:
        record.info[_PREPARED_ON] = {}
        record.info[_PREPARED_RUNS] = {}

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _as_prepared(connection: Any, _cursor: Any, statement: str, parameters: Any, context: Any,
                     executemany: bool) -> tuple[str, Any]:
        if executemany or context is None or not context.execution_options.get(PREPARED) \
                or not isinstance(parameters, dict):
            return statement, parameters
        sql, preparing = _to_run(connection.connection.info, statement)
        if preparing is not None:
            context.careloop_preparing = [preparing]
        return sql, parameters

    @event.listens_for(engine, "after_cursor_execute")
    def _prepared_now(connection: Any, _cursor: Any, _statement: str, _parameters: Any, context: Any,
                      _executemany: bool) -> None:
        names = getattr(context, "careloop_preparing", None)
        if names:
            connection.connection.info[_PREPARED_ON].update(dict.fromkeys(names, True))

    @event.listens_for(engine, "handle_error")
    def _not_known(context: Any) -> None:
        names = getattr(context.execution_context, "careloop_preparing", None)
        if names and context.connection is not None and not context.connection.invalidated:
            refused = getattr(context.original_exception, "pgcode", None) == inbox.ALREADY_HANDLED_SQLSTATE
            _failed(context.connection.connection.info[_PREPARED_ON], names, refused)


def _to_run(info: dict[str, Any], statement: str) -> tuple[str, str | None]:
    """What runs ``statement`` (compiled, psycopg2's style) on the connection whose ``info`` this is, and the name of
    the statement this query prepares (None: none): ``EXECUTE`` where it is prepared, with ``DEALLOCATE`` and
    ``PREPARE`` in front when it is due to be planned again; ``PREPARE`` and ``EXECUTE`` at its first run there; the
    statement itself where a query that prepared it failed."""
    on = info.setdefault(_PREPARED_ON, {})
    name, prepare, execute, deallocate = _prepared_form(statement)
    state = on.get(name)
    if state is True:
        if _replan_due(info, name):  # planned again against the tables as they are now
            return f"{deallocate};{prepare};{execute}", name
        return execute, None
    if state is None:
        on[name] = _TRYING
        return f"{prepare};{execute}", name
    return statement, None  # it failed once here: plain text


def _failed(on: dict[str, Any], names: list[str], refused: bool) -> None:
    """A query that was to prepare ``names`` failed: whether each ``PREPARE`` took is unknown, so the connection runs
    them as plain text from now on. Unless the inbox check refused the event (``refused``: SQLSTATE ``CL001``): the
    check goes first in its query, so its own ``PREPARE`` took (its ``EXECUTE`` raised) and nothing after it ran — a
    statement prepared there for the first time is tried again; one prepared earlier still is (its ``DEALLOCATE`` did
    not run). A redelivered event costs no handler its prepared statements."""
    if not refused:
        on.update(dict.fromkeys(names, False))
        return
    check = _prepared_form(inbox.CHECK_SQL)[0]
    for name in names:
        if name == check:
            on[name] = True
        elif on.get(name) == _TRYING:
            del on[name]


def _with_check(connection: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> tuple[str, Any, bool]:
    """``inbox.with_check`` with the check run as a statement prepared on its connection (``_to_run``): it is parsed
    and planned once per connection, not at every handler run (five a paid visit)."""
    if context is None or not inbox.pending(connection):
        return inbox.with_check(connection, cursor, statement, parameters, executemany)
    info = connection.connection.info
    check_sql, preparing = _to_run(info, inbox.CHECK_SQL)
    names = [preparing] if preparing is not None else []
    try:
        statement, parameters, begun = inbox.with_check(connection, cursor, statement, parameters, executemany,
                                                        check_sql)
    except BaseException as error:  # the check, sent alone, failed: the statement itself never ran
        _failed(info[_PREPARED_ON], names + (getattr(context, "careloop_preparing", None) or []),
                refused=isinstance(error, inbox.AlreadyHandledError))
        raise
    if begun:  # sent alone, and it ran
        info[_PREPARED_ON].update(dict.fromkeys(names, True))
    elif names:  # in front of the statement: settled with it (``_prepared_now``, ``_not_known``)
        context.careloop_preparing = names + (getattr(context, "careloop_preparing", None) or [])
    return statement, parameters, begun


def _begin_with_first_statement(engine: Engine) -> None:
    """PostgreSQL: send a transaction's ``BEGIN`` with its first statement, and let a command's last statement
    carry the ``COMMIT`` (``Store.commit``), instead of a round trip for each.

    psycopg2 (not in autocommit) sends ``BEGIN`` as a query of its own before a transaction's first statement:
    one round trip per transaction spent on nothing. Here the driver connection is in autocommit and the kit
    opens the transaction itself: when SQLAlchemy begins one, the next statement on that connection goes as
    ``BEGIN;<statement>`` (psycopg2 binds parameters on the client, so both travel in one query). At commit or
    rollback, ``COMMIT`` / ``ROLLBACK`` is sent only if the server says a transaction is open (libpq knows it
    from the last reply, no round trip): a transaction whose last statement already ended with ``COMMIT``
    costs nothing more. A connection returned to the pool mid-transaction is rolled back the same way.
    Statements SQLAlchemy runs outside a transaction of its own (the dialect's first-connect queries, the
    idle ping) autocommit, as they read only. Not for alembic (``migrate``), which sets isolation levels.
    Server-side cursors (``stream_results``/``yield_per`` on PostgreSQL) are not available on these engines:
    psycopg2 refuses a named cursor in autocommit; batch jobs work a batch per transaction from a cursor of
    their own (``kit.jobs``).
    A statement run after the piggybacked ``COMMIT`` and before the session's own commit would autocommit
    alone; ``Store.commit`` flushes the session first so that nothing is left to run then.
    """
    @event.listens_for(engine, "connect")
    def _autocommit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.autocommit = True

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if not connection.get_execution_options().get(READ_ALONE):
            connection.info[BEGIN_PENDING] = True

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _with_begin(connection: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                    executemany: bool) -> tuple[str, Any]:
        if connection.info.pop(BEGIN_PENDING, False):
            # an event handler's inbox check goes with its first statement too (kit.inbox), prepared (``_with_check``)
            statement, parameters, begun = _with_check(connection, cursor, statement, parameters, context,
                                                       executemany)
            if begun:
                pass
            elif executemany:  # the statement runs once per row: BEGIN must not go with each
                cursor.execute("BEGIN")
            else:
                statement = "BEGIN;" + statement
        return statement, parameters

    @event.listens_for(engine, "handle_error")
    def _already_handled(context: Any) -> None:
        inbox.refuse_handled(context)  # raises AlreadyHandledError for a failed inbox check

    def _sends_alone(dbapi_connection: Any, sql: str) -> bool:
        """Whether ending the transaction with ``sql`` costs a query of its own: the server has it open (libpq knows
        from the last reply, no round trip). On a closed connection a ``ROLLBACK`` has nothing left to do (the
        server dropped the transaction with it); a ``COMMIT`` is tried, and fails: what it had to commit is lost."""
        if dbapi_connection is None:
            return False
        if dbapi_connection.closed:
            return sql == "COMMIT"
        return dbapi_connection.get_transaction_status() != _TRANSACTION_IDLE

    def _end(pooled: Any, sql: str) -> None:
        dbapi_connection = pooled.dbapi_connection
        if dbapi_connection is not None and not dbapi_connection.autocommit:
            # the engine's first connection, before ``_autocommit``: the dialect's first queries ran in psycopg2's
            # own transaction, which psycopg2 ends
            (dbapi_connection.commit if sql == "COMMIT" else dbapi_connection.rollback)()
            return
        pooled.info.pop(BEGIN_PENDING, None)
        pooled.info.pop(inbox.CHECK, None)
        if _sends_alone(dbapi_connection, sql):
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(sql)
            finally:
                cursor.close()

    # The engine's dialect sends them (SQLAlchemy calls ``do_commit``/``do_rollback`` with the pooled connection, for
    # a Connection's commit and rollback and for the pool's reset of a returned connection): a failure is then
    # handled as a statement's is, wrapped (``DBAPIError``), a lost connection invalidated with the pool's others
    # and reported as such (``database_unavailable``). Sent from the engine's ``commit`` event, a link cut at the
    # ``COMMIT`` raised psycopg2's bare error, which no caller recognised (a 500 at the gateway, issue 17).
    dialect = engine.dialect
    dialect.do_commit = lambda pooled: _end(pooled, "COMMIT")  # type: ignore[method-assign]
    dialect.do_rollback = lambda pooled: _end(pooled, "ROLLBACK")  # type: ignore[method-assign]

    def _note(connection: Any, sql: str) -> None:
        if not connection.invalidated:  # an invalidated connection sends nothing (and asking would reconnect)
            pooled = connection.connection
            pooled.info[ENDED_ALONE] = _sends_alone(pooled.dbapi_connection, sql)

    @event.listens_for(engine, "commit")
    def _on_commit(connection: Any) -> None:
        _note(connection, "COMMIT")

    @event.listens_for(engine, "rollback")
    def _on_rollback(connection: Any) -> None:
        _note(connection, "ROLLBACK")


def create_store_engine(url: str, pool_size: int = 10, ping_after_idle: float = PING_AFTER_IDLE_SECONDS,
                        begin_with_first_statement: bool = False) -> Engine:
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")  # a committed change survives power loss
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            if not connection.get_execution_options().get(READ_ALONE):
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # hide_parameters: a statement's values (names, phone numbers) stay out of errors and so out of logs
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800, hide_parameters=True)
    _ping_when_idle(engine, ping_after_idle)
    if begin_with_first_statement:
        _prepare_marked(engine)  # first: BEGIN (and an inbox check) go before the PREPARE
        _begin_with_first_statement(engine)
    return engine


class Store:
    """A service's database: its engine and short transactions on it."""

    def __init__(self, url: str, pool_size: int = 10, ping_after_idle: float = PING_AFTER_IDLE_SECONDS) -> None:
        self.url = normalise_url(url)
        self.engine = create_store_engine(self.url, pool_size=pool_size, ping_after_idle=ping_after_idle,
                                          begin_with_first_statement=True)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.is_postgresql = self.engine.dialect.name == "postgresql"
        self._make_session = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._make_session, "before_commit", run_at_commit)
        event.listen(self._make_session, "after_transaction_create", mark_savepoint)
        event.listen(self._make_session, "after_soft_rollback", forget_rolled_back)
        if self.is_postgresql:
            event.listen(self._make_session, "after_begin", inbox.attach_check)
        self._gate = _sqlite_gate(str(self.engine.url.database)) if self.is_sqlite else None
        self._commit_listeners: list[Callable[[list[dict[str, Any]], bool], None]] = []

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection whose statements only read, each on its own: one round trip a statement and nothing
        else (no ``BEGIN``/``COMMIT``); on SQLite no writer's lock and no wait for the process gate (WAL
        readers do not block, nor are they blocked)."""
        with self.engine.connect() as connection:
            connection.execution_options(**{READ_ALONE: True})
            yield connection

    def open_session(self) -> Session:
        """A new session; for SQLite, waits for the process gate (released by ``close_session``)."""
        if self._gate is not None:
            self._gate.acquire()
        try:
            session = self._make_session()
        except BaseException:
            if self._gate is not None:
                self._gate.release()
            raise
        session.info["store"] = self
        return session

    def close_session(self, session: Session) -> None:
        try:
            session.close()
        finally:
            if self._gate is not None:
                self._gate.release()

    def commit(self, session: Session) -> None:
        """Commit ``session``; on PostgreSQL what was left for the commit (``at_commit``) goes with the
        ``COMMIT`` in one query, after the ORM's pending changes are flushed."""
        pending = session.info.get(AT_COMMIT)
        announced: list[dict[str, Any]] = []
        if pending and self.is_postgresql:
            session.flush()
            announced = _announced(session)
            connection = session.connection()
            info = connection.connection.info
            on = info.setdefault(_PREPARED_ON, {})
            parts, params, preparing = [], {}, []
            for n, (statement, values) in enumerate(pending):
                form = _prepared_form(statement.plain) if statement.prepare else None
                state = on.get(form[0]) if form is not None else False
                if state is True or state is None:  # prepared here (or to be, with this query)
                    name, prepare, execute, deallocate = form
                    if name not in preparing:
                        if state is None:
                            parts.append(prepare)
                            preparing.append(name)
                        elif _replan_due(info, name):  # planned again against the tables as they are now
                            parts += [deallocate, prepare]
                            preparing.append(name)
                    parts.append(_PYFORMAT.sub(rf"%(\1_{n})s", execute))
                    params.update(statement.params(n, values))
                    continue
                sql, named = statement.pyformat(n, values)
                parts.append(sql)
                params.update(named)
            parts.append("COMMIT")
            on.update(dict.fromkeys(preparing, _TRYING))
            try:
                connection.exec_driver_sql(";".join(parts), params)
            except BaseException:  # whether the PREPARE took is unknown: plain text on this connection from now on
                on.update(dict.fromkeys(preparing, False))
                raise
            on.update(dict.fromkeys(preparing, True))
            del session.info[AT_COMMIT]
        elif pending:
            announced = _announced(session)
        session.commit()
        unannounced = session.info.pop("outbox_dirty", False)
        if announced or unannounced:
            for listener in list(self._commit_listeners):
                listener(announced, unannounced)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed if the block ends normally, rolled back if it raises."""
        session = self.open_session()
        try:
            yield session
            self.commit(session)
        except BaseException:
            _rollback_quietly(session)  # a rollback failing on a dead connection must not hide why it ended
            raise
        finally:
            self.close_session(session)

    def on_outbox_commit(self, listener: Callable[[list[dict[str, Any]], bool], None]) -> None:
        """Call ``listener(announced, unannounced)`` after any commit that wrote events to the outbox (the relay's
        hand-over): ``announced`` the values of what the transaction left for its commit with ``announce``
        (``kit.commit.AtCommit``: each outbox row written by ``kit.outbox.write_event``), in the order written;
        ``unannounced`` whether it also wrote events otherwise (``outbox_dirty``: a batch's multi-row insert), which
        only a read of the outbox finds."""
        self._commit_listeners.append(listener)

    def dispose(self) -> None:
        self.engine.dispose()


def _announced(session: Session) -> list[dict[str, Any]]:
    """The values of what ``session`` left for its commit with ``announce`` (``kit.commit.AtCommit``), in order."""
    return [values for statement, values in session.info.get(AT_COMMIT) or () if statement.announce]


def _rollback_quietly(session: Session) -> None:
    """Roll back; a rollback that fails (the connection died) is only logged: the server rolls back a
    transaction whose connection is gone, and the error that matters is the one that led here."""
    try:
        session.rollback()
    except Exception as error:
        log.warning("rollback failed (%s); the database discards the transaction with its connection",
                    type(error).__name__)


class WorkerDb:
    """What a service method sees as ``self.db``."""

    def __init__(self, store: Store, worker_ctx: Any) -> None:
        self.store = store
        self.worker_ctx = worker_ctx
        self._session: Session | None = None
        self._in_transaction = False

    @property
    def session(self) -> Session:
        """The worker's session: committed by the kit before the reply/ack, rolled back on error."""
        if self._in_transaction:
            raise RuntimeError("use either self.db.session or self.db.transaction() in one worker")
        if self._session is None:
            self._session = self.store.open_session()
        return self._session

    @property
    def has_session(self) -> bool:
        return self._session is not None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A short transaction of its own (for batch jobs that commit batch by batch)."""
        if self._session is not None:
            raise RuntimeError("use either self.db.session or self.db.transaction() in one worker")
        self._in_transaction = True
        try:
            with self.store.transaction() as session:
                yield session
        finally:
            self._in_transaction = False

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """For an RPC that only reads, with statements that need no snapshot shared between them (a member's
        view): each statement on its own (``Store.reading``), without the Session, its transaction and its
        commit — half the round trips of a one-query read, and on SQLite no wait for the process's writer."""
        if self._session is not None or self._in_transaction:
            raise RuntimeError("self.db.read() is for workers that only read: it would not see their writes")
        with self.store.reading() as connection:
            yield connection

    def finish(self, commit: bool) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            if commit:
                self.store.commit(session)
            else:
                _rollback_quietly(session)
        except BaseException:
            _rollback_quietly(session)
            raise
        finally:
            self.store.close_session(session)


class Database(DependencyProvider):
    """``self.db``: the worker's database session (see ``WorkerDb``)."""

    def setup(self) -> None:
        from services.kit.container import CONTAINER_PATH, Container

        if not isinstance(self.container, Container):
            raise RuntimeError(f"CareLoop services need SERVICE_CONTAINER_CLS: {CONTAINER_PATH} in their "
                               "config; without it nothing would be committed before replies")
        url = self.container.config.get("DATABASE_URL") or f"sqlite:///var/{self.container.service_name}.db"
        self.store = Store(url, pool_size=int(self.container.config.get("max_workers", 10)) + 2)
        self._workers: weakref.WeakKeyDictionary[Any, WorkerDb] = weakref.WeakKeyDictionary()

    def get_dependency(self, worker_ctx: Any) -> WorkerDb:
        worker_db = WorkerDb(self.store, worker_ctx)
        self._workers[worker_ctx] = worker_db
        return worker_db

    def worker_db(self, worker_ctx: Any) -> WorkerDb:
        return self._workers[worker_ctx]

    def find_worker_db(self, worker_ctx: Any) -> WorkerDb | None:
        return self._workers.get(worker_ctx)

    def before_result(self, worker_ctx: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
        """Commit the worker's transaction (or roll it back); a database that cannot be reached, whether
        the service method or the commit found it so, becomes ``Unavailable`` (see ``unavailable_instead``)."""
        try:
            result, exc_info = self._settle(worker_ctx, result, exc_info)
        except Exception:
            result, exc_info = None, sys.exc_info()
            if not database_unavailable(exc_info[1]):
                raise
        return result, unavailable_instead(exc_info)

    def _settle(self, worker_ctx: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
        worker_db = self._workers.get(worker_ctx)
        if worker_db is None:
            return result, exc_info
        if worker_db.has_session and inbox.refused(worker_db.session):
            # its inbox check found the event applied already: a duplicate, whatever the handler made of that
            worker_db.finish(commit=False)
            return inbox.ALREADY_HANDLED, None
        if exc_info is not None or result is inbox.ALREADY_HANDLED or result is inbox.NOT_WANTED:
            worker_db.finish(commit=False)
            return result, exc_info
        entry = inbox.entry_for(worker_ctx)
        if entry is not None:
            inbox.skip_check(worker_db.session)
            inbox.record(worker_db.session, entry)
        try:
            worker_db.finish(commit=True)
        except IntegrityError as exc:
            if entry is not None and inbox.was_handled(self.store, entry):
                return inbox.ALREADY_HANDLED, None
            log.warning("commit refused by a constraint in %s: %s", worker_ctx.entrypoint.method_name,
                        exc.orig)
            raise Conflict("This change clashes with another one made at the same time; "
                           "read the current state and try again.") from exc
        return result, exc_info

    def worker_teardown(self, worker_ctx: Any) -> None:
        worker_db = self._workers.pop(worker_ctx, None)
        if worker_db is not None:
            worker_db.finish(commit=False)  # only does something if before_result never ran

    def stop(self) -> None:
        self.store.dispose()

    def kill(self) -> None:
        self.store.dispose()


def database_url_from_env(service: str) -> str:
    """The URL a command-line tool uses for ``service``: ``<SERVICE>_DATABASE_URL`` or the default file."""
    return os.environ.get(f"{service.upper()}_DATABASE_URL") or f"sqlite:///var/{service}.db"


def worker_db_of(service: Any) -> WorkerDb | None:
    """The ``WorkerDb`` injected into a service instance (for kit decorators that wrap methods)."""
    for value in vars(service).values():
        if isinstance(value, WorkerDb):
            return value
    return None


def parse_uuid(value: Any, what: str) -> uuid.UUID:
    """``value`` as a UUID; a malformed id is simply not found (``NotFound``), never a crash."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"No {what} {value}.") from None


def valid_uuids(values: Iterable[Any]) -> set[uuid.UUID]:
    """The well-formed ids among ``values`` (a batch naming rows by id: a malformed one names nothing, and is
    left for the caller to refuse or skip)."""
    found = set()
    for value in values:
        try:
            found.add(uuid.UUID(str(value)))
        except ValueError:
            continue
    return found


def fetch(session: Session, model: Any, key: Any, what: str, lock: bool = False) -> Any:
    """The row of ``model`` with primary key ``key`` (a UUID or its text), locked ``FOR UPDATE`` if asked;
    ``NotFound("No <what> <key>.")`` when there is none."""
    (column,) = model.__table__.primary_key.columns
    query = select(model).where(column == parse_uuid(key, what))
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        raise NotFound(f"No {what} {key}.")
    return row


def dialect_insert(session: Session, model: Any) -> Any:
    """``INSERT`` into ``model`` in the session's dialect (PostgreSQL or SQLite), so that the statement offers
    ``on_conflict_do_nothing`` / ``on_conflict_do_update``: a row two transactions may insert at the same moment
    is inserted by one, and the other waits for it and inserts nothing instead of failing."""
    dialect = session.get_bind().dialect.name
    return (PostgresInsert if dialect == "postgresql" else SqliteInsert)(model)  # compiled once: dialect_inserts


@contextlib.contextmanager
def unique_or(session: Session, conflict: Conflict) -> Iterator[None]:
    """The changes made inside, in a savepoint and flushed: a unique index that refuses them undoes only them
    and raises ``conflict`` (a slot taken meanwhile, a survey answered twice)."""
    try:
        with session.begin_nested():
            yield
            session.flush()
    except IntegrityError:
        raise conflict from None


def first_found(session: Session, query: Any, missing: str, lock: bool = False) -> Any:
    """The first row ``query`` selects, locked ``FOR UPDATE`` and read afresh if asked; ``NotFound(missing)``
    when there is none (for rows found by something other than a UUID key, or with a filter of their own)."""
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = session.scalars(query).first()
    if row is None:
        raise NotFound(missing)
    return row
