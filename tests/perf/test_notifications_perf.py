"""Notifications benchmarks (issue 7): daily scans over a million members, and send throughput.

    .venv/bin/python -m pytest tests/perf/test_notifications_perf.py -s -p no:randomly

- Birthday scan: 1,000,000 members in members' PostgreSQL database (COPY), birthdays spread over the year;
  the scan of one day pages through ``members.birthdays`` (its ``(birth_mmdd, id)`` index) and queues the
  day's greetings. Ceiling beside it: the same index query in raw SQL.
- Recall scan: 1,000,000 recalls in notifications' database (COPY), next messages spread over 180 days;
  the scan of one day queues the recall messages due. Ceiling: the raw index query.
- Send throughput: N messages due at once, sent by 1 or 2 notifications replicas (each its own
  ``nameko run`` process, members in another) to the SMS imitation and to a real SMTP server (aiosmtpd),
  both in a process of their own. Ceilings: the bare provider (a loop of direct HTTP posts or SMTP
  sends) and the bare ``members.get_contact`` RPC, which every message needs.

Figures are printed; tests/perf/RESULTS.md keeps them with the machine's conditions.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import smtplib
import subprocess
import time
import tracemalloc
import uuid
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import psycopg2
import pytest
import requests
from kombu import Connection
from sqlalchemy import text

from services.kit.crypto import keyring
from services.members.service import MembersService
from services.notifications.deliveries import queue_many
from services.notifications.rules.journeys import Plan
from services.notifications.service import NotificationsService
from tests.harness import store_for
from tests.imitations import SMS_SID, SMS_TOKEN
from tests.providers import Providers

pytestmark = [pytest.mark.perf, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[2]
MILLION = int(os.environ.get("CARELOOP_PERF_MEMBERS", "1000000"))
SENDS = int(os.environ.get("CARELOOP_PERF_SENDS", "2000"))
SCAN_DAY = date(2027, 3, 10)
FIGURES: list[str] = []


def report(line: str) -> None:
    FIGURES.append(line)
    print(line, flush=True)


@pytest.fixture(scope="module", autouse=True)
def summary():
    yield
    print("\n--- notifications perf ---\n" + "\n".join(FIGURES), flush=True)


def raw_pg(url: str) -> psycopg2.extensions.connection:
    return psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))


@contextlib.contextmanager
def blocking_copy():
    """psycopg2 refuses COPY under eventlet's green wait callback: block for the COPY (nothing else runs yet)."""
    callback = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(None)
    try:
        yield
    finally:
        psycopg2.extensions.set_wait_callback(callback)


