"""``python -m tests.perf.import_profile ROWS [BATCH] [--profile out.prof]``: the members side of an import
(``members.batches.check`` then ``enrol_each``, a batch at a time, as ``check_enrolments`` / ``enrol_batch`` run
them) in this process on a fresh PostgreSQL database, without RabbitMQ or the interfaces process: where the
per-row time goes (cProfile counting CPU time), and wall time beside ``COPY`` of the same rows.

The rows are read as the interfaces process reads them (``imports.columns.enrolment`` of
``tests.import_samples.members``); the outbox rows the batch writes are written (``BatchEvents``) and committed.

``python -m tests.perf.import_profile floor ROWS``: the floor of a row's CPU under the import's rules, each
irreducible piece measured alone over the same rows (no database, no RPC): the enrolment schema's load, the phone
parsed and matched by ``phonenumbers``, the personal fields sealed with AES-256-GCM and the blind indexes (HMAC),
and what that sum allows in rows a second on the machine's cores.
"""

from __future__ import annotations

import cProfile
import os
import sys
import time
import uuid

os.environ.setdefault("CARELOOP_DATA_KEYS", "test1=" + "dGVzdC1rZXktb25lLTMyLWJ5dGVzLWxvbmctb2suLi4=")
os.environ.setdefault("CARELOOP_INDEX_KEY", "dGVzdC1pbmRleC1rZXktMzItYnl0ZXMtbG9uZy1vay4=")

import psycopg2  # noqa: E402

from services.interfaces.imports import columns as cols  # noqa: E402
from services.kit.caller import Identity  # noqa: E402
from services.kit.clock import utcnow  # noqa: E402
from services.kit.config import group_from_config  # noqa: E402
from services.kit.db import Store  # noqa: E402
from services.kit.migrate import upgrade  # noqa: E402
from services.kit.outbox_batch import BatchEvents  # noqa: E402
from services.members import batches  # noqa: E402
from services.members.events import EVENTS  # noqa: E402
from services.members.service import enrolled_event  # noqa: E402
from tests import import_samples  # noqa: E402
from tests.harness import PG_ADMIN_URL, pg_admin  # noqa: E402

ADMIN = Identity(kind="staff", subject="admin", role="group_admin", branches=("*",))


