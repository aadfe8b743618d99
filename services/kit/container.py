"""The service container every CareLoop service runs in (config ``SERVICE_CONTAINER_CLS``).

nameko sends an RPC reply, or acknowledges an event, in the entrypoint's ``handle_result`` — *before*
dependency providers see ``worker_result``. A transaction committed in ``worker_result`` would therefore
be committed after the caller was told "done" (and lost if the process died in between). This container
gives dependency providers one more hook, ``before_result(worker_ctx, result, exc_info)``, that runs
after the service method and before the entrypoint answers; the kit's database commits there, so a
reply or an ack always follows a durable commit, and a failed commit turns into the worker's error.

It also keeps the process alive when the answer cannot be given: nameko kills a container whose worker
thread raises, so an RPC reply or an ack that failed because the broker went away used to end the whole
service. The kit's consumer (``kit.consumer``) already absorbs those failures where they happen; whatever
else escapes an entrypoint's ``handle_result`` is logged here (the entrypoint's name and the error's class,
no payload) and the worker ends normally — its message, never acknowledged, is delivered again.

It starts the service's dependency providers before its entrypoints and their shared consumers: nameko starts
all extensions at once, so an event kept in a queue could reach its handler while a provider's ``start`` was still
preparing what the handler reads (notifications seeds the shipped journeys there: a new member's welcome was lost
when the kept ``member_enrolled`` came first). Nothing consumes, and no timer fires, until every provider started.

Once started, it moves every object alive at that moment (modules, schemas, mappers: ~160,000 of them in the
gateway) out of the garbage collector's reach (``gc.freeze``). A full collection walked them all, about 80 ms
of one core with every request in the process waiting: the gateway's p99 was seven times its p50. What a
worker allocates afterwards is collected as before. Once per process: a test process starting many
containers would otherwise keep every cycle alive at each start for ever.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import sys
import time
from typing import Any

from nameko.containers import ServiceContainer
from nameko.utils.concurrency import SpawningSet

log = logging.getLogger(__name__)

CONTAINER_PATH = "services.kit.container.Container"


@functools.cache
def _freeze_start_up() -> None:
    """What is alive once the first container started, out of the collector's reach (the docstring above)."""
    gc.collect()
    gc.freeze()
    if os.environ.get(GC_LOG_SETTING):
        gc.callbacks.append(_GcClock().observe)


GC_LOG_SETTING = "CARELOOP_GC_LOG"
"""Environment: log every collection of the garbage collector that held the process for ``GC_LOG_MS`` or longer
(a diagnostic for benchmarks: a collection stops every green thread of the process)."""
GC_LOG_MS = 20.0


class _GcClock:
    """Times each collection (``gc.callbacks``) and logs the long ones: generation, duration, objects it looked at."""

    def __init__(self) -> None:
        self._started = 0.0

    def observe(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        held_ms = (time.perf_counter() - self._started) * 1000
        if held_ms >= GC_LOG_MS:
            generation = info.get("generation")
            log.warning("garbage collection of generation %s held the process %.0f ms (%s collected; %d objects "
                        "tracked in generation 2, %d frozen)", generation, held_ms, info.get("collected"),
                        len(gc.get_objects(2)), gc.get_freeze_count())


class Container(ServiceContainer):
    def start(self) -> None:
        """nameko's ``start`` with the providers first (the docstring above)."""
        log.debug("starting %s", self)
        self.started = True
        self.extensions.all.setup()
        self.dependencies.all.start()
        SpawningSet(self.subextensions | self.entrypoints).all.start()
        _freeze_start_up()

    def spawn_worker(self, entrypoint: Any, args: Any, kwargs: Any, context_data: Any = None,
                     handle_result: Any = None) -> Any:
        def finish(worker_ctx: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
            result, exc_info = self._before_result(worker_ctx, result, exc_info)
            if handle_result is None:
                return result, exc_info
            try:
                return handle_result(worker_ctx, result, exc_info)
            except Exception as error:
                log.error("could not answer or acknowledge %s (%s); its message will be delivered again",
                          worker_ctx.entrypoint.method_name, type(error).__name__, exc_info=True)
                return result, exc_info

        return super().spawn_worker(entrypoint, args, kwargs, context_data=context_data,
                                    handle_result=finish)

    def _before_result(self, worker_ctx: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
        for provider in self.dependencies:
            hook = getattr(provider, "before_result", None)
            if hook is None:
                continue
            try:
                result, exc_info = hook(worker_ctx, result, exc_info)
            except Exception:  # a failing hook (a commit) becomes the worker's error
                result, exc_info = None, sys.exc_info()
        return result, exc_info
