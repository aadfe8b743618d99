"""The faults, one at a time, under load; and what one run of a scenario measured.

``run(stack, load, scenario, seconds)`` starts the load, injects the fault a few seconds in (``inject``
returns once the fault is over: the process restarted, the broker back...), keeps the load up for
``seconds`` in all, stops it, drains, checks the invariants and returns a ``Row`` for the table.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kombu import Connection, Producer

from tests.faults.invariants import Verdict, check, drain
from tests.faults.load import Load
from tests.faults.stack import SERVICES, Stack

POISON_QUEUE = "evt-records-visit_completed--points.on_visit_completed"


@dataclass
class Scenario:
    name: str
    inject: Callable[[Stack], None]
    dead_letters: dict[str, int] = field(default_factory=dict)  # what it parks on purpose, by service
    after: Callable[[Stack], None] | None = None  # undo what must not outlive the scenario (after the checks)
    kills: str | None = None  # the process it kills (the only one allowed to have been restarted)


@dataclass
class Row:
    scenario: str
    operations: int
    acknowledged: int
    lost: int
    duplicated: int
    fives: int
    recover_s: float
    verdict: Verdict
    restarts: dict[str, int] = field(default_factory=dict)
    unacknowledged: dict[str, int] = field(default_factory=dict)  # "<kind> <status>" -> operations

    def line(self) -> str:
        return (f"{self.scenario:<22} {self.operations:>10} {self.acknowledged:>12} {self.lost:>5} "
                f"{self.duplicated:>10} {self.fives:>4} {self.recover_s:>10.1f}")


ROWS: list[Row] = []
"""Every scenario run in this session, for the table printed at the end (tests/faults/conftest.py)."""

HEADER = f"{'scenario':<22} {'operations':>10} {'acknowledged':>12} {'lost':>5} {'duplicated':>10} {'5xx':>4} " \
         f"{'recover s':>10}"


def kill(service: str) -> Callable[[Stack], None]:
    def inject(stack: Stack) -> None:
        child = stack.children()[service]
        before = child.restarts
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while stack.children()[service].restarts == before:  # the runner notices and starts it again
            assert time.monotonic() < deadline, f"{service} was not restarted in 60 s"
            time.sleep(0.1)
    return inject


def broker_restart(stack: Stack) -> None:
    stack.rabbit.stop()
    time.sleep(10)
    stack.rabbit.start()


def postgres_restart(stack: Stack) -> None:
    stack.pg.stop("fast")
    time.sleep(5)
    stack.pg.start()


def cut(which: str) -> Callable[[Stack], None]:
    def inject(stack: Stack) -> None:
        proxies = stack.broker_proxies if which == "broker" else stack.db_proxies
        for proxy in proxies.values():
            proxy.cut()
        time.sleep(8)
        for proxy in proxies.values():
            proxy.restore()
    return inject


def poison(stack: Stack) -> None:
    """Two messages no retry can fix into points' visit_completed queue: a payload its contract refuses, and
    a body that is not JSON at all. Both belong in careloop.dead.points, and nowhere else."""
    with Connection(stack.rabbit.amqp_uri()) as connection:
        producer = Producer(connection.channel())
        producer.publish(json.dumps({"event_id": "poison-1", "visit_id": "not a visit"}), routing_key=POISON_QUEUE,
                         exchange="", content_type="application/json", content_encoding="utf-8",
                         delivery_mode=2)
        producer.publish(b"\xff\xfe{not json", routing_key=POISON_QUEUE, exchange="",
                         content_type="application/json", content_encoding="utf-8", delivery_mode=2)


def purge_poison(stack: Stack) -> None:
    stack.rabbit.ctl("purge_queue", "careloop.dead.points")


def replicas(stack: Stack) -> None:
    for service in SERVICES:
        stack.add_process(service, replica=2)
    stack.wait_ready(120)


def drop_replicas(stack: Stack) -> None:
    for service in SERVICES:
        stack.remove_process(f"{service}-2")


SCENARIOS = [
    *(Scenario(f"kill -9 {service}", kill(service), kills=service) for service in SERVICES),
    Scenario("broker stop/start", broker_restart),
    Scenario("postgresql restart", postgres_restart),
    Scenario("broker link cut", cut("broker")),
    Scenario("database link cut", cut("database")),
    Scenario("poison, undecodable", poison, {"points": 2}, purge_poison),
    Scenario("two replicas each", replicas, after=drop_replicas),
]


def run(stack: Stack, load: Load, scenario: Scenario, seconds: float, lead: float = 4.0,
        rate: float = 8.0) -> Row:
    started = time.time()
    restarts = stack.restarts()
    load.start(rate)
    time.sleep(lead)
    fault_at = time.monotonic()
    scenario.inject(stack)
    stack.wait_ready(120)
    recover = time.monotonic() - fault_at
    time.sleep(max(seconds - (time.time() - started), 0))
    load.stop()
    drain(stack)
    ops = load.since(started)
    verdict = check(stack, ops, load.ops, scenario.dead_letters)
    if scenario.after is not None:
        scenario.after(stack)
    died = {name: count - restarts.get(name, 0) for name, count in stack.restarts().items()
            if count - restarts.get(name, 0)}
    for name, count in died.items():
        if name != scenario.kills:  # processes survive the broker and the database going away (issue 15)
            verdict.problems.append(f"process {name} died and was restarted {count} time(s) by the runner, "
                                    f"though this scenario does not kill it (logs: {stack.logs})")
    return Row(scenario.name, len(ops), sum(op.acked for op in ops), len(verdict.lost), len(verdict.duplicated),
               sum(op.fives for op in ops), recover, verdict, died,
               dict(Counter(f"{op.kind} {op.status}" for op in ops if not op.acked)))


def report(rows: list[Row]) -> str:
    lines = [HEADER, *(row.line() for row in rows)]
    lines.append("not acknowledged (operation, last status; 0 = no answer), restarts by the runner:")
    for row in rows:
        lines.append(f"  {row.scenario}: {row.unacknowledged or '-'}; restarts {row.restarts or '-'}")
    for row in rows:
        for kind, items in (("lost", row.verdict.lost), ("duplicated", row.verdict.duplicated),
                            ("problem", row.verdict.problems), ("note", row.verdict.notes)):
            lines.extend(f"  {row.scenario}: {kind}: {item}" for item in items[:10])
    return "\n".join(lines)


def describe(row: Row) -> dict[str, Any]:
    return {"scenario": row.scenario, "lost": row.verdict.lost[:10], "duplicated": row.verdict.duplicated[:10],
            "problems": row.verdict.problems[:10], "restarts": row.restarts}
