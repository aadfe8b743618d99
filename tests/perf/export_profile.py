"""``python -m tests.perf.export_profile ROWS [--profile out.prof] [--role group_admin]``: the members export in
this process, without RabbitMQ: the gateway's page loop (``gateway.routes.exports._write_pages``, pages of
``PAGE``) writing CSV, each page read and dumped by ``MembersService.export_members`` itself (on a stand-in for
the service's dependencies) and carried through the kit's serializer both ways as the RPC carries it — where a
row's time goes (cProfile counting CPU time, which a loaded machine inflates far less than wall time).

``ROWS`` members are written first with COPY (``tests.perf.export_data``) into a fresh PostgreSQL database.
"""

from __future__ import annotations

import cProfile
import csv
import os
import sys
import time
import uuid
from types import SimpleNamespace

os.environ.setdefault("CARELOOP_DATA_KEYS", "test1=" + "dGVzdC1rZXktb25lLTMyLWJ5dGVzLWxvbmctb2suLi4=")
os.environ.setdefault("CARELOOP_INDEX_KEY", "dGVzdC1pbmRleC1rZXktMzItYnl0ZXMtbG9uZy1vay4=")


from gateway.routes import exports  # noqa: E402
from services.kit import serializer  # noqa: E402
from services.kit.caller import Identity  # noqa: E402
from services.kit.db import Store  # noqa: E402
from services.kit.migrate import upgrade  # noqa: E402
from services.members.service import MembersService  # noqa: E402
from tests.harness import PG_ADMIN_URL, pg_admin  # noqa: E402
from tests.perf.export_data import fill_members  # noqa: E402


def main(rows: int, profile: str | None, role: str) -> None:
    name = f"cl_export_profile_{uuid.uuid4().hex[:8]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = base.replace("postgresql://", "postgresql+psycopg2://") + "/" + name
    try:
        upgrade("members", url)
        fill_members(base + "/" + name, rows)
        store = Store(url)
        caller = Identity(kind="staff" if role != "integration" else "system", subject="profile", role=role,
                          branches=("*",))
        profiler = cProfile.Profile(time.process_time) if profile else None
        written = [0]

        def fetch(query: dict) -> dict:
            with store.transaction() as session:
                service = SimpleNamespace(db=SimpleNamespace(session=session), caller=caller,
                                          config={"EXPORT_SAFETY_LAG_SECONDS": 0})
                answer = MembersService.export_members(service, query)
            page = serializer.loads(serializer.dumps(answer))  # the RPC's reply, both ways
            written[0] += len(page["items"])
            return page

        with open(os.devnull, "w", encoding="utf-8", newline="") as sink:
            writer = csv.writer(sink)
            started, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            exports._write_pages(writer, exports.MEMBER_COLUMNS, fetch, exports._member_row, None)
            if profiler:
                profiler.disable()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        store.dispose()
        if profiler:
            profiler.dump_stats(profile)
        written = written[0]
        print(f"{written:,} members exported as {role}, pages of {exports.PAGE}, load {os.getloadavg()[0]:.1f}: "
              f"{seconds:.2f} s wall ({written / seconds:,.0f} rows/s), {cpu:.2f} s CPU "
              f"({cpu / written * 1000:.3f} ms a row)")
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    arguments = sys.argv[1:]
    out, role = None, "group_admin"
    for option in ("--profile", "--role"):
        if option in arguments:
            at = arguments.index(option)
            if option == "--profile":
                out = arguments[at + 1]
            else:
                role = arguments[at + 1]
            del arguments[at:at + 2]
    main(int(arguments[0]), out, role)