def main(rows: int, size: int, profile: str | None) -> None:
    name = f"cl_import_profile_{uuid.uuid4().hex[:8]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://") + "/" + name
    try:
        upgrade("members", url)
        store = Store(url)
        group = group_from_config({})
        header = import_samples.HEADERS
        columns = cols.resolve(list(header))
        cells = [cols.cells_of(columns, row) for row in import_samples.members(rows)]
        read = [{"key": f"import:profile:{i + 2}", "member": cols.enrolment(row, None, None)[0],
                 "card_number": cols.legacy_card(row)} for i, row in enumerate(cells)]
        batched = [read[at:at + size] for at in range(0, rows, size)]
        profiler = cProfile.Profile(time.process_time) if profile else None
        timings = {}
        cpu = {}
        for phase in ("check", "commit"):
            started, started_cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            for batch in batched:
                with store.transaction() as session:
                    if phase == "check":
                        outcomes = batches.check(session, batch, group, ADMIN)
                        assert all(outcome["status"] == "valid" for outcome in outcomes), outcomes[:3]
                    else:
                        events = BatchEvents(session, EVENTS)
                        outcomes = batches.enrol_each(session, batch, group, ADMIN, utcnow(), "standard",
                                                      lambda member, events=events: events(
                                                          "member_enrolled", enrolled_event(member)))
                        events.flush()
                        assert all(outcome["status"] == "enrolled" for outcome in outcomes), outcomes[:3]
            if profiler:
                profiler.disable()
            timings[phase], cpu[phase] = time.perf_counter() - started, time.process_time() - started_cpu
        store.dispose()
        path = f"/tmp/{name}.csv"
        import_samples.write_csv(__import__("pathlib").Path(path), import_samples.members(rows))
        if profiler:
            profiler.dump_stats(profile)
        for phase, seconds in timings.items():
            print(f"  {phase:7} {seconds:8.2f} s  {rows / seconds:9,.0f} rows/s  (this process's CPU: "
                  f"{cpu[phase] * 1e6 / rows:,.0f} us a row{', cProfile on' if profiler else ''})", flush=True)
        psycopg2.extensions.set_wait_callback(None)  # COPY does not run under the kit's green wait callback
        connection = psycopg2.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE plain (name text, phone text, birth text, gender text, branch text, card text)")
            started = time.perf_counter()
            with open(path, encoding="utf-8") as handle:
                cursor.copy_expert("COPY plain FROM STDIN WITH (FORMAT csv, HEADER true)", handle)
            connection.commit()
            timings["copy"] = time.perf_counter() - started
        connection.close()
        os.unlink(path)
        print(f"{rows:,} rows, batches of {size}, load {os.getloadavg()[0]:.1f}")
        print(f"  copy    {timings['copy']:8.2f} s  {rows / timings['copy']:9,.0f} rows/s")
        print(f"  commit / COPY: {timings['commit'] / timings['copy']:.0f}x")
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def floor(rows: int) -> None:
    """CPU seconds a row for each piece the rules make irreducible, measured alone (``time.process_time``)."""
    from services.kit.crypto import blind_index, keyring
    from services.members.rules import identity
    from services.members.schemas import EnrolmentSchema

    group = group_from_config({})
    columns = cols.resolve(list(import_samples.HEADERS))
    read = [cols.enrolment(cols.cells_of(columns, row), None, None)[0] for row in import_samples.members(rows)]
    schema = EnrolmentSchema()
    region = group.region_of("SH01")
    ring = keyring()
    loaded = [schema.load(row) for row in read]
    phones = [identity.parse_phone(row["phone"], region) for row in loaded]
    names = [" ".join(row["full_name"].split()) for row in loaded]

    def schema_load() -> None:
        for row in read:
            schema.load(row)

    def phone() -> None:
        for row in loaded:
            identity.parse_phone(row["phone"], region)

    def seal() -> None:  # the personal fields an imported row carries, each sealed as the column type does
        for row, number, name in zip(loaded, phones, names, strict=True):
            ring.encrypt(name, "members.full_name")
            ring.encrypt(number, "members.phone")
            ring.encrypt(row["birth_date"].isoformat(), "members.birth_date")

    def indexes() -> None:  # phone, name, name + birth (register.indexes_for) and the name's tokens
        for row, number, name in zip(loaded, phones, names, strict=True):
            normal = identity.normalise_name(name)
            blind_index(number, "members.phone")
            blind_index(normal, "members.name")
            blind_index(f"{normal}|{row['birth_date'].isoformat()}", "members.name_birth")
            for token in identity.name_tokens(name):
                blind_index(token, "members.name_token")

    pieces = {"schema": schema_load, "phone": phone, "aes-gcm": seal, "hmac": indexes}
    spent = {}
    for name, piece in pieces.items():
        best = None
        for _ in range(3):  # the least of three: the machine is shared, noise only adds
            started = time.process_time()
            piece()
            took = time.process_time() - started
            best = took if best is None else min(best, took)
        spent[name] = best / rows
    total = sum(spent.values())
    cores = os.cpu_count() or 1
    print(f"floor over {rows:,} rows, load {os.getloadavg()[0]:.1f} (CPU a row, least of 3 runs):")
    for name, seconds in spent.items():
        print(f"  {name:8} {seconds * 1e6:7.1f} us")
    print(f"  total    {total * 1e6:7.1f} us  ->  {1 / total:9,.0f} rows/s on one core, {cores / total:9,.0f} on {cores}")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[:1] == ["floor"]:
        floor(int(arguments[1]) if len(arguments) > 1 else 10_000)
        sys.exit(0)
    out = None
    if "--profile" in arguments:
        at = arguments.index("--profile")
        out = arguments[at + 1]
        del arguments[at:at + 2]
    main(int(arguments[0]), int(arguments[1]) if len(arguments) > 1 else 500, out)
