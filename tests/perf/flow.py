"""Helpers of the paid-visit flow and replica benchmarks (tests/perf/test_flow_perf.py).

``OpenLoop`` posts signed HIS bills on the clock (each at its own instant, whatever the answers do);
``outcomes`` reads, per bill, when each service committed its part, from the services' own databases:
the commit time of the consumer's inbox row (``pg_xact_commit_timestamp(xmin)``; the cluster runs with
``track_commit_timestamp = on``), which is in the same transaction as the handler's effects — so it is the
moment those effects became visible to any reader (the API included).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import eventlet
import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import create_engine, text

from gateway.auth import webhooks


@dataclass
class Bill:
    step: str
    bill_id: str
    member: str
    due: float  # when the scheduler meant to send it (time.time())
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0


class OpenLoop:
    """Signed ``POST /v1/webhooks/bills`` at a fixed rate, one green thread per bill, spread over the gateways."""

    def __init__(self, urls: list[str], integration: tuple[str, str], members: list[str]) -> None:
        self.urls = urls
        self.integration = integration
        self.members = members
        self.http = requests.Session()
        self.http.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=2000))
        self.run = uuid.uuid4().hex[:6]
        self.count = 0

    def step(self, label: str, rate: float, seconds: float) -> list[Bill]:
        bills: list[Bill] = []
        pool = eventlet.GreenPool(100_000)
        began = time.time()
        for number in range(int(rate * seconds)):
            due = began + number / rate
            pause = due - time.time()
            if pause > 0:
                eventlet.sleep(pause)
            self.count += 1
            bill = Bill(label, f"FLOW-{self.run}-{self.count}", self.members[self.count % len(self.members)], due)
            bills.append(bill)
            pool.spawn_n(self._send, bill)
        pool.waitall()
        return bills

    def _send(self, bill: Bill) -> None:
        amount = 50_00 + (self.count * 7919) % 1_950_00 // 100 * 100
        body = json.dumps({"bill_id": bill.bill_id, "member_id": bill.member, "branch": "SH01", "currency": "CNY",
                           "items": [{"category": "treatment", "code": "T1", "amount_minor": amount}],
                           "payments": [{"method": "card", "amount_minor": amount}]}).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": bill.bill_id,
                   **webhooks.signed_headers(*self.integration, body)}
        bill.sent = time.time()
        try:
            response = self.http.post(self.urls[self.count % len(self.urls)] + "/v1/webhooks/bills", data=body,
                                      headers=headers, timeout=60)
            bill.status = response.status_code
        except requests.RequestException:
            bill.status = 0
        bill.answered = time.time()


def _rows(url: str, sql: str) -> list[Any]:
    engine = create_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql)))
    finally:
        engine.dispose()


COMMITTED = "extract(epoch from coalesce(pg_xact_commit_timestamp(xmin), handled_at))"


def outcomes(pg: Any, bills: list[Bill]) -> dict[str, dict[str, float]]:
    """Per acknowledged bill: wall-clock times at which points, members and notifications committed their part
    (``points``: the earn; ``members``: the visit and every earn event of it — a ``visit_points_earned`` a member, or
    a ``points_earned`` a posting before issue 17's change; ``notifications``: the same);
    a bill missing a part has no entry for it."""
    wanted = {bill.bill_id for bill in bills if 200 <= bill.status < 300}
    visits = {}  # visit_completed event id -> (bill id, visit id)
    for event_id, bill_id, visit_id in _rows(pg.url("records"), (
            "SELECT event_id, payload::json->>'bill_id', payload::json->>'visit_id' FROM kit_outbox "
            "WHERE event_type = 'visit_completed'")):
        if bill_id in wanted:
            visits[event_id] = (bill_id, visit_id)
    by_visit = {visit: bill for bill, visit in visits.values()}
    earned: dict[str, list[str]] = {}  # bill -> its earn events' ids
    for event_id, source in _rows(pg.url("points"), (
            "SELECT event_id, coalesce(payload::json->>'source_ref', payload::json->>'visit_id') FROM kit_outbox "
            "WHERE event_type IN ('points_earned', 'visit_points_earned')")):
        if source in by_visit:
            earned.setdefault(by_visit[source], []).append(event_id)
    bill_of_event = {event: bill for event, (bill, _visit) in visits.items()}
    bill_of_event.update({event: bill for bill, events in earned.items() for event in events})

    def committed(service: str, consumers: tuple[str, ...]) -> dict[str, dict[str, float]]:
        names = ", ".join(f"'{service}.{consumer}'" for consumer in consumers)
        found: dict[str, dict[str, float]] = {}
        for consumer, event_id, at in _rows(pg.url(service), (
                f"SELECT consumer, event_id, {COMMITTED} FROM kit_inbox WHERE consumer IN ({names})")):
            if event_id in bill_of_event:
                found.setdefault(bill_of_event[event_id], {})[f"{consumer}:{event_id}"] = float(at)
        return found

    points = committed("points", ("on_visit_completed",))
    members = committed("members", ("on_visit_completed", "on_points_earned", "on_visit_points_earned"))
    notes = committed("notifications", ("on_visit_completed", "on_points_earned", "on_visit_points_earned"))
    result: dict[str, dict[str, float]] = {}
    for bill_id, _visit in visits.values():
        needed = 1 + len(earned.get(bill_id, []))  # the visit, and each earn event it caused
        times: dict[str, float] = {}
        if bill_id in points:
            times["points"] = max(points[bill_id].values())
        for name, seen in (("members", members), ("notifications", notes)):
            if len(seen.get(bill_id, {})) >= needed:
                times[name] = max(seen[bill_id].values())
        result[bill_id] = times
    return result


def completed(pg: Any, bills: list[Bill]) -> int:
    """How many of ``bills`` records completed, whatever their sender heard (a sender that gave up waiting
    still cost the suite the whole flow)."""
    wanted = {bill.bill_id for bill in bills}
    return sum(1 for (bill_id,) in _rows(pg.url("records"), (
        "SELECT payload::json->>'bill_id' FROM kit_outbox WHERE event_type = 'visit_completed'")) if bill_id in wanted)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


# -- CPU per process --------------------------------------------------------------------------------------

def _stat(pid: int, reaped: bool = True) -> tuple[int, float]:
    """Parent pid and CPU seconds of ``pid``, with (``reaped``) that of its children that ended and were waited
    for (a PostgreSQL backend that ended counts in the postmaster's); the live ones are counted on their own."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)
    return int(fields[1]), ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by ``root`` and every live process under it."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents[int(entry.name)], cpu[int(entry.name)] = _stat(int(entry.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


def postmaster_pid(pg: Any) -> int:
    return int((pg.data / "postmaster.pid").read_text().split()[0])


class CpuMeter:
    """CPU seconds per process (CareLoop's, PostgreSQL's whole cluster, RabbitMQ's node) between two reads."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack

    def read(self) -> dict[str, float]:
        roots = {name: child.pid for name, child in self.stack.children().items() if child.pid}
        roots["postgresql"] = postmaster_pid(self.stack.pg)
        roots["rabbitmq"] = self.stack.rabbit._process.pid  # noqa: SLF001 - the node's process tree
        found = {name: tree_cpu(pid) for name, pid in roots.items()}
        # PostgreSQL's share per service database: its backends' CPU (pooled connections live on)
        for pid, database in _rows(self.stack.pg.url("postgres"), (
                "SELECT pid, datname FROM pg_stat_activity WHERE datname IS NOT NULL AND pid <> pg_backend_pid()")):
            with contextlib.suppress(OSError, ValueError, IndexError):
                found[f"pg:{database}:{pid}"] = _stat(pid, reaped=False)[1]
        return found

    @staticmethod
    def per(before: dict[str, float], after: dict[str, float], count: int, scale: float = 1000.0) -> dict[str, float]:
        """Milliseconds of CPU per unit of work, per process (``count`` units done between the reads)."""
        spent = {name: after[name] - before.get(name, 0.0) for name in after if not name.startswith("pg:")}
        for name in after:  # a backend counts only if it lived through both reads (a new one: all of its life)
            if name.startswith("pg:") and not name.startswith("pg:postgres:"):
                database = name.rsplit(":", 1)[0]
                spent[database] = spent.get(database, 0.0) + after[name] - before.get(name, 0.0)
        return {name: round(value / max(count, 1) * scale, 2) for name, value in spent.items()}


STATEMENTS = "SELECT d.datname, s.query, s.calls, s.total_exec_time FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"


class StatementClock:
    """``pg_stat_statements`` read every ``every`` seconds during a step (``CARELOOP_FLOW_STATEMENTS=1``): what each
    statement cost in the step's first and last window, to see which one grows as the tables do."""

    def __init__(self, pg: Any, every: float = 60.0) -> None:
        self.pg, self.every, self.snapshots = pg, every, []
        self._thread: Any = None

    def read(self) -> dict[tuple[str, str], tuple[int, float]]:
        return {(db, query): (calls, total) for db, query, calls, total in _rows(self.pg.url("postgres"), STATEMENTS)}

    def start(self) -> None:
        import eventlet

        def keep() -> None:
            while True:
                self.snapshots.append(self.read())
                eventlet.sleep(self.every)

        self._thread = eventlet.spawn(keep)

    def stop(self) -> None:
        self._thread.kill()
        self.snapshots.append(self.read())

    @staticmethod
    def window(before: dict, after: dict) -> dict[tuple[str, str], tuple[int, float]]:
        """(calls, total ms) of each statement between two readings."""
        found = {}
        for key, (calls, total) in after.items():
            was_calls, was_total = before.get(key, (0, 0.0))
            if calls > was_calls:
                found[key] = (calls - was_calls, total - was_total)
        return found

    def scans(self, databases: tuple[str, ...], top: int = 5) -> list[str]:
        """Per database, the tables read whole most (``pg_stat_user_tables``: rows read by sequential scans since
        the cluster started): a table with many rows read this way by a hot path lacks an index."""
        lines = []
        for database in databases:
            names = [row[0] for row in _rows(self.pg.url("postgres"),
                                             f"SELECT datname FROM pg_database WHERE datname LIKE '{database}%'")]
            for name in names:
                rows = _rows(self.pg.url(name), "SELECT relname, seq_scan, seq_tup_read, n_live_tup FROM "
                             f"pg_stat_user_tables WHERE seq_tup_read > 0 ORDER BY seq_tup_read DESC LIMIT {top}")
                lines.append(f"{name}: " + "; ".join(f"{table} {scans} scans, {read} rows read ({live} rows)"
                                                     for table, scans, read, live in rows))
        return lines

    def parsed(self, databases: tuple[str, ...], top: int = 6) -> list[str]:
        """Per database, the statements of the whole step per flow (flows: points' inbox rows written, one a visit):
        those run prepared (``pg_stat_statements`` keeps an ``EXECUTE``'s runs under its ``PREPARE``'s text), those
        PostgreSQL parsed and planned anew, and the most frequent of the latter."""
        if len(self.snapshots) < 2:
            return ["(too few readings)"]
        spent = self.window(self.snapshots[0], self.snapshots[-1])
        flows = sum(calls for (db, sql), (calls, _total) in spent.items()
                    if db.startswith("points") and "INSERT INTO kit_inbox" in sql) or 1
        utility = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET", "DEALLOCATE")
        lines = [f"({flows} flows: points' inbox rows)"]
        for database in databases:
            calls = {sql: count for (db, sql), (count, _total) in spent.items() if db.startswith(database)}
            kind = {sql: "prepared" if sql.lstrip().upper().startswith("PREPARE")
                    else "utility" if sql.split(None, 1)[0].rstrip(";").upper() in utility else "anew"
                    for sql in calls}
            total = {k: sum(count for sql, count in calls.items() if kind[sql] == k)
                     for k in ("prepared", "anew", "utility")}
            lines.append(f"{database}: a flow {total['prepared'] / flows:.2f} statements prepared, "
                         f"{total['anew'] / flows:.2f} parsed anew, {total['utility'] / flows:.2f} BEGIN/COMMIT/...")
            for sql in sorted((sql for sql in calls if kind[sql] == "anew"), key=lambda sql: -calls[sql])[:top]:
                lines.append(f"  {calls[sql] / flows:.2f} a flow: {' '.join(sql.split())[:150]}")
        return lines

    def report(self, databases: tuple[str, ...], top: int = 8) -> list[str]:
        """Per database, the ``top`` statements of the last window by time, beside the first window: calls, mean
        ms, total ms."""
        if len(self.snapshots) < 3:
            return ["(too few readings for a first and a last window)"]
        first = self.window(self.snapshots[0], self.snapshots[1])
        last = self.window(self.snapshots[-2], self.snapshots[-1])
        lines = []
        for database in databases:
            ranked = sorted((key for key in last if key[0].startswith(database)), key=lambda key: -last[key][1])
            total_first = sum(t for (db, _q), (_c, t) in first.items() if db.startswith(database))
            total_last = sum(t for (db, _q), (_c, t) in last.items() if db.startswith(database))
            lines.append(f"{database}: {total_first:.0f} ms in the first window, {total_last:.0f} ms in the last")
            for key in ranked[:top]:
                calls, total = last[key]
                was_calls, was_total = first.get(key, (0, 0.0))
                was = f"{was_total / was_calls:.3f}" if was_calls else "-"
                sql = " ".join(key[1].split())[:110]
                lines.append(f"  mean ms {was} -> {total / calls:.3f} (calls {was_calls} -> {calls}): {sql}")
        return lines
