"""The two ends of the framework-tax benchmark (``test_framework_tax_perf.py``), each run as a process.

``python -m tests.perf.tax_echo serve <amqp_uri> <queue> <prefetch>``
    the raw AMQP echo: one py-amqp connection consuming ``queue`` (manual acks, ``prefetch`` unacked at
    most), answering each request on its ``reply_to`` with its ``correlation_id``: JSON body in, the
    same ``{"result": [args, kwargs], "error": null}`` that nameko's echo answers, out. No framework.

``python -m tests.perf.tax_echo load <raw|nameko|peer> <amqp_uri> <target> <callers> <warm_up> <seconds> <server_pid> [kit]``
    ``callers`` greenthreads calling back to back; prints one JSON line: calls/s, p50/p99, and the CPU
    milliseconds per call of this process (the callers) and of ``server_pid`` (the echo). ``raw``: each
    caller its own py-amqp connection, RabbitMQ direct reply-to (``amq.rabbitmq.reply-to``); ``nameko``:
    each caller its own ``ClusterRpcProxy`` on ``target`` (a service name), with the kit's serializer
    if ``kit`` is given (nameko's default, kombu's ``json``, otherwise); ``peer``: the kit's ``Peer`` (as a
    service or the gateway calls), one caller container, the kit's serializer.

``python -m tests.perf.tax_echo publish <amqp_uri> <source_service> <event_type> <rate> <count>``
    ``count`` events (``{"event_id", "occurred_at", "n"}``, persistent, JSON) on ``<source_service>.events``
    at ``rate`` a second, open loop (each at its due time, whatever the consumers do), as a relay would
    publish them; prints one JSON line: how many, and over how many seconds.
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

import amqp  # noqa: E402

PAYLOAD = {"rule": "activity", "branch": "SH01"}
"""The third argument of every call (as the points benchmark's echo)."""


def amqp_connection(amqp_uri: str) -> amqp.Connection:
    url = urlparse(amqp_uri)
    connection = amqp.Connection(host=f"{url.hostname}:{url.port or 5672}", userid=url.username or "guest",
                                 password=url.password or "guest", virtual_host=url.path[1:] or "/")
    connection.connect()
    return connection


def serve(amqp_uri: str, queue: str, prefetch: int) -> None:
    connection = amqp_connection(amqp_uri)
    channel = connection.channel()
    channel.queue_declare(queue, durable=False, auto_delete=False)
    channel.basic_qos(0, prefetch, False)

    def answer(message: amqp.Message) -> None:
        request = json.loads(message.body)
        body = json.dumps({"result": [request["args"], request["kwargs"]], "error": None})
        channel.basic_publish(amqp.Message(body, content_type="application/json", content_encoding="utf-8",
                                           correlation_id=message.properties["correlation_id"]),
                              exchange="", routing_key=message.properties["reply_to"])
        channel.basic_ack(message.delivery_tag)

    channel.basic_consume(queue, callback=answer)
    print("ready", flush=True)
    while True:
        connection.drain_events()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_caller(amqp_uri: str, queue: str) -> Any:
    """A callable making one request/reply over direct reply-to on a connection of its own."""
    connection = amqp_connection(amqp_uri)
    channel = connection.channel()
    replies: dict[str, Any] = {}
    channel.basic_consume("amq.rabbitmq.reply-to", no_ack=True,
                          callback=lambda m: replies.__setitem__(m.properties["correlation_id"], m.body))

    def call(*args: Any, **kwargs: Any) -> Any:
        correlation_id = uuid.uuid4().hex
        body = json.dumps({"args": args, "kwargs": kwargs})
        channel.basic_publish(amqp.Message(body, content_type="application/json", content_encoding="utf-8",
                                           correlation_id=correlation_id, reply_to="amq.rabbitmq.reply-to"),
                              exchange="", routing_key=queue)
        while correlation_id not in replies:
            connection.drain_events(timeout=30)
        reply = json.loads(replies.pop(correlation_id))
        return reply["result"]

    return call


def nameko_caller(amqp_uri: str, service: str, kit: bool) -> Any:
    from nameko.standalone.rpc import ClusterRpcProxy

    config: dict[str, Any] = {"AMQP_URI": amqp_uri}
    if kit:
        from services.kit.serializer import NAMEKO_CONFIG

        config.update(NAMEKO_CONFIG)
    proxy = ClusterRpcProxy(config, timeout=30).start()
    return getattr(proxy, service).echo


def peer_callers(amqp_uri: str, service: str, callers: int) -> list[Any]:
    """``callers`` calls of ``service.echo`` through the kit's ``Peer`` (what a service or the gateway calls
    with), each from a proxy of its own on one caller container: its reply listener, its publishes."""
    from nameko.containers import WorkerContext

    from services.kit import Service
    from services.kit.container import Container
    from services.kit.peers import Peer
    from services.kit.serializer import NAMEKO_CONFIG

    class PerfKitCaller(Service):
        name = "perf_kit_caller"
        target = Peer(service)

    container = Container(PerfKitCaller, {"AMQP_URI": amqp_uri, **NAMEKO_CONFIG, "METRICS_PORT": 0,
                                          "PEER_TIMEOUT": 30})
    container.start()
    peer = next(d for d in container.dependencies if d.attr_name == "target")
    worker_ctx = WorkerContext(container, None, next(iter(container.entrypoints)), data={})
    return [peer.get_dependency(worker_ctx).echo for _ in range(callers)]


def percentile(values: list[float], fraction: float) -> float:
    return values[min(int(len(values) * fraction), len(values) - 1)] if values else float("nan")


def load(mode: str, amqp_uri: str, target: str, callers: int, warm_up: float, seconds: float, server_pid: int,
         kit: bool) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    window = {"measuring": False, "stop": False}
    calls = (peer_callers(amqp_uri, target, callers) if mode == "peer" else
             [raw_caller(amqp_uri, target) if mode == "raw" else nameko_caller(amqp_uri, target, kit)
              for _ in range(callers)])

    def caller(number: int) -> None:
        call, sequence = calls[number], 0
        while not window["stop"]:
            sequence += 1
            started = time.perf_counter()
            try:
                answer = call(number, sequence, PAYLOAD)
            except Exception as error:  # counted; the test fails on any
                errors.append(f"{type(error).__name__}: {error}")
                continue
            if answer[0][1] != sequence:
                errors.append(f"caller {number} got the answer to another call: {answer!r}")
            if window["measuring"]:
                latencies.append(time.perf_counter() - started)

    pool = eventlet.GreenPool(callers)
    for number in range(callers):
        pool.spawn(caller, number)
    eventlet.sleep(warm_up)
    window["measuring"] = True
    began, own_before, server_before = time.perf_counter(), cpu_seconds(os.getpid()), cpu_seconds(server_pid)
    eventlet.sleep(seconds)
    window["measuring"] = False
    elapsed = time.perf_counter() - began
    own, server = cpu_seconds(os.getpid()) - own_before, cpu_seconds(server_pid) - server_before
    window["stop"] = True
    pool.waitall()
    latencies.sort()
    count = max(len(latencies), 1)
    return {"calls": len(latencies), "per_second": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2), "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "caller_cpu_ms": round(own / count * 1000, 3), "server_cpu_ms": round(server / count * 1000, 3),
            "error_count": len(errors), "errors": errors[:3]}


