"""Export -> import into an empty suite reproduces the members and their balances (issue 19's round trip):
suite A's members, points lots (with their expiry dates) and stored value (paid and bonus apart) are
exported as CSV, suite A is stopped, and the three files are imported as they are into a fresh suite B
(members, then points openings, then stored-value openings); both suites then export the same people and
the same balances, and both reconcile."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import pytest

from tests import import_samples
from tests.e2e.test_imports_over_http import _imported

NO_LAG = {"EXPORT_SAFETY_LAG_SECONDS": 0}  # the lag's own tests are tests/integration/test_exports.py
PEOPLE = [
    {"full_name": "王芳", "phone": "13900000001", "birth_date": "1980-01-02", "home_branch": "SH01",
     "gender": "female", "id_document": {"type": "cn_resident_id", "number": "11010519491231002X"}},
    {"full_name": "Ana López", "phone": "13900000002", "birth_date": "1991-07-08", "home_branch": "HZ01",
     "email": "ana@example.com", "gender": "female", "preferred_language": "es"},
    {"full_name": "陳大文", "phone": "13900000003", "birth_date": "1975-12-31", "home_branch": "SH01",
     "gender": "male", "preferred_language": "zh-Hant"},
]
POINTS = [("13900000001", "120", "2099-12-31", "SH01"), ("13900000001", "50", "2098-06-30", "SH01"),
          ("13900000002", "300", "2099-01-31", "HZ01"), ("13900000003", "80", "2097-03-15", "SH01")]
WALLETS = [("13900000001", "1,000.50", "88", "SH01"), ("13900000002", "250", "0", "HZ01")]
PERSON = ("full_name", "phone", "birth_date", "home_branch", "gender", "email", "preferred_language", "id_type",
          "id_number")


def exported(suite, kind: str) -> tuple[bytes, list[dict[str, str]]]:
    answer = suite.call("GET", f"/v1/exports/{kind}")
    assert answer.status_code == 200, answer.text
    return answer.content, list(csv.DictReader(io.StringIO(answer.content.decode("utf-8"))))


def people(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
    return sorted(tuple(row[column] for column in PERSON) for row in rows)


def lots_by_phone(rows: list[dict[str, str]]) -> dict[str, list[tuple[int, str]]]:
    lots = defaultdict(list)
    for row in rows:
        lots[row["phone"]].append((int(row["points"]), row["expires_on"]))
    return {phone: sorted(held) for phone, held in lots.items()}


def wallets_by_phone(rows: list[dict[str, str]]) -> dict[str, tuple[int, int, str]]:
    return {row["phone"]: (int(row["principal_minor"]), int(row["bonus_minor"]), row["currency"]) for row in rows}


def reconciled(suite) -> dict:
    answer = suite.call("GET", "/v1/points/reconciliation")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["ok"] and report["mismatch_count"] == 0, report
    return report


def write(path: Path, body: bytes) -> Path:
    path.write_bytes(body)
    return path


@pytest.mark.backends("postgresql")
def test_members_and_balances_exported_from_one_suite_import_into_an_empty_one_as_the_same(start_suite, tmp_path):
    a = start_suite(members_config=NO_LAG, points_config=NO_LAG)
    for person in PEOPLE:
        assert a.call("POST", "/v1/members", json=person).status_code == 201
    _imported(a, import_samples.write_csv(tmp_path / "seed-points.csv", POINTS,
                                          headers=import_samples.POINTS_HEADERS), "points_openings")
    _imported(a, import_samples.write_csv(tmp_path / "seed-wallets.csv", WALLETS,
                                          headers=import_samples.WALLET_HEADERS), "wallet_openings")
    member = a.call("GET", "/v1/members", params={"phone": "13900000001"}).json()["items"][0]["id"]
    paid = a.call("POST", f"/v1/members/{member}/wallet/payments", headers={"Idempotency-Key": "pay-H-1"},
                  json={"bill_id": "H-1", "amount": {"amount": 300_00, "currency": "CNY"}, "branch": "SH01"})
    assert paid.status_code == 201, paid.text  # stored value partly spent: the export holds what is left

    members_file, members_a = exported(a, "members")
    lots_file, lots_a = exported(a, "points-lots")
    wallets_file, wallets_a = exported(a, "wallets")
    assert lots_by_phone(lots_a) == {"+8613900000001": [(50, "2098-06-30"), (120, "2099-12-31")],
                                     "+8613900000002": [(300, "2099-01-31")], "+8613900000003": [(80, "2097-03-15")]}
    left = wallets_by_phone(wallets_a)["+8613900000001"]
    assert left[0] + left[1] == 1000_50 + 88_00 - 300_00 and left[2] == "CNY"
    report_a = reconciled(a)
    a.stop()  # suite B takes the same queues

    b = start_suite(members_config=NO_LAG, points_config=NO_LAG)
    assert exported(b, "members")[1] == []  # empty
    assert _imported(b, write(tmp_path / "members.csv", members_file), "members")["counts"]["imported"] == 3
    assert _imported(b, write(tmp_path / "points-lots.csv", lots_file), "points_openings")["counts"]["imported"] == 4
    assert _imported(b, write(tmp_path / "wallets.csv", wallets_file), "wallet_openings")["counts"]["imported"] == 2

    assert people(exported(b, "members")[1]) == people(members_a)
    # the card numbers come across too (each is free in the empty suite: kept as the member's card)
    assert sorted(row["card_number"] for row in exported(b, "members")[1]) == sorted(
        row["card_number"] for row in members_a)
    assert lots_by_phone(exported(b, "points-lots")[1]) == lots_by_phone(lots_a)
    assert wallets_by_phone(exported(b, "wallets")[1]) == wallets_by_phone(wallets_a)
    report_b = reconciled(b)
    assert (report_b["points_outstanding"], report_b["wallet_principal_minor"], report_b["wallet_bonus_minor"]) == (
        report_a["points_outstanding"], report_a["wallet_principal_minor"], report_a["wallet_bonus_minor"])


def test_balances_exports_come_again_only_for_members_whose_balance_changed_and_need_an_exporter(start_suite,
                                                                                                 tmp_path):
    suite = start_suite(members_config=NO_LAG, points_config=NO_LAG)
    for person in PEOPLE:
        assert suite.call("POST", "/v1/members", json=person).status_code == 201
    _imported(suite, import_samples.write_csv(tmp_path / "points.csv", POINTS, headers=import_samples.POINTS_HEADERS),
              "points_openings")
    _imported(suite, import_samples.write_csv(tmp_path / "wallets.csv", WALLETS,
                                              headers=import_samples.WALLET_HEADERS), "wallet_openings")
    cursors = {kind: suite.call("GET", f"/v1/exports/{kind}").headers["X-Export-Cursor"]
               for kind in ("points-lots", "wallets")}
    for kind, cursor in cursors.items():
        assert cursor and exported_since(suite, kind, cursor) == [], kind
        assert suite.call("GET", f"/v1/exports/{kind}", role="front_desk").status_code == 403
        assert suite.call("GET", f"/v1/exports/{kind}", params={"since": "made up"}).status_code == 422

    third = suite.call("GET", "/v1/members", params={"phone": "13900000003"}).json()["items"][0]["id"]
    earned = suite.call("POST", f"/v1/members/{third}/points/earn", headers={"Idempotency-Key": "goodwill-1"},
                        json={"rule": "adjust", "points": 7, "reason": "goodwill", "source_ref": "C-1",
                              "branch": "SH01"})
    assert earned.status_code in (200, 201), earned.text
    again = lots_by_phone(exported_since(suite, "points-lots", cursors["points-lots"]))
    assert list(again) == ["+8613900000003"]  # only the member whose points changed, with all its lots
    assert sorted(points for points, _expiry in again["+8613900000003"]) == [7, 80]
    assert (80, "2097-03-15") in again["+8613900000003"]
    member = suite.call("GET", "/v1/members", params={"phone": "13900000002"}).json()["items"][0]["id"]
    paid = suite.call("POST", f"/v1/members/{member}/wallet/payments", headers={"Idempotency-Key": "pay-H-2"},
                      json={"bill_id": "H-2", "amount": {"amount": 50_00, "currency": "CNY"}, "branch": "HZ01"})
    assert paid.status_code == 201, paid.text
    assert wallets_by_phone(exported_since(suite, "wallets", cursors["wallets"])) == {
        "+8613900000002": (200_00, 0, "CNY")}


def exported_since(suite, kind: str, since: str) -> list[dict[str, str]]:
    answer = suite.call("GET", f"/v1/exports/{kind}", params={"since": since})
    assert answer.status_code == 200, answer.text
    return list(csv.DictReader(io.StringIO(answer.content.decode("utf-8"))))
