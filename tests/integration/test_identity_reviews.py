"""The identity review queue (interfaces) over members' identity rule, through the RPCs, on SQLite and
PostgreSQL: sure / probable / none, the queue, resolving both ways, once; two resolutions at once on
PostgreSQL, overlap shown."""

from __future__ import annotations

import pytest

from services.interfaces.service import InterfacesService
from services.kit.caller import Identity
from services.kit.errors import Conflict, Forbidden, Invalid
from services.members.service import MembersService
from tests.harness import query, scalar
from tests.integration.overlap import LockWaits

HIS = "https://his-jingan.example.org/mrn"
ZHOU = {"full_name": "Zhou Min", "birth_date": "1985-03-04", "gender": "female", "phones": ["13811112222"],
        "home_branch": "SH01", "identifiers": [{"system": HIS, "value": "MRN-0001"}]}
# the same name and birth date, another phone and MRN: probably Zhou Min, not surely
NAMESAKE = {**ZHOU, "phones": ["13933334444"], "identifiers": [{"system": HIS, "value": "MRN-0002"}]}
INTEGRATION = Identity(kind="system", subject="webhook:his-jingan", role="integration", branches=("SH01",))
MANAGER = Identity(kind="staff", subject="m1", role="branch_manager", branches=("SH01",), name="Manager One")
OTHER_MANAGER = Identity(kind="staff", subject="m2", role="branch_manager", branches=("SH02",))
FRONT_DESK = Identity(kind="staff", subject="f1", role="front_desk", branches=("SH01",))


def arrival(patient, ref=None, original='{"raw": "as sent"}'):
    return {"patient": patient, "source": "webhook:his-jingan", "source_ref": ref, "original": original,
            "original_format": "application/json"}


@pytest.fixture
def world(start_service, rpc, backend):
    members = start_service(MembersService, backend)
    interfaces = start_service(InterfacesService, backend)
    return members, interfaces, rpc(caller=INTEGRATION).interfaces, rpc(caller=MANAGER).interfaces


def test_sure_and_none_need_no_review(world):
    members, interfaces, his, _manager = world
    enrolled = his.identify(arrival(ZHOU), idempotency_key="p-1")
    assert enrolled["outcome"] == "enrolled" and enrolled["review"] is None
    assert his.identify(arrival(ZHOU), idempotency_key="p-1") == enrolled  # a retry: the same answer
    again = his.identify(arrival({**ZHOU, "phones": []}), idempotency_key="p-2")
    assert (again["outcome"], again["member"]["id"], again["matched_on"]) == (
        "matched", enrolled["member"]["id"], ["identifier", "name_and_birth_date"])
    assert scalar(interfaces.database_url, "SELECT count(*) FROM identity_reviews") == 0
    assert scalar(members.database_url, "SELECT count(*) FROM members") == 1


def test_a_probable_match_waits_in_review_and_creates_nobody(world):
    members, interfaces, his, manager = world
    zhou = his.identify(arrival(ZHOU))["member"]
    queued = his.identify(arrival(NAMESAKE, ref="msg-7", original="MSH|^~\\&|HIS|..."), idempotency_key="p-3")
    assert queued["outcome"] == "review" and queued["member"] is None
    review = queued["review"]
    assert (review["status"], review["branch"], review["source"], review["source_ref"]) == (
        "open", "SH01", "webhook:his-jingan", "msg-7")
    assert review["candidates"] == [{"member_id": zhou["id"], "card_number": zhou["card_number"],
                                     "matched_on": ["name_and_birth_date"]}]
    assert review["patient"]["phones"] == ["13933334444"]
    assert scalar(members.database_url, "SELECT count(*) FROM members") == 1
    # the same message again (another key): the same review
    assert his.identify(arrival(NAMESAKE, ref="msg-7"), idempotency_key="p-4")["review"]["id"] == review["id"]
    # personal data at rest: encrypted
    stored = query(interfaces.database_url, "SELECT patient, candidates, original FROM identity_reviews")
    assert len(stored) == 1 and not any("Zhou" in column or "MSH" in column or zhou["id"] in column
                                        for column in stored[0])
    # listed for the branch's managers, read with the original (and the reading logged)
    page = manager.identity_reviews({"branch": "SH01"})
    assert [item["id"] for item in page["items"]] == [review["id"]] and page["next_cursor"] is None
    detail = manager.identity_review(review["id"])
    assert detail["original"] == "MSH|^~\\&|HIS|..." and detail["original_format"] == "application/json"
    assert [(entry["action"], entry["actor"]) for entry in detail["log"]] == [
        ("queued", "system:webhook:his-jingan (integration)"), ("read", "staff:m1 (branch_manager)")]


def test_only_the_branch_s_managers_see_and_resolve_its_reviews(world, rpc):
    _members, _interfaces, his, _manager = world
    his.identify(arrival(ZHOU))
    review = his.identify(arrival(NAMESAKE))["review"]
    for caller in (OTHER_MANAGER, FRONT_DESK, INTEGRATION):
        with pytest.raises(Forbidden):
            rpc(caller=caller).interfaces.identity_reviews({"branch": "SH01"})
    with pytest.raises(Forbidden):
        rpc(caller=OTHER_MANAGER).interfaces.identity_review(review["id"])
    with pytest.raises(Forbidden):
        rpc(caller=OTHER_MANAGER).interfaces.resolve_review(review["id"], {"action": "create"})
    with pytest.raises(Invalid):
        rpc(caller=MANAGER).interfaces.identity_reviews({"branch": "XX99"})