def publish(amqp_uri: str, source: str, event_type: str, rate: float, count: int) -> dict[str, Any]:
    from datetime import UTC, datetime

    connection = amqp_connection(amqp_uri)
    channel = connection.channel()
    exchange = f"{source}.events"
    channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
    began = time.perf_counter()
    for n in range(count):
        due = began + n / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        body = json.dumps({"event_id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC).isoformat(), "n": n})
        channel.basic_publish(amqp.Message(body, content_type="application/json", content_encoding="utf-8",
                                           delivery_mode=2), exchange=exchange, routing_key=event_type)
    elapsed = time.perf_counter() - began
    connection.close()
    return {"published": count, "seconds": round(elapsed, 2)}


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "publish":
        print(json.dumps(publish(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6]))),
              flush=True)
    else:
        mode, uri, target, callers, warm, seconds, pid = sys.argv[2:9]
        arguments = (mode, uri, target, int(callers), float(warm), float(seconds), int(pid), "kit" in sys.argv[9:])
        if os.environ.get("CARELOOP_PERF_PROFILE") and float(seconds) >= 1:  # the callers' CPU, whole run
            import cProfile

            profiler = cProfile.Profile(time.process_time)
            result = profiler.runcall(load, *arguments)
            profiler.dump_stats(Path(os.environ["CARELOOP_PERF_PROFILE"]) / f"callers-{mode}-{target}-{callers}.prof")
        else:
            result = load(*arguments)
        print(json.dumps(result), flush=True)
        os._exit(0)  # the proxies' consumers need no orderly goodbye
