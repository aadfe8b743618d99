"""Benchmark: importing points and stored-value opening balances from CSV on PostgreSQL (issue 19), beside COPY
of the same rows, with the ledgers reconciled after the commit.

    nice -n 19 .venv/bin/python -m pytest tests/perf/test_openings_import_perf.py -m perf -s -p no:randomly
    # sizes: PERF_OPENINGS_ROWS=10000,50000 (default 10000)

For each size and ledger: the members the rows name are written first with COPY (``export_data.fill_members``:
card numbers ``88`` + ten digits, which the rows name under ``会员卡号``), then a CSV of one opening a member
(Chinese headers; points with their expiry dates, stored value as typed money, paid and bonus apart) is
checked (dry run) and committed through interfaces as a ``nameko run`` process of its own (its peak memory
read from the kernel, reset before each phase), members and points in this test process, each on a fresh
database. In the same run, PostgreSQL's ``COPY`` of the same rows into a plain table gives the physical limit.
After the commit, points' ``reconcile()`` must pass for every account and the lots must expire on their
imported dates.
"""

from __future__ import annotations

import os
import time
from datetime import date

import pytest

from services.kit.caller import Identity
from services.members.service import MembersService
from services.points import reconciliation
from services.points.service import PointsService
from tests import import_samples
from tests.harness import store_for
from tests.integration.test_import_resume import interfaces_process  # noqa: F401 (fixture)
from tests.integration.test_imports import settled, upload
from tests.perf.export_data import fill_members
from tests.perf.test_import_perf import copy_seconds, peak_kib, reset_peak

ADMIN = Identity(kind="staff", subject="admin", role="group_admin", branches=("*",))
SIZES = [int(size) for size in os.environ.get("PERF_OPENINGS_ROWS", "10000").split(",")]
EXPIRY = date(2099, 12, 31)
HEADERS = {"points_openings": ("会员卡号", "积分", "到期日", "门店"),
           "wallet_openings": ("会员卡号", "本金", "赠送余额", "门店")}


def openings(kind: str, rows: int):
    """One opening per member ``0..rows-1`` of ``fill_members`` (its card number), as clinics type them."""
    for number in range(rows):
        card = f"88{number:010d}"
        if kind == "points_openings":
            yield [card, f"{100 + number % 5_000:,}", EXPIRY.isoformat() if number % 2 else EXPIRY.strftime("%Y/%m/%d"),
                   "SH01"]
        else:
            yield [card, f"¥{1_000 + number % 5_000:,}.50", str(88 + number % 100), "SH01"]


def expected(kind: str, number: int) -> int:
    """What ``openings`` gave member ``number``: points, or the stored value's paid and bonus parts in fen."""
    if kind == "points_openings":
        return 100 + number % 5_000
    return (1_000 + number % 5_000) * 100 + 50 + (88 + number % 100) * 100


def reconciled_totals(url: str, kind: str) -> tuple[int, int]:
    """Every account of the ledger checked against its postings (and lots), as the nightly reconciliation does
    (``points.reconciliation``), a page at a time: (accounts checked, the ledger's total outstanding)."""
    check = reconciliation.check_points if kind == "points_openings" else reconciliation.check_wallets
    store, after, checked, total = store_for(url), None, 0, 0
    try:
        while True:
            with store.transaction() as session:
                report, after = check(session, after, 1_000)
            assert report.mismatch_count == 0, report.mismatches[:5]
            checked += report.checked
            total += (report.points_outstanding if kind == "points_openings"
                      else report.wallet_principal_minor + report.wallet_bonus_minor)
            if after is None:
                return checked, total
    finally:
        store.dispose()


@pytest.mark.perf
@pytest.mark.timeout(7200)
@pytest.mark.backends("postgresql")
@pytest.mark.parametrize("kind", ["points_openings", "wallet_openings"])
@pytest.mark.parametrize("rows", SIZES)
def test_opening_balances_import_beside_copy(rows, kind, start_service, rpc, databases,
                                             interfaces_process, tmp_path):  # noqa: F811
    members = start_service(MembersService, "postgresql", NIGHTLY_AT="off")
    points = start_service(PointsService, "postgresql")
    fill_members(members.database_url, rows)
    process = interfaces_process(databases.fresh("postgresql", "interfaces"))
    proxy = rpc(caller=ADMIN, timeout=120)
    path = import_samples.write_csv(tmp_path / f"{kind}.csv", openings(kind, rows), "utf-8", HEADERS[kind])

    job = upload(proxy, path, kind=kind)
    reset_peak(process.pid)
    started = time.perf_counter()
    proxy.interfaces.start_import_check(job["id"])
    job = settled(proxy, job["id"], "validated", timeout=7000)
    checked, check_peak = time.perf_counter() - started, peak_kib(process.pid)
    assert job["counts"]["valid"] == rows, job["counts"]

    reset_peak(process.pid)
    started = time.perf_counter()
    proxy.interfaces.commit_import(job["id"], idempotency_key=f"perf-{job['id']}")
    job = settled(proxy, job["id"], "done", timeout=7000)
    committed, commit_peak = time.perf_counter() - started, peak_kib(process.pid)
    assert job["counts"]["imported"] == rows, job["counts"]

    started = time.perf_counter()
    checked_accounts, total = reconciled_totals(points.database_url, kind)
    reconciled = time.perf_counter() - started
    assert checked_accounts == rows
    assert total == sum(expected(kind, number) for number in range(rows))
    if kind == "points_openings":
        first = proxy.members.find_members({"card": "880000000001"})["items"][0]["id"]
        assert [(lot["points"], lot["expires_on"]) for lot in proxy.points.lots(first)["items"]] == [
            (101, EXPIRY.isoformat())]

    copied = copy_seconds(path, len(HEADERS[kind]))
    print(f"\nimport of {rows:,} {kind.replace('_', ' ')}, PostgreSQL, load {os.getloadavg()[0]:.1f}")
    print(f"  dry run  {checked:8.1f} s  {rows / checked:9,.0f} rows/s  interfaces peak {check_peak / 1024:6.1f} MiB")
    print(f"  commit   {committed:8.1f} s  {rows / committed:9,.0f} rows/s  interfaces peak {commit_peak / 1024:6.1f} MiB")
    print(f"  COPY     {copied:8.2f} s  {rows / copied:9,.0f} rows/s  (plain table, the physical limit)")
    print(f"  commit / COPY: {committed / copied:.0f}x; reconcile of every account {reconciled:.1f} s")