def test_link_adds_the_identifiers_and_a_second_resolution_is_refused(world, rpc):
    members, _interfaces, his, manager = world
    zhou = his.identify(arrival(ZHOU))["member"]
    review = his.identify(arrival(NAMESAKE))["review"]
    with pytest.raises(Invalid):
        manager.resolve_review(review["id"], {"action": "link"})  # which member?
    linked = manager.resolve_review(review["id"], {"action": "link", "member_id": zhou["id"]}, idempotency_key="r-1")
    assert (linked["status"], linked["member_id"], linked["resolved_by"]) == (
        "linked", zhou["id"], "staff:m1 (branch_manager)")
    assert manager.resolve_review(review["id"], {"action": "link", "member_id": zhou["id"]},
                                  idempotency_key="r-1") == linked  # a retry
    with pytest.raises(Conflict):
        manager.resolve_review(review["id"], {"action": "create"}, idempotency_key="r-2")
    identifiers = rpc().members.identifiers(zhou["id"])["items"]
    assert {"system": HIS, "value": "MRN-0002"} in identifiers
    # the HIS sends the patient again: now a sure match by its MRN
    assert his.identify(arrival(NAMESAKE))["outcome"] == "matched"
    assert manager.identity_reviews({"branch": "SH01"})["items"] == []
    assert [r["id"] for r in manager.identity_reviews({"branch": "SH01", "status": "linked"})["items"]] == [review["id"]]
    assert scalar(members.database_url, "SELECT count(*) FROM members") == 1


def test_create_enrols_a_new_member_and_may_give_another_phone(world):
    members, _interfaces, his, manager = world
    zhou = his.identify(arrival(ZHOU))["member"]
    namesake = manager.resolve_review(his.identify(arrival(NAMESAKE))["review"]["id"], {"action": "create"})
    assert namesake["status"] == "created" and namesake["member_id"] != zhou["id"]
    # a child on the mother's phone: creating needs a phone of its own
    child = {**ZHOU, "full_name": "Zhou Xiaoming", "birth_date": "2015-06-01", "identifiers": []}
    review = his.identify(arrival(child))["review"]
    assert review["candidates"][0]["matched_on"] == ["phone"]
    with pytest.raises(Conflict):
        manager.resolve_review(review["id"], {"action": "create"})
    assert manager.identity_review(review["id"])["status"] == "open"  # the refusal changed nothing
    created = manager.resolve_review(review["id"], {"action": "create", "phone": "13700007777"})
    assert created["status"] == "created"
    assert scalar(members.database_url, "SELECT count(*) FROM members") == 3


@pytest.mark.timeout(120)
def test_two_managers_resolving_at_once_resolve_once(start_service, rpc):
    start_service(MembersService, "postgresql")
    first = start_service(InterfacesService, "postgresql")
    start_service(InterfacesService, database_url=first.database_url)  # a second replica
    his = rpc(caller=INTEGRATION).interfaces
    zhou = his.identify(arrival(ZHOU))["member"]
    review = his.identify(arrival(NAMESAKE))["review"]
    proxy = rpc(caller=MANAGER).interfaces
    with LockWaits(first.database_url) as waits:
        replies = [proxy.resolve_review.call_async(review["id"], {"action": "link", "member_id": zhou["id"]},
                                                   idempotency_key=f"desk-{n}") for n in range(2)]
        replies += [proxy.resolve_review.call_async(review["id"], {"action": "create"}, idempotency_key=f"new-{n}")
                    for n in range(2)]
        outcomes = []
        for reply in replies:
            try:
                outcomes.append(reply.result()["status"])
            except Conflict:
                outcomes.append("409")
    assert sorted(outcomes).count("409") == 3, outcomes
    assert scalar(first.database_url, "SELECT count(*) FROM identity_review_log WHERE action IN ('linked', 'created')") == 1
    assert waits.count("transactionid", "tuple") > 0, "no resolution waited for another: they did not overlap"


def test_reviews_come_a_page_at_a_time_no_larger_than_the_setting(start_service, rpc, backend):
    start_service(MembersService, backend)
    start_service(InterfacesService, backend, REVIEW_PAGE_MAX=2)
    his, manager = rpc(caller=INTEGRATION).interfaces, rpc(caller=MANAGER).interfaces
    his.identify(arrival(ZHOU))
    queued = [his.identify(arrival({**NAMESAKE, "phones": [f"1393333000{n}"], "identifiers": []}))["review"]["id"]
              for n in range(3)]
    first = manager.identity_reviews({"branch": "SH01", "limit": 50})
    assert [item["id"] for item in first["items"]] == queued[:2] and first["next_cursor"]
    rest = manager.identity_reviews({"branch": "SH01", "cursor": first["next_cursor"]})
    assert [item["id"] for item in rest["items"]] == queued[2:] and rest["next_cursor"] is None