def copy_members(url: str, count: int, consents: dict[str, bool], spread_birthdays: bool) -> None:
    """``count`` members by COPY: valid encrypted name, phone and e-mail (shared tokens), unique indexes."""
    ring = keyring()
    name = ring.encrypt("Perf Member", "members.full_name")
    phone = ring.encrypt("+8613800138000", "members.phone")
    email = ring.encrypt("perf@example.com", "members.email")
    birth = ring.encrypt("1990-01-01", "members.birth_date")
    now = datetime.now(UTC).isoformat()
    languages, branches = ("en", "zh-Hans", "zh-Hant", "es"), ("SH01", "SH02", "HZ01")
    columns = ("id, card_number, referral_code, full_name, phone, phone_index, email, birth_date, birth_mmdd, gender, "
               "preferred_language, consent_sms, consent_email, consent_wechat, consent_line, consent_marketing, "
               "consents_updated_at, home_branch, status, tier, source, enrolled_at, updated_at")
    flags = ",".join("t" if consents.get(key) else "f" for key in ("sms", "email", "wechat", "line", "marketing"))
    first_day = date(2024, 1, 1)  # a leap year: every month-day, 29 February included
    connection = raw_pg(url)
    try:
        with connection.cursor() as cursor:
            for start in range(0, count, 200_000):
                buffer = io.StringIO()
                for number in range(start, min(start + 200_000, count)):
                    born = first_day + timedelta(days=number % 366 if spread_birthdays else 69)
                    buffer.write(f"{uuid.uuid4()},88{number:010d},R{number:011d},{name},{phone},p{number:039d},"
                                 f"{email},{birth},{born:%m-%d},undisclosed,{languages[number % 4]},{flags},{now},"
                                 f"{branches[number % 3]},active,standard,import,{now},{now}\n")
                buffer.seek(0)
                with blocking_copy():
                    cursor.copy_expert(f"COPY members ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)
        connection.commit()
        with connection.cursor() as cursor:
            connection.autocommit = True
            cursor.execute("ANALYZE members")
    finally:
        connection.close()


def timed(action):
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_of(action):
    """(result, Python heap peak MiB (tracemalloc), process RSS peak MiB during ``action``, RSS before).

    The RSS peak is the kernel's high-water mark, reset just before (``/proc/self/clear_refs``); the
    services run in this process, so both figures are theirs plus the test's.
    """
    before = rss_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    tracemalloc.start()
    try:
        result = action()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak / 2**20, rss_mib("VmHWM"), before


def test_birthday_scan_over_a_million_members(start_service, databases, rpc):
    members_url = databases.fresh("postgresql", "members")
    started = time.perf_counter()
    copy_members(members_url, MILLION, {"sms": True, "marketing": True}, spread_birthdays=True)
    report(f"birthday scan: {MILLION:,} members copied in {time.perf_counter() - started:.1f} s")
    start_service(MembersService, database_url=members_url)
    notifications = start_service(NotificationsService, "postgresql", NOTIFICATIONS={"scheduler": False})
    proxy = rpc(timeout=600)

    mmdd = SCAN_DAY.strftime("%m-%d")
    connection = raw_pg(members_url)
    try:
        with connection.cursor() as cursor:
            raw_started = time.perf_counter()
            cursor.execute("SELECT id FROM members WHERE birth_mmdd = %s AND status = 'active' ORDER BY birth_mmdd, id",
                           (mmdd,))
            expected = len(cursor.fetchall())
            raw = time.perf_counter() - raw_started
            cursor.execute("EXPLAIN SELECT id FROM members WHERE birth_mmdd = %s AND status = 'active' "
                           "ORDER BY birth_mmdd, id LIMIT 500", (mmdd,))
            plan = " / ".join(row[0].strip() for row in cursor.fetchall())
    finally:
        connection.close()

    now = datetime(2027, 3, 9, 16, 5, tzinfo=UTC).isoformat()  # 00:05 on 10 March in Shanghai
    outcome, elapsed = timed(lambda: proxy.notifications.run_daily(now=now, jobs=["birthdays"]))
    birthdays = outcome["birthdays"]
    assert birthdays["finished"] and birthdays["processed"] == expected
    queued = _count(notifications.database_url, "SELECT count(*) FROM deliveries WHERE journey = 'birthday'")
    assert queued == expected
    next_day = datetime(2027, 3, 10, 16, 5, tzinfo=UTC).isoformat()  # the 11th, measured for memory only
    again, heap, rss_peak, rss_before = memory_of(
        lambda: proxy.notifications.run_daily(now=next_day, jobs=["birthdays"]))
    assert again["birthdays"]["finished"]
    report(f"birthday scan of {SCAN_DAY} over {MILLION:,} members: {expected:,} greetings queued in {elapsed:.2f} s "
           f"({birthdays['batches']} pages of 500 from members.birthdays); memory (next day's scan, "
           f"{again['birthdays']['processed']:,} greetings): Python heap peak {heap:.1f} MiB, process RSS "
           f"{rss_before:.0f} -> peak {rss_peak:.0f} MiB; ceiling: the raw index query alone {raw * 1000:.0f} ms; "
           f"plan: {plan}")


def test_recall_scan_over_a_million_members(start_service, databases, rpc):
    url = databases.fresh("postgresql", "notifications")
    now = datetime.now(UTC).isoformat()
    connection = raw_pg(url)
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            buffer = io.StringIO()
            for number in range(MILLION):
                next_on = SCAN_DAY + timedelta(days=number % 180)
                buffer.write(f"{uuid.uuid4()},{uuid.uuid4()},cleaning,cp-{number},{next_on + timedelta(days=28)},"
                             f"{next_on},0,active,{now}\n")
            buffer.seek(0)
            with blocking_copy():
                cursor.copy_expert("COPY recalls (id, member_id, recall_type, care_plan_id, due_on, next_attempt_on, "
                                   "attempts, status, updated_at) FROM STDIN WITH (FORMAT csv)", buffer)
        connection.commit()
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE recalls")
            raw_started = time.perf_counter()
            cursor.execute("SELECT id FROM recalls WHERE status = 'active' AND next_attempt_on <= %s "
                           "ORDER BY next_attempt_on, id", (SCAN_DAY,))
            expected = len(cursor.fetchall())
            raw = time.perf_counter() - raw_started
    finally:
        connection.close()
    report(f"recall scan: {MILLION:,} recalls copied in {time.perf_counter() - started:.1f} s")
    start_service(NotificationsService, database_url=url, NOTIFICATIONS={"scheduler": False})
    proxy = rpc(timeout=600)

    at = datetime(2027, 3, 9, 16, 5, tzinfo=UTC).isoformat()
    outcome, elapsed = timed(lambda: proxy.notifications.run_daily(now=at, jobs=["recalls"]))
    recalls = outcome["recalls"]
    assert recalls["finished"] and recalls["processed"] == expected
    assert _count(url, "SELECT count(*) FROM deliveries WHERE journey = 'recall'") == expected
    next_day = datetime(2027, 3, 10, 16, 5, tzinfo=UTC).isoformat()
    again, heap, rss_peak, rss_before = memory_of(lambda: proxy.notifications.run_daily(now=next_day, jobs=["recalls"]))
    assert again["recalls"]["finished"]
    report(f"recall scan of {SCAN_DAY} over {MILLION:,} recalls: {expected:,} messages queued in {elapsed:.2f} s "
           f"({recalls['batches']} batches of 1000); memory (next day's scan, {again['recalls']['processed']:,} "
           f"recalls): Python heap peak {heap:.1f} MiB, process RSS {rss_before:.0f} -> peak {rss_peak:.0f} MiB; "
           f"ceiling: the raw index query alone {raw * 1000:.0f} ms")


def _count(url: str, sql: str) -> int:
    store = store_for(url)
    try:
        with store.engine.connect() as connection:
            return connection.execute(text(sql)).scalar_one()
    finally:
        store.dispose()


# -- send throughput -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def providers():
    started = Providers()
    yield started
    started.stop()


def nameko_process(service: str, target: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(REPO / ".venv" / "bin" / "nameko"), "run", "--config", "deploy/config.yml", target],
                            cwd=REPO, env={**os.environ, **env, "SERVICE_NAME": service},
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def consumers(amqp_uri: str, queue: str) -> int:
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        try:
            return channel.queue_declare(queue, passive=True).consumer_count
        except Exception:
            return 0
        finally:
            channel.close()


@pytest.mark.parametrize("channel", ["sms", "email"])
@pytest.mark.parametrize("replicas", [1, 2])
def test_send_throughput(channel, replicas, databases, providers, amqp_uri, rpc, tmp_path):
    providers.reset()
    members_url = databases.fresh("postgresql", "members")
    url = databases.fresh("postgresql", "notifications")
    copy_members(members_url, SENDS, {channel: True}, spread_birthdays=False)
    env = {"AMQP_URI": amqp_uri, "LOG_LEVEL": "WARNING", "METRICS_PORT": "0", "MAX_WORKERS": "10",
           "NOTIFICATIONS_SCHEDULER": "true", "NOTIFICATIONS_QUIET_HOURS": "off",
           "SMS_BASE_URL": providers.url, "SMS_ACCOUNT_SID": SMS_SID, "SMS_AUTH_TOKEN": SMS_TOKEN,
           "SMS_FROM": "+14155550100", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(providers.smtp_port),
           "SMTP_SECURITY": "none", "SMTP_FROM": "care@smile-dental.example"}
    processes = [nameko_process("members", "services.members.service:MembersService",
                                {**env, "DATABASE_URL": members_url}, tmp_path / "members.log")]
    processes += [nameko_process("notifications", "services.notifications.service:NotificationsService",
                                 {**env, "DATABASE_URL": url}, tmp_path / f"notifications-{n}.log")
                  for n in range(replicas)]
    try:
        deadline = time.monotonic() + 60
        while consumers(amqp_uri, "rpc-notifications") < replicas or consumers(amqp_uri, "rpc-members") < 1:
            assert time.monotonic() < deadline, "the services did not start"
            time.sleep(0.2)
        ceiling_contact = _contact_rate(rpc(), members_url)

        connection = raw_pg(members_url)
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM members")
            member_ids = [str(row[0]) for row in cursor.fetchall()]
        connection.close()
        store = store_for(url)
        now = datetime.now(UTC)
        plans = [Plan("results_ready", member_id, f"perf-{n}", now, context={"branch": "SH01"})
                 for n, member_id in enumerate(member_ids)]
        with store.transaction() as session:
            for start in range(0, len(plans), 1000):
                queue_many(session, plans[start:start + 1000], now)
        store.dispose()
        started = time.perf_counter()
        deadline = time.monotonic() + 600
        while True:
            done = _count(url, "SELECT count(*) FROM deliveries WHERE state NOT IN ('queued', 'sending')")
            if done >= SENDS:
                break
            assert time.monotonic() < deadline, f"only {done} of {SENDS} sent"
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    states = dict(_rows(url, "SELECT state, count(*) FROM deliveries GROUP BY state"))
    arrived = len(providers.accepted("sms")) if channel == "sms" else len(providers.mail())
    assert states == {"sent": SENDS} and arrived == SENDS, (states, arrived)
    per_replica = dict(_rows(url, "SELECT claimed_by, count(*) FROM deliveries GROUP BY claimed_by"))
    ceiling = _provider_rate(providers, channel)
    report(f"send throughput, {channel}, {replicas} replica(s): {SENDS:,} messages in {elapsed:.1f} s = "
           f"{SENDS / elapsed:.0f} msg/s (split {sorted(per_replica.values())}); ceilings in this run: bare "
           f"provider {ceiling:.0f} msg/s, bare members.get_contact RPC {ceiling_contact:.0f} calls/s")


def _rows(url: str, sql: str) -> list:
    store = store_for(url)
    try:
        with store.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        store.dispose()


def _contact_rate(proxy, members_url: str, calls: int = 300) -> float:
    connection = raw_pg(members_url)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM members LIMIT 1")
        member_id = str(cursor.fetchone()[0])
    connection.close()
    started = time.perf_counter()
    for _ in range(calls):
        proxy.members.get_contact(member_id)
    return calls / (time.perf_counter() - started)


def _provider_rate(providers: Providers, channel: str, calls: int = 300) -> float:
    """A serial loop straight at the imitation: what one client gets from the provider alone."""
    started = time.perf_counter()
    if channel == "sms":
        http = requests.Session()
        for _ in range(calls):
            http.post(f"{providers.url}/2010-04-01/Accounts/{SMS_SID}/Messages.json", auth=(SMS_SID, SMS_TOKEN),
                      data={"To": "+8613800138000", "From": "+14155550100", "Body": "ceiling"}, timeout=10)
    else:
        for _ in range(calls):
            mail = EmailMessage()
            mail["Subject"], mail["From"], mail["To"] = "ceiling", "care@smile-dental.example", "perf@example.com"
            mail.set_content("ceiling")
            with smtplib.SMTP("127.0.0.1", providers.smtp_port, timeout=10) as smtp:
                smtp.send_message(mail)
    return calls / (time.perf_counter() - started)



def test_cpu_per_message_in_one_process(start_service, databases, providers, rpc):
    """Notifications and members in this one process: the CPU a message costs both, whatever the machine's load."""
    providers.reset()
    members_url = databases.fresh("postgresql", "members")
    count = min(SENDS, 1000)
    copy_members(members_url, count, {"sms": True}, spread_birthdays=False)
    start_service(MembersService, database_url=members_url)
    notifications = start_service(NotificationsService, "postgresql", NOTIFICATIONS={
        "scheduler": False, "quiet_hours": "off", "channels": providers.channels("sms")})
    connection = raw_pg(members_url)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM members")
        member_ids = [str(row[0]) for row in cursor.fetchall()]
    connection.close()
    store = store_for(notifications.database_url)
    now = datetime.now(UTC)
    with store.transaction() as session:
        queue_many(session, [Plan("results_ready", member_id, f"cpu-{n}", now, context={"branch": "SH01"})
                             for n, member_id in enumerate(member_ids)], now)
    store.dispose()
    proxy = rpc(timeout=600)
    wall, cpu = time.perf_counter(), time.process_time()
    outcome = proxy.notifications.dispatch_due()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert outcome.get("sent") == count
    report(f"CPU per message, notifications + members in one process: {count:,} SMS in {wall:.1f} s "
           f"({count / wall:.0f} msg/s), {cpu:.1f} s of CPU = {cpu / count * 1000:.1f} ms per message")


def test_cpu_per_visit_completed_in_one_process(start_service, databases, providers, amqp_uri):
    """Notifications alone in this one process: the CPU its ``visit_completed`` handler costs per paid visit
    (post-visit advice, the first visit's survey, composed journeys' facts), publishing included."""
    from nameko.standalone.events import event_dispatcher

    from services.records.events import EVENTS as RECORDS_EVENTS
    from services.records.events import VisitCompleted
    from tests.harness import scalar, service_config, wait_for

    count = int(os.environ.get("CARELOOP_PERF_VISITS", "600"))
    notifications = start_service(NotificationsService, "postgresql", NOTIFICATIONS={
        "scheduler": False, "channels": providers.channels("sms")})
    dispatch = event_dispatcher(service_config(amqp_uri))
    completed = datetime.now(UTC)
    bodies = []
    for number in range(count):  # one in ten a first visit (advice and survey), the rest return visits (advice)
        body = RECORDS_EVENTS.wire("visit_completed", {
            **VisitCompleted.sample, "visit_id": uuid.uuid4(), "member_id": uuid.uuid4(), "completed_at": completed,
            "kind": "first" if number % 10 == 0 else "return", "first_visit": number % 10 == 0,
            "items": [{"category": ("implant", "cleaning", "exam")[number % 3], "code": "X1", "amount_minor": 28000}]})
        bodies.append({"event_id": str(uuid.uuid4()), "occurred_at": completed.isoformat(), **body})

    watch = raw_pg(notifications.database_url)  # one connection to watch with (a Store per poll costs CPU here)
    watch.autocommit = True

    def handled() -> int:
        with watch.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM kit_inbox WHERE consumer = 'notifications.on_visit_completed'")
            return cursor.fetchone()[0]

    wall, cpu = time.perf_counter(), time.process_time()
    for body in bodies:
        dispatch("records", "visit_completed", body)
    wait_for(lambda: handled() >= count, timeout=600, interval=0.5, message="every visit handled")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    watch.close()
    queued = scalar(notifications.database_url, "SELECT count(*) FROM deliveries")
    report(f"CPU per visit_completed, notifications in one process (publishing included): {count:,} visits in "
           f"{wall:.1f} s, {cpu:.1f} s of CPU = {cpu / count * 1000:.2f} ms per visit; {queued:,} messages queued; "
           f"load {os.getloadavg()[0]:.1f}")


def test_cpu_per_paid_visit_in_one_process(start_service, databases, providers, amqp_uri):
    """Notifications alone in this one process: the CPU a paid visit's events cost it as the paid-visit flow sends
    them (issue 17) — ``visit_completed`` (post-visit advice, a first visit's survey) and points'
    ``visit_points_earned`` (spend, visit: two ``points_earned`` before) into the day's digest — over 200 members visiting again and again, publishing
    included. ``CARELOOP_PERF_VISITS`` visits (default 600), one in ten a first visit."""
    from nameko.standalone.events import event_dispatcher

    from services.points.events import EVENTS as POINTS_EVENTS
    from services.points.events import VisitPointsEarned
    from services.records.events import EVENTS as RECORDS_EVENTS
    from services.records.events import VisitCompleted
    from tests.harness import scalar, service_config, wait_for

    count = int(os.environ.get("CARELOOP_PERF_VISITS", "600"))
    notifications = start_service(NotificationsService, "postgresql", NOTIFICATIONS={
        "scheduler": False, "channels": providers.channels("sms")})
    dispatch = event_dispatcher(service_config(amqp_uri))
    members = [uuid.uuid4() for _ in range(200)]
    completed = datetime.now(UTC)

    def wired(contracts, event_type: str, payload: dict) -> dict:
        return {"event_id": str(uuid.uuid4()), "occurred_at": completed.isoformat(),
                **contracts.wire(event_type, payload)}

    bodies = []
    for number in range(count):
        member, visit_id, first = members[number % len(members)], uuid.uuid4(), number % 10 == 0
        bodies.append(("records", "visit_completed", wired(RECORDS_EVENTS, "visit_completed", {
            **VisitCompleted.sample, "visit_id": visit_id, "member_id": member, "completed_at": completed,
            "kind": "first" if first else "return", "first_visit": first,
            "items": [{"category": "treatment", "code": "T1", "amount_minor": 28000}]})))
        bodies.append(("points", "visit_points_earned", wired(POINTS_EVENTS, "visit_points_earned", {
            **VisitPointsEarned.sample, "member_id": member, "visit_id": visit_id, "earned_at": completed,
            "postings": [{"posting_id": str(uuid.uuid4().int % 10**12), "points": points, "rule": rule}
                         for rule, points in (("spend", 280), ("visit", 10))]})))

    watch = raw_pg(notifications.database_url)
    watch.autocommit = True

    def handled() -> int:
        with watch.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM kit_inbox")
            return cursor.fetchone()[0]

    profile = os.environ.get("CARELOOP_PERF_PROFILE")  # a file: cProfile of this process in CPU time
    profiler = cProfile.Profile(time.process_time) if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    for source, event_type, body in bodies:
        dispatch(source, event_type, body)
    wait_for(lambda: handled() >= len(bodies), timeout=600, interval=0.5, message="every event handled")
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    watch.close()
    queued = scalar(notifications.database_url, "SELECT count(*) FROM deliveries")
    report(f"CPU per paid visit (visit_completed + visit_points_earned), notifications in one process (publishing "
           f"included): {count:,} visits of 200 members in {wall:.1f} s, {cpu:.1f} s of CPU = "
           f"{cpu / count * 1000:.2f} ms per visit; {queued:,} messages queued; load {os.getloadavg()[0]:.1f}")


def test_cpu_of_an_idle_scheduler(start_service, providers):
    """Notifications alone in this one process, its scheduler on and nothing due: the CPU its one-second tick costs
    (at 10 paid visits a second, a tenth of it is added to each visit). ``CARELOOP_PERF_IDLE_SECONDS`` (30)."""
    seconds = float(os.environ.get("CARELOOP_PERF_IDLE_SECONDS", "30"))
    start_service(NotificationsService, "postgresql", NOTIFICATIONS={"scheduler": True,
                                                                    "channels": providers.channels("sms")})
    time.sleep(3)  # past the first ticks (the seeding, the pool's first connections)
    cpu = time.process_time()
    time.sleep(seconds)
    cpu = time.process_time() - cpu
    report(f"CPU of an idle scheduler, notifications in one process: {cpu * 1000 / seconds:.1f} ms per second "
           f"over {seconds:.0f} s; load {os.getloadavg()[0]:.1f}")
