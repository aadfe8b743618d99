"""Opening balances for members points has not heard of yet (imported moments ago, their ``member_enrolled``
still on its way): points asks members for the batch's members in one ``get_members`` call, not one
``get_member`` a row (issue 19: one RPC a batch, never one a row). Members here are written straight into its
database, so no event ever tells points of them."""

from __future__ import annotations

from prometheus_client import REGISTRY

from services.kit.caller import Identity
from services.members.service import MembersService
from services.points.service import PointsService
from tests.perf.export_data import fill_members

ADMIN = Identity(kind="staff", subject="admin", role="group_admin", branches=("*",))
ROWS = 40


def calls(entrypoint: str) -> float:
    return REGISTRY.get_sample_value("careloop_entrypoint_latency_seconds_count",
                                     {"service": "members", "entrypoint": entrypoint}) or 0


def test_a_batch_of_openings_asks_members_for_its_unknown_members_once(start_service, rpc):
    members = start_service(MembersService, "postgresql", NIGHTLY_AT="off")
    start_service(PointsService, "postgresql")
    fill_members(members.database_url, ROWS)
    proxy = rpc(caller=ADMIN, timeout=60)
    located = proxy.members.locate_members({"rows": [{"key": f"k{n}", "card_number": f"88{n:010d}"}
                                                     for n in range(ROWS)]})["items"]
    assert {row["status"] for row in located} == {"found"}
    rows = [{"key": f"import:job:{n}", "member_id": row["member_id"], "points": 100 + n, "expires_on": "2099-12-31"}
            for n, row in enumerate(located)]
    rows.append({"key": "import:job:bad", "member_id": "not-a-member", "points": 5, "expires_on": "2099-12-31"})
    one, many = calls("get_member"), calls("get_members")

    checked = proxy.points.open_balances({"ledger": "points", "dry_run": True, "rows": rows})["items"]
    posted = proxy.points.open_balances({"ledger": "points", "dry_run": False, "rows": rows})["items"]

    assert [row["status"] for row in checked] == ["valid"] * ROWS + ["invalid"]
    assert [row["status"] for row in posted] == ["posted"] * ROWS + ["invalid"]
    assert calls("get_members") - many == 1  # the dry run's; the commit found the copies it left
    assert calls("get_member") - one == 0
    for n, row in enumerate(located[:3]):
        assert proxy.points.balance(row["member_id"])["balance"] == 100 + n


def test_members_answers_a_batch_of_ids_leaving_out_unknown_and_malformed_ones(start_service, rpc):
    members = start_service(MembersService, "postgresql", NIGHTLY_AT="off")
    fill_members(members.database_url, 3)
    proxy = rpc(caller=ADMIN, timeout=60)
    ids = [proxy.members.get_member_by_card(f"88{n:010d}")["id"] for n in range(3)]
    answer = proxy.members.get_members([*ids, "00000000-0000-4000-8000-000000000000", "nonsense"])["items"]
    assert sorted(answer, key=lambda member: member["id"]) == [proxy.members.get_member(id_) for id_ in sorted(ids)]
