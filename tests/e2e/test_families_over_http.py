"""Family accounts, transfers within a family and tier upgrades bought with points, through the gateway as
the front desk would use them (issue 20, items 3 and 5)."""

from __future__ import annotations

from tests.e2e.test_points_over_http import DESK, as_


def enrol(suite, name: str, phone: str) -> str:
    created = suite.call("POST", "/v1/members", json={"full_name": name, "phone": phone, "birth_date": "2016-04-05",
                                                      "home_branch": "SH01"})
    assert created.status_code == 201, created.text
    return created.json()["id"]


PROGRAMME = {"POINTS_PROGRAMME": {"family_points_transfer": True, "tier_upgrade_prices": {"gold": 300}}}


def test_the_desk_opens_a_family_moves_points_within_it_and_sells_a_tier_for_points(start_suite):
    suite = start_suite(points_config=PROGRAMME)
    parent, child = enrol(suite, "Li Hua", "13700137101"), enrol(suite, "Li Xiaoming", "13700137102")
    opened = as_(suite, DESK, "POST", "/v1/families", key="fam-1", json={"contact_member_id": parent,
                                                                        "branch": "SH01"})
    assert opened.status_code == 201, opened.text
    family = opened.json()["id"]
    linked = as_(suite, DESK, "POST", f"/v1/families/{family}/members", key="fam-1-link",
                 json={"member_id": child, "relation": "minor"})
    assert linked.status_code == 200 and len(linked.json()["members"]) == 2
    assert as_(suite, DESK, "GET", f"/v1/members/{child}/family").json()["id"] == family
    bad = as_(suite, DESK, "POST", f"/v1/families/{family}/members", key="fam-1-bad",
              json={"member_id": child, "relation": "pet"})
    assert bad.status_code == 422 and "relation" in bad.json()["error"]["fields"]

    given = as_(suite, ("branch_manager", ("SH01",)), "POST", f"/v1/members/{parent}/points/earn", key="give-1",
                json={"rule": "adjust", "points": 800, "reason": "opening balance", "source_ref": "t",
                      "branch": "SH01"})
    assert given.status_code == 201, given.text
    body = {"from_member_id": parent, "to_member_id": child, "points": 200, "branch": "SH01"}
    moved = as_(suite, DESK, "POST", f"/v1/families/{family}/points-transfers", key="move-1", json=body)
    again = as_(suite, DESK, "POST", f"/v1/families/{family}/points-transfers", key="move-1", json=body)
    assert moved.status_code == 201, moved.text
    assert again.status_code == 201 and again.json()["id"] == moved.json()["id"]
    short = as_(suite, DESK, "POST", f"/v1/families/{family}/points-transfers", key="move-2",
                json={**body, "points": 10_000})
    assert short.status_code == 409
    view = as_(suite, DESK, "GET", f"/v1/families/{family}/balances").json()
    assert view["points"] == 800 and {m["member_id"]: m["points"] for m in view["members"]} == {parent: 600,
                                                                                               child: 200}
    off = as_(suite, DESK, "POST", f"/v1/families/{family}/wallet-transfers", key="sv-1", json={
        "from_member_id": parent, "to_member_id": child, "amount": {"amount": 100, "currency": "CNY"},
        "branch": "SH01"})
    assert off.status_code == 422  # stored-value transfers are off in this programme

    bought = as_(suite, DESK, "POST", f"/v1/members/{parent}/points/tier-purchases", key="tier-1",
                 json={"tier": "gold", "branch": "SH01"})
    assert bought.status_code == 201, bought.text
    assert bought.json()["tier"]["tier"] == "gold" and bought.json()["points"] == 300
    assert as_(suite, DESK, "GET", f"/v1/members/{parent}/points").json()["balance"] == 300
    not_sold = as_(suite, DESK, "POST", f"/v1/members/{parent}/points/tier-purchases", key="tier-2",
                   json={"tier": "diamond", "branch": "SH01"})
    assert not_sold.status_code == 422

    unlinked = as_(suite, DESK, "POST", f"/v1/families/{family}/members/{child}/unlink", key="fam-1-unlink",
                   json={"reason": "moved to her own account"})
    assert unlinked.status_code == 200
    history = as_(suite, DESK, "GET", f"/v1/families/{family}/history").json()["items"]
    assert [h["action"] for h in history] == ["created", "linked", "linked", "unlinked"]
    assert as_(suite, DESK, "GET", "/v1/families/not-a-uuid").status_code == 404
