"""The backend's CPU an event for the outbox's write and mark under each index layout (``outbox_mark_micro.sql``).

    python -m tests.perf.outbox_mark_micro URL ROUNDS VARIANT...   # e.g. a scratch database, 3, base drop1 cte trg

Each variant's tables are made anew by the SQL file's setup (what comes before its first ``CALL run``), then 20,000
events are written and marked one transaction each by its procedure ``run``; the CPU is the backend's own
(``/proc/<pid>/stat``: the machine's other load does not count in it, unlike wall time).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

EVENTS = 20_000
SETUP = Path(__file__).with_suffix(".sql").read_text().split("CALL run(")[0]


def ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main(url: str, rounds: int, variants: list[str]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as setup:
        setup.write(SETUP)
        setup.flush()
        for _ in range(rounds):
            for variant in variants:
                subprocess.run(["psql", url, "-q", "-v", f"v={variant}", "-f", setup.name], check=True,
                               capture_output=True)
                connection = psycopg2.connect(url)
                connection.autocommit = True  # the procedure commits each event's transactions itself
                with connection.cursor() as cursor:
                    cursor.execute("SET synchronous_commit = off")
                    cursor.execute("SELECT pg_backend_pid()")
                    pid = cursor.fetchone()[0]
                    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
                    started, before = time.time(), ticks(pid)
                    cursor.execute("CALL run(%s, %s, false)", (variant, EVENTS))
                    cpu, wall = (ticks(pid) - before) / 100, time.time() - started
                connection.close()
                print(f"{time.strftime('%H:%M:%S', time.gmtime())} load {load} {variant:6s} backend CPU "
                      f"{cpu * 1e6 / EVENTS:6.1f} us an event (insert, mark, two commits), wall "
                      f"{wall * 1e6 / EVENTS:6.1f} us", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
