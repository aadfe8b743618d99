"""Members' identifiers and the identity rule (``members.identify``) through the RPC, on SQLite and
PostgreSQL; two identical arrivals at once on PostgreSQL, overlap shown."""

from __future__ import annotations

import pytest

from services.kit.caller import Identity
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from services.members.service import MembersService
from tests.harness import query, scalar
from tests.integration.overlap import LockWaits

HIS = "https://his-jingan.example.org/mrn"
OTHER_HIS = "urn:oid:1.2.156.112604.1.2.3"
CARD = "urn:careloop:smile:card"
PATIENT = {"full_name": "Zhou Min", "birth_date": "1985-03-04", "gender": "female", "phones": ["13811112222"],
           "home_branch": "SH01", "identifiers": [{"system": HIS, "value": "MRN-0001"}]}
INTEGRATION_SH02 = Identity(kind="system", subject="k1", role="integration", branches=("SH02",))
CLINICIAN = Identity(kind="staff", subject="u2", role="clinician", branches=("*",))


@pytest.fixture
def members(start_service, rpc, backend):
    container = start_service(MembersService, backend)
    return container, rpc().members


def test_nobody_matches_so_the_patient_is_enrolled_with_the_identifier(members):
    container, proxy = members
    answer = proxy.identify(PATIENT)
    assert answer["outcome"] == "enrolled" and answer["candidates"] == []
    member = answer["member"]
    assert (member["full_name"], member["phone"], member["source"]) == ("Zhou Min", "+8613811112222", "his")
    assert answer["identifiers_added"] == [{"system": HIS, "value": "MRN-0001"}]
    assert proxy.identifiers(member["id"])["items"] == [{"system": CARD, "value": member["card_number"]},
                                                        {"system": HIS, "value": "MRN-0001"}]
    assert proxy.find_by_identifier({"system": HIS, "value": " MRN-0001 "})["id"] == member["id"]
    assert proxy.find_by_identifier({"system": CARD, "value": member["card_number"]})["id"] == member["id"]
    # the MRN is personal: encrypted at rest, found through its blind index
    stored = query(container.database_url, "SELECT value, value_index FROM member_identifiers")
    assert len(stored) == 1 and "MRN-0001" not in stored[0][0] and "MRN-0001" not in stored[0][1]


def test_sure_matches_link_and_add_the_identifier_once(members):
    container, proxy = members
    first = proxy.identify(PATIENT)["member"]
    # the same MRN (with spaces around it) under a misspelt name and no phone: the identifier is sure
    again = proxy.identify({**PATIENT, "full_name": "Zhou Ming", "phones": [],
                            "identifiers": [{"system": HIS, "value": " MRN-0001"}]})
    assert (again["outcome"], again["member"]["id"], again["matched_on"]) == ("matched", first["id"], ["identifier"])
    assert again["identifiers_added"] == []
    # a second HIS sends the same person by phone and name: linked, its MRN added
    other = proxy.identify({**PATIENT, "phones": ["+86 138-1111-2222"],
                            "identifiers": [{"system": OTHER_HIS, "value": "900017"}]})
    assert (other["outcome"], other["member"]["id"]) == ("matched", first["id"])
    assert "phone" in other["matched_on"] and other["identifiers_added"] == [{"system": OTHER_HIS, "value": "900017"}]
    # the ID document is sure too
    proxy.add_identifiers(first["id"], {"identifiers": [{"system": OTHER_HIS, "value": "900017"}]})  # no-op
    assert [i["system"] for i in proxy.identifiers(first["id"])["items"]] == [CARD, HIS, OTHER_HIS]
    assert scalar(container.database_url, "SELECT count(*) FROM members") == 1


def test_probable_matches_change_nothing_and_name_the_candidates(members):
    container, proxy = members
    zhou = proxy.identify(PATIENT)["member"]
    # same name and birth date, another phone, no identifier we know
    probable = proxy.identify({**PATIENT, "phones": ["13933334444"], "identifiers": [{"system": HIS, "value": "X9"}]})
    assert probable["outcome"] == "probable" and probable["member"] is None
    assert probable["candidates"] == [{"member_id": zhou["id"], "card_number": zhou["card_number"],
                                       "matched_on": ["name_and_birth_date"]}]
    # same phone, another name (a child on the parent's phone)
    child = proxy.identify({**PATIENT, "full_name": "Zhou Xiaoming", "birth_date": "2015-06-01", "identifiers": []})
    assert child["outcome"] == "probable" and child["candidates"][0]["matched_on"] == ["phone"]
    assert scalar(container.database_url, "SELECT count(*) FROM members") == 1
    assert scalar(container.database_url, "SELECT count(*) FROM member_identifiers") == 1


