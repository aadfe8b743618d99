"""A memory probe for a process started with this folder on its ``PYTHONPATH`` (tests/perf/test_gateway_memory.py
gives it to the gateway): with ``CARELOOP_MEMORY_PROBE=<folder>`` set, each ``SIGUSR1`` writes ``snap-<n>.tracemalloc``
(the snapshot) and ``snap-<n>.json`` (RSS, tracemalloc's totals, objects by type, RPC replies waited for, open
files, and glibc's heap: bytes in use and free, ``mallinfo2``) into that folder; ``SIGUSR2`` hands the heap's free
memory back to the system (``malloc_trim``) and writes ``trim.json`` (RSS before and after). tracemalloc starts at the first signal (``CARELOOP_MEMORY_PROBE_FRAMES`` frames, default
8), not at start: tracing the imports would slow the start several times over, and what grows comes later.
Without the variable this module does nothing.
"""

from __future__ import annotations

import os

_FOLDER = os.environ.get("CARELOOP_MEMORY_PROBE")

if _FOLDER:
    import ctypes
    import signal
    import tracemalloc

    _taken = [0]
    _libc = ctypes.CDLL("libc.so.6")

    class _Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                         "fsmblks", "uordblks", "fordblks", "keepcost")]

    _libc.mallinfo2.restype = _Mallinfo2

    def _heap() -> dict[str, int]:
        info = _libc.mallinfo2()
        return {"heap": info.arena, "mmapped": info.hblkhd, "in_use": info.uordblks, "free": info.fordblks}

    def _write(name: str, figures: dict[str, object]) -> None:
        import json

        with open(name + ".part", "w") as out:
            json.dump(figures, out)
        os.replace(name + ".part", name + ".json")  # the reader waits for this name: whole or absent

    def _rss_kib() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def _dump(_signum: int, _frame: object) -> None:
        import collections
        import gc

        if not tracemalloc.is_tracing():
            tracemalloc.start(int(os.environ.get("CARELOOP_MEMORY_PROBE_FRAMES", "8")))
        gc.collect()
        _taken[0] += 1
        name = f"{_FOLDER}/snap-{_taken[0]}"
        tracemalloc.take_snapshot().dump(name + ".tracemalloc")
        objects = gc.get_objects()
        types = collections.Counter(type(each).__name__ for each in objects)
        pending = sum(len(getattr(each, "_waiting", ())) for each in objects
                      if type(each).__name__ == "DirectReplies")  # calls waiting for a reply (kit.replies)
        current, peak = tracemalloc.get_traced_memory()
        figures = {"rss_kib": _rss_kib(), "traced": current, "traced_peak": peak,
                   "tracemalloc_overhead": tracemalloc.get_tracemalloc_memory(),
                   "reply_events": pending, "open_files": len(os.listdir("/proc/self/fd")),
                   "objects": len(objects), "types": dict(types.most_common(40)), "malloc": _heap()}
        del objects
        _write(name, figures)

    def _trim(_signum: int, _frame: object) -> None:
        before = _rss_kib()
        _libc.malloc_trim(0)
        _write(f"{_FOLDER}/trim", {"rss_kib_before": before, "rss_kib_after": _rss_kib(), "malloc": _heap()})

    signal.signal(signal.SIGUSR1, _dump)
    signal.signal(signal.SIGUSR2, _trim)
