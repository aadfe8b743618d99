"""The members service through its RPC, on SQLite and PostgreSQL, with the real broker."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from services.kit.caller import Identity
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from services.members.service import MembersService
from tests.harness import query

ANNA = {"full_name": "Anna Smith", "phone": "13800138000", "birth_date": "1990-05-01", "home_branch": "SH01",
        "email": "anna@example.com", "consents": {"sms": True, "marketing": True},
        "id_document": {"type": "cn_resident_id", "number": "11010519491231002X"}}
FRONT_DESK = Identity(kind="staff", subject="u1", role="front_desk", branches=("SH01",))
CLINICIAN = Identity(kind="staff", subject="u2", role="clinician", branches=("SH01",))


def rows(url: str, sql: str, **params: object) -> list:
    return query(url, sql, **params)


@pytest.fixture
def members(start_service, rpc, backend):
    container = start_service(MembersService, backend)
    return container, rpc()


def test_enrol_then_read_by_id_card_phone_name_and_id_number(members):
    container, proxy = members
    member = proxy.members.enrol(ANNA)
    assert member["phone"] == "+8613800138000"
    assert member["tier"] == "standard" and member["status"] == "active"
    assert len(member["card_number"]) == 12 and member["card_number"].startswith("88")
    assert proxy.members.get_member(member["id"])["card_number"] == member["card_number"]
    assert proxy.members.get_member_by_card(member["card_number"])["id"] == member["id"]
    for criteria in ({"phone": "+86 138 0013 8000"}, {"card": member["card_number"]}, {"q": "anna smith"},
                  {"q": "SMITH"}, {"id_number": "11010519491231002x"}, {"q": "Smith", "branch": "SH01"}):
        found = proxy.members.find_members(criteria)["items"]
        assert [m["id"] for m in found] == [member["id"]], criteria
        assert found[0]["phone"] == "+86138****8000"  # lists are always masked
    assert proxy.members.find_members({"q": "Smith", "branch": "HZ01"})["items"] == []


def test_personal_data_is_encrypted_at_rest(members):
    container, proxy = members
    proxy.members.enrol(ANNA)
    (row,) = rows(container.database_url, "SELECT full_name, phone, email, document_number, birth_date FROM members")
    stored = " ".join(str(value) for value in row)
    for plain in ("Anna", "13800138000", "anna@example.com", "11010519491231002X", "1990-05-01"):
        assert plain not in stored


@pytest.mark.parametrize(("change", "matched_on"), [
    ({"full_name": "Other Person", "birth_date": "1970-01-01", "id_document": None}, "phone"),
    ({"full_name": "Other Person", "birth_date": "1970-01-01", "phone": "13900139000"}, "id_document"),
    ({"phone": "13900139000", "id_document": None}, "name_and_birth_date"),
])
def test_duplicates_are_refused_naming_the_member(members, change, matched_on):
    _container, proxy = members
    first = proxy.members.enrol(ANNA)
    with pytest.raises(Conflict) as raised:
        proxy.members.enrol({**ANNA, **change})
    match = raised.value.details["matches"][0]
    assert match["member_id"] == first["id"] and match["card_number"] == first["card_number"]
    assert matched_on in match["matched_on"]
    assert first["card_number"] in raised.value.message


@pytest.mark.parametrize(("change", "field"), [
    ({"phone": "12345"}, "phone"),
    ({"birth_date": (date.today() + timedelta(days=2)).isoformat()}, "birth_date"),
    ({"favourite_colour": "blue"}, "favourite_colour"),
    ({"full_name": None}, "full_name"),
    ({"home_branch": "XX99"}, "branch"),
    ({"referral_code": "NOSUCH22"}, "referral_code"),
    ({"id_document": {"type": "cn_resident_id", "number": "110105194912310021"}}, "id_document"),
])
def test_invalid_enrolment_is_refused_and_writes_nothing(members, change, field):
    container, proxy = members
    data = {k: v for k, v in {**ANNA, **change}.items() if v is not None}
    with pytest.raises(Invalid) as raised:
        proxy.members.enrol(data)
    assert field in raised.value.fields
    assert rows(container.database_url, "SELECT count(*) FROM members")[0][0] == 0
    assert rows(container.database_url, "SELECT count(*) FROM kit_outbox")[0][0] == 0


def test_referral_code_links_the_referrer(members):
    _container, proxy = members
    referrer = proxy.members.enrol(ANNA)
    referred = proxy.members.enrol({"full_name": "Bo Chen", "phone": "13900139000", "birth_date": "1988-08-08",
                                    "home_branch": "SH02", "referral_code": referrer["referral_code"].lower()})
    assert referred["referred_by"] == referrer["id"]


def test_enrolment_is_idempotent_by_key(members):
    container, proxy = members
    first = proxy.members.enrol(ANNA, idempotency_key="desk-7-0001")
    again = proxy.members.enrol(ANNA, idempotency_key="desk-7-0001")
    assert again == first
    assert rows(container.database_url, "SELECT count(*) FROM members")[0][0] == 1
    assert rows(container.database_url, "SELECT count(*) FROM kit_outbox")[0][0] == 1
    with pytest.raises(Invalid) as raised:
        proxy.members.enrol({**ANNA, "full_name": "Someone Else"}, idempotency_key="desk-7-0001")
    assert "idempotency_key" in raised.value.fields


def test_update_changes_fields_emits_event_and_refuses_taken_phone(members):
    container, proxy = members
    anna = proxy.members.enrol(ANNA)
    bo = proxy.members.enrol({"full_name": "Bo Chen", "phone": "13900139000", "birth_date": "1988-08-08",
                              "home_branch": "SH02"})
    updated = proxy.members.update_member(anna["id"], {"preferred_language": "en", "consents": {"sms": False},
                                                       "full_name": "Anna Smith-Lee"})
    assert updated["preferred_language"] == "en"
    assert updated["consents"]["sms"] is False and updated["consents"]["marketing"] is True
    assert [m["id"] for m in proxy.members.find_members({"q": "smith-lee"})["items"]] == [anna["id"]]
    with pytest.raises(Conflict) as raised:
        proxy.members.update_member(anna["id"], {"phone": "139 0013 9000"})
    assert raised.value.details["matches"][0]["member_id"] == bo["id"]
    events = [json.loads(payload) for (payload,) in rows(
        container.database_url, "SELECT payload FROM kit_outbox WHERE event_type = 'member_updated'")]
    assert len(events) == 1
    assert sorted(events[0]["changed"]) == ["consents", "full_name", "preferred_language"]
    assert "Anna" not in json.dumps(events[0])  # events carry ids and field names, never values


def test_unknown_member_is_not_found(members):
    _container, proxy = members
    for member_id in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        with pytest.raises(NotFound):
            proxy.members.get_member(member_id)
    with pytest.raises(NotFound):
        proxy.members.get_member_by_card("889999999999")


def test_search_needs_exactly_one_criterion_and_pages_with_a_cursor(members):
    _container, proxy = members
    with pytest.raises(Invalid):
        proxy.members.find_members({})
    with pytest.raises(Invalid):
        proxy.members.find_members({"phone": "13800138000", "q": "anna"})
    for number in range(5):
        proxy.members.enrol({"full_name": f"Wu Test{number}", "phone": f"1360000000{number}",
                             "birth_date": "1980-01-01", "home_branch": "SH01"})
    seen, cursor = [], None
    while True:
        page = proxy.members.find_members({"q": "wu", "limit": 2, **({"cursor": cursor} if cursor else {})})
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 5


def test_masking_and_branch_rules_follow_the_caller(members, rpc):
    _container, proxy = members
    anna = proxy.members.enrol(ANNA)
    as_desk = rpc(caller=FRONT_DESK).members.get_member(anna["id"])
    assert as_desk["phone"] == "+8613800138000"
    assert as_desk["id_document"]["number"] == "110***********002X"
    as_clinician = rpc(caller=CLINICIAN).members.get_member(anna["id"])
    assert as_clinician["phone"] == "+86138****8000"
    with pytest.raises(Forbidden):
        rpc(caller=FRONT_DESK).members.enrol({**ANNA, "phone": "13900139000", "id_document": None,
                                              "full_name": "Bo Chen", "home_branch": "HZ01"})
    with pytest.raises(Forbidden):
        rpc(caller=FRONT_DESK).members.get_contact(anna["id"])
    assert proxy.members.get_contact(anna["id"])["phone"] == "+8613800138000"


def test_two_desks_enrolling_the_same_phone_at_once_make_one_member(members, backend):
    container, proxy = members
    people = [{**ANNA, "full_name": f"Twin {n}", "birth_date": f"199{n}-01-01", "id_document": None}
              for n in range(6)]
    # all six requests are in the service's queue at once; its workers run them concurrently
    replies = [proxy.members.enrol.call_async(person) for person in people]
    outcomes = [_outcome(reply) for reply in replies]
    assert outcomes.count("ok") == 1 and outcomes.count("conflict") == 5
    assert rows(container.database_url, "SELECT count(*) FROM members")[0][0] == 1


def _outcome(reply):
    try:
        reply.result()
        return "ok"
    except Conflict:
        return "conflict"


def test_benefits_of_a_new_member_are_the_standard_tier(members):
    _container, proxy = members
    anna = proxy.members.enrol(ANNA)
    benefits = proxy.members.benefits(anna["id"])
    assert benefits["tier"] == "standard" and benefits["booking_horizon_days"] == 3
    assert benefits["quotas"] == [] and benefits["discounts"]["cleaning"] == 0


def test_birthdays_lists_active_members_of_that_day(members):
    _container, proxy = members
    anna = proxy.members.enrol(ANNA)
    assert [m["member_id"] for m in proxy.members.birthdays("05-01")["items"]] == [anna["id"]]
    assert proxy.members.birthdays("05-02")["items"] == []
    with pytest.raises(Invalid):
        proxy.members.birthdays("5/1")