def test_a_review_decides_create_new_despite_the_same_name_and_birth_date(members):
    container, proxy = members
    zhou = proxy.identify(PATIENT)["member"]
    other = {**PATIENT, "phones": ["13933334444"], "identifiers": [{"system": HIS, "value": "MRN-0002"}]}
    created = proxy.identify(other, create_new=True, idempotency_key="review-1-create")
    assert created["outcome"] == "enrolled" and created["member"]["id"] != zhou["id"]
    assert proxy.identify(other, create_new=True, idempotency_key="review-1-create") == created
    # but not over a phone or an identifier another member holds
    with pytest.raises(Conflict):
        proxy.identify({**PATIENT, "full_name": "Zhou Xiaoming", "identifiers": []}, create_new=True)
    with pytest.raises(Conflict):
        proxy.identify({**other, "phones": ["13955556666"]}, create_new=True)
    assert scalar(container.database_url, "SELECT count(*) FROM members") == 2


def test_identifiers_are_one_member_each_and_the_card_system_is_the_card(members):
    _container, proxy = members
    zhou = proxy.identify(PATIENT)["member"]
    li = proxy.enrol({"full_name": "Li Na", "phone": "13700001111", "birth_date": "1991-01-01", "home_branch": "SH01"})
    with pytest.raises(Conflict) as refused:
        proxy.add_identifiers(li["id"], {"identifiers": [{"system": HIS, "value": "MRN-0001"}]})
    assert refused.value.details["matches"][0]["member_id"] == zhou["id"]
    with pytest.raises(Invalid):
        proxy.add_identifiers(li["id"], {"identifiers": [{"system": CARD, "value": zhou["card_number"]}]})
    with pytest.raises(Invalid):
        proxy.add_identifiers(li["id"], {"identifiers": []})
    with pytest.raises(NotFound):
        proxy.find_by_identifier({"system": HIS, "value": "MRN-404"})


def test_without_a_mobile_nobody_can_be_enrolled_and_roles_and_branches_are_checked(members, rpc):
    _container, proxy = members
    with pytest.raises(Invalid) as invalid:
        proxy.identify({**PATIENT, "phones": ["02162881888"]})  # a landline: matched on, never enrolled with
    assert "phones" in invalid.value.fields
    with pytest.raises(Forbidden):
        rpc(caller=INTEGRATION_SH02).members.identify(PATIENT)
    with pytest.raises(Forbidden):
        rpc(caller=CLINICIAN).members.identify(PATIENT)


def test_a_closed_membership_forgets_its_identifiers(members):
    container, proxy = members
    zhou = proxy.identify(PATIENT)["member"]
    proxy.close_member(zhou["id"], {"reason": "erasure_request"})
    assert scalar(container.database_url, "SELECT count(*) FROM member_identifiers") == 0
    with pytest.raises(NotFound):
        proxy.find_by_identifier({"system": HIS, "value": "MRN-0001"})


@pytest.mark.timeout(120)
def test_identical_arrivals_at_once_make_one_member(start_service, rpc):
    """Twenty copies of one patient (each with its own idempotency key, as twenty retries of an interface
    engine would be) sent at once to two replicas: one member, the others link to it."""
    first = start_service(MembersService, "postgresql")
    start_service(MembersService, database_url=first.database_url)
    url, proxy = first.database_url, rpc()
    with LockWaits(url) as waits:
        replies = [proxy.members.identify.call_async(PATIENT, idempotency_key=f"arrival-{n}") for n in range(20)]
        answers = [reply.result() for reply in replies]
    outcomes = sorted(answer["outcome"] for answer in answers)
    assert outcomes == ["enrolled"] + ["matched"] * 19, outcomes
    assert len({answer["member"]["id"] for answer in answers}) == 1
    assert scalar(url, "SELECT count(*) FROM members") == 1
    assert scalar(url, "SELECT count(*) FROM member_identifiers") == 1
    assert waits.count("advisory") > 0, "no arrival waited for another: they did not overlap"


def test_a_merged_member_s_identifiers_lead_to_the_survivor(members):
    _container, proxy = members
    duplicate = proxy.identify(PATIENT)["member"]
    survivor = proxy.enrol({"full_name": "Zhou Minli", "phone": "13700002222", "birth_date": "1985-03-04",
                            "home_branch": "SH01"})
    proxy.merge_members(survivor["id"], {"merged_id": duplicate["id"], "reason": "the same person"})
    assert proxy.find_by_identifier({"system": HIS, "value": "MRN-0001"})["id"] == survivor["id"]
    again = proxy.identify(PATIENT)  # the HIS sends the patient again: linked to the survivor
    assert (again["outcome"], again["member"]["id"]) == ("matched", survivor["id"])
