"""A 3-node RabbitMQ cluster on loopback with quorum queues, a load of paid bills, one node stopped.

    make cluster          # or: .venv/bin/python -m pytest tests/perf/test_rabbit_cluster.py -s -p no:randomly

Not in the default test command (tests/perf). Three nodes of Debian's ``rabbitmq-server`` (``tests.nodes.
RabbitNode``: own node names, ports and data folders, one Erlang cookie) form a cluster; the suite runs as
real processes (``tests.faults.stack``) on it with ``QUEUE_TYPE=quorum`` and every node in its
``AMQP_URI`` (kombu fails over in order); the fault suite's load (``tests.faults.load``) sends paid bills,
refunds and the rest; the node every client is connected to is stopped mid-load and started again. Then:
every acknowledged bill earned exactly once, nothing doubled, every invariant of the fault suite holds, and
every quorum queue has its three members back. The table it prints goes to deploy/README.md.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.invariants import check, drain
from tests.faults.load import Load
from tests.faults.stack import SERVICES, Stack
from tests.nodes import RabbitNode

LOAD_RATE = float(os.environ.get("CARELOOP_CLUSTER_RATE", "4"))
BEFORE, DOWN, AFTER = (float(part) for part in os.environ.get("CARELOOP_CLUSTER_SECONDS", "20,30,20").split(","))


class ClusterStack(Stack):
    """The fault suite's stack on three clustered RabbitMQ nodes, quorum queues, no proxies."""

    def __init__(self, base: Path) -> None:
        super().__init__(base, proxied=False)
        run = secrets.token_hex(3)
        self.nodes = [RabbitNode(base / f"rabbit{number}", name=f"careloop-cluster{number}-{run}@localhost")
                      for number in (1, 2, 3)]
        cookie = secrets.token_hex(16).upper()
        for node in self.nodes:
            path = node.base_dir / "home" / ".erlang.cookie"
            path.chmod(0o600)
            path.write_text(cookie)
            path.chmod(0o400)
        self.rabbit = self.nodes[0]  # where Stack declares the topology; clients know every node
        uri = ";".join(node.amqp_uri() for node in self.nodes)
        self.env = {service: {"AMQP_URI": uri, "QUEUE_TYPE": "quorum"} for service in SERVICES}

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", self.nodes[0].name)
            node.ctl("start_app")
        os.environ["QUEUE_TYPE"] = "quorum"  # Stack.start declares the event topology with it
        super().start()

    def any_node(self) -> RabbitNode:
        return next(node for node in self.nodes if node.running)

    def queue_depths(self) -> dict[str, int]:
        return self.any_node().queue_depths()

    def quorum_members(self) -> dict[str, tuple[int, int]]:
        """quorum queue -> (members, members online)."""
        out = self.any_node().ctl("list_queues", "--formatter", "json", "name", "type", "members", "online")
        return {queue["name"]: (len(queue["members"]), len(queue["online"])) for queue in json.loads(out)
                if queue["type"] == "quorum"}

    def close(self) -> None:
        try:
            super().close()
        finally:
            for node in self.nodes[1:]:
                node.close()


@pytest.mark.perf
@pytest.mark.timeout(1200)
def test_a_node_stopped_mid_load_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    stack = ClusterStack(tmp_path)
    try:
        stack.start()
        members = stack.quorum_members()
        assert members and set(members.values()) == {(3, 3)}, members
        load = Load(stack)
        load.prepare()
        load.start(rate=LOAD_RATE)
        time.sleep(BEFORE)  # load running on the whole cluster
        stopped = stack.nodes[0]  # the first in every AMQP_URI: every client is connected to it
        stopping = time.monotonic()
        stopped.stop()
        stop_seconds = time.monotonic() - stopping
        during = stack.quorum_members()
        time.sleep(DOWN)  # load running on two nodes
        stopped.start()
        time.sleep(AFTER)
        load.stop()
        drained = drain(stack, seconds=180)
        deadline = time.monotonic() + 120
        while set((after := stack.quorum_members()).values()) != {(3, 3)} and time.monotonic() < deadline:
            time.sleep(1)
        verdict = check(stack, load.ops, load.ops, {})
        bills = [op for op in load.ops if op.kind == "bill"]
        acked = [op for op in bills if op.acked]
        rows = [
            ("nodes; quorum queues (members online before / node down / after)",
             f"3; {len(members)} ({min(v[1] for v in members.values())} / "
             f"{min(v[1] for v in during.values())} / {min(v[1] for v in after.values())})"),
            ("load; seconds before / node down / after", f"{LOAD_RATE:g} ops/s; {BEFORE:g} / {DOWN:g} / {AFTER:g}"),
            ("operations sent / acknowledged", f"{len(load.ops)} / {sum(op.acked for op in load.ops)}"),
            ("not acknowledged, by kind and last status", ", ".join(
                f"{kind} {status}: {count}" for (kind, status), count in sorted(Counter(
                    (op.kind, op.status) for op in load.ops if not op.acked).items())) or "none"),
            ("paid bills sent / acknowledged", f"{len(bills)} / {len(acked)}"),
            ("acknowledged bills lost / doubled", f"{len(verdict.lost)} / {len(verdict.duplicated)}"),
            ("other invariants broken", f"{len(verdict.problems)}"),
            ("node stop took; drain after", f"{stop_seconds:.1f} s; {drained:.1f} s"),
        ]
        print("\n| what | figure |\n| --- | --- |\n" + "\n".join(f"| {what} | {figure} |" for what, figure in rows))
        assert acked, "no paid bill was acknowledged"
        assert verdict.clean, f"{verdict}\n{stack.log_tails()}"
        assert set(after.values()) == {(3, 3)}, after
    finally:
        stack.close()
