"""Identity over HTTP: the HIS patient webhook through the identity rule (200 matched, 201 enrolled, 202
in review), and the review routes (list, read, resolve once) for the branch's managers."""

from __future__ import annotations

HIS = "https://his-jingan.example.org/mrn"
ZHOU = {"full_name": "Zhou Min", "phone": "13811112222", "birth_date": "1985-03-04", "home_branch": "SH01",
        "identifiers": [{"system": HIS, "value": "MRN-0001"}]}
NAMESAKE = {**ZHOU, "phone": "13933334444", "identifiers": [{"system": HIS, "value": "MRN-0002"}]}


def test_the_his_webhook_links_enrols_or_queues_and_a_manager_resolves_the_review(suite):
    his = suite.integration(branches=("SH01",))
    enrolled = suite.signed("POST", "/v1/webhooks/patients", ZHOU, integration=his,
                            headers={"Idempotency-Key": "his-p-1"})
    assert enrolled.status_code == 201, enrolled.text
    zhou = enrolled.json()
    assert zhou["source"] == "his"
    # the same patient again (its MRN, a new message): the member, no second one
    again = suite.signed("POST", "/v1/webhooks/patients", {**ZHOU, "phone": None}, integration=his,
                         headers={"Idempotency-Key": "his-p-2"})
    assert again.status_code == 200 and again.json()["id"] == zhou["id"], again.text
    # someone with the same name and birth date, another phone: waits for review, nobody is enrolled
    queued = suite.signed("POST", "/v1/webhooks/patients", NAMESAKE, integration=his,
                          headers={"Idempotency-Key": "his-p-3"})
    assert queued.status_code == 202, queued.text
    receipt = queued.json()
    assert receipt["status"] == "open" and receipt["branch"] == "SH01" and set(receipt) == {"id", "status", "branch"}
    replayed = suite.signed("POST", "/v1/webhooks/patients", NAMESAKE, integration=his,
                            headers={"Idempotency-Key": "his-p-3"})
    assert replayed.status_code == 202 and replayed.json() == receipt
    assert suite.call("GET", "/v1/members", params={"q": "Zhou Min"}).json()["items"].__len__() == 1

    manager = suite.token("branch_manager", ("SH01",))
    listed = suite.as_token(manager, "GET", "/v1/identity/reviews", params={"branch": "SH01"})
    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()["items"]] == [receipt["id"]]
    item = listed.json()["items"][0]
    assert item["candidates"][0]["member_id"] == zhou["id"] and item["patient"]["full_name"] == "Zhou Min"
    detail = suite.as_token(manager, "GET", f"/v1/identity/reviews/{receipt['id']}").json()
    assert detail["original_format"] == "application/json" and "13933334444" in detail["original"]
    assert detail["source"].startswith("webhook:test-integration")

    path = f"/v1/identity/reviews/{receipt['id']}/resolve"
    resolved = suite.as_token(manager, "POST", path, json={"action": "link", "member_id": zhou["id"]},
                              headers={"Idempotency-Key": "resolve-1"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "linked", resolved.text
    twice = suite.as_token(manager, "POST", path, json={"action": "create"}, headers={"Idempotency-Key": "resolve-2"})
    assert twice.status_code == 409 and twice.json()["error"]["details"]["status"] == "linked"
    identifiers = suite.call("GET", f"/v1/members/{zhou['id']}/identifiers").json()["items"]
    assert {"system": HIS, "value": "MRN-0002"} in identifiers
    found = suite.call("GET", "/v1/members/by-identifier", params={"system": HIS, "value": "MRN-0002"})
    assert found.status_code == 200 and found.json()["id"] == zhou["id"]


def test_review_routes_refuse_other_branches_bad_ids_and_bad_resolutions(suite):
    other = suite.token("branch_manager", ("SH02",))
    assert suite.as_token(other, "GET", "/v1/identity/reviews", params={"branch": "SH01"}).status_code == 403
    assert suite.call("GET", "/v1/identity/reviews/not-a-uuid").status_code == 404
    missing = "4d2c9a10-0000-4000-8000-00000000beef"
    assert suite.call("GET", f"/v1/identity/reviews/{missing}").status_code == 404
    bad = suite.call("POST", f"/v1/identity/reviews/{missing}/resolve", json={"action": "merge"})
    assert bad.status_code == 422 and "action" in bad.json()["error"]["fields"]
    assert suite.call("GET", "/v1/identity/reviews").status_code == 422  # which branch?
    # a broken patient from the HIS: 422 naming the field (members judged it, through interfaces)
    broken = suite.signed("POST", "/v1/webhooks/patients", {**ZHOU, "birth_date": "someday"})
    assert broken.status_code == 422 and "birth_date" in broken.json()["error"]["fields"], broken.text
    doc = suite.call("GET", "/openapi.json", role=None).json()
    assert {"/v1/identity/reviews", "/v1/identity/reviews/{review_id}",
            "/v1/identity/reviews/{review_id}/resolve"} <= set(doc["paths"])
    assert set(doc["paths"]["/v1/webhooks/patients"]["post"]["responses"]) >= {"200", "201", "202"}
