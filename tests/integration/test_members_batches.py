"""members.check_enrolments and members.enrol_batch (the imports' RPCs), on PostgreSQL and SQLite."""

from __future__ import annotations

import json

import pytest

from services.kit.caller import Identity
from services.members.service import MembersService
from tests.harness import query, scalar

ROW = {"full_name": "王芳", "phone": "13900000001", "birth_date": "1980-01-02", "home_branch": "SH01"}
OTHER = {"full_name": "李娜", "phone": "13900000002", "birth_date": "1981-03-04", "home_branch": "SH01"}
MANAGER = Identity(kind="staff", subject="m", role="branch_manager", branches=("HZ01",))


@pytest.fixture
def members(start_service, rpc, backend):
    container = start_service(MembersService, backend)
    return container, rpc()


def batch(*members):
    return {"rows": [{"key": f"import:job:{n}", "member": member} for n, member in enumerate(members, start=2)]}


def test_a_batch_enrols_each_row_once_and_a_resent_batch_enrols_nobody_again(members):
    container, proxy = members
    sent = batch(ROW, OTHER, {**ROW, "phone": "+86 139 0000 0001", "full_name": "Wang Fang"}, {**OTHER, "phone": "12345"})
    first = proxy.members.enrol_batch(sent)["items"]
    assert [item["status"] for item in first] == ["enrolled", "enrolled", "present", "invalid"]
    assert "import:job:2" in first[2]["message"] and first[3]["errors"] == {"phone": ["Not a valid phone number."]}
    again = proxy.members.enrol_batch(sent)["items"]
    assert [(item["status"], item["replayed"]) for item in again] == [
        ("enrolled", True), ("enrolled", True), ("present", False), ("invalid", False)]
    assert [item["member_id"] for item in again[:2]] == [item["member_id"] for item in first[:2]]
    assert scalar(container.database_url, "SELECT count(*) FROM members WHERE source = 'import'") == 2
    later = proxy.members.enrol_batch({"rows": [{"key": "import:job2:2", "member": ROW}]})["items"]
    assert later[0]["status"] == "present" and later[0]["matches"][0]["member_id"] == first[0]["member_id"]


def test_a_check_writes_nothing_and_tells_present_from_valid_and_invalid(members):
    container, proxy = members
    proxy.members.enrol(ROW)
    checked = proxy.members.check_enrolments(batch(ROW, OTHER, {**OTHER, "birth_date": "2999-01-01"}))["items"]
    assert [item["status"] for item in checked] == ["present", "valid", "invalid"]
    assert checked[0]["matches"][0]["matched_on"] == ["phone", "name_and_birth_date"]
    assert len(checked[1]["identity"]) == 2  # phone and name + birth date (no document)
    assert scalar(container.database_url, "SELECT count(*) FROM members") == 1


def test_a_caller_enrols_only_at_their_branches(members, rpc):
    _container, _proxy = members
    outcome = rpc(caller=MANAGER).members.enrol_batch(batch(ROW))["items"][0]
    assert outcome["status"] == "invalid" and "SH01" in outcome["message"]


def test_a_row_keeps_its_legacy_card_number_when_no_member_holds_it(members):
    container, proxy = members
    third = {**OTHER, "full_name": "张伟", "phone": "13900000003", "birth_date": "1982-05-06"}
    fourth = {**OTHER, "full_name": "刘洋", "phone": "13900000004", "birth_date": "1983-07-08"}
    desk = proxy.members.enrol(ROW)  # the desk's member holds a card the group drew
    sent = {"rows": [{"key": "import:job:2", "member": OTHER, "card_number": "OLD-0001"},
                     {"key": "import:job:3", "member": third, "card_number": desk["card_number"]},
                     {"key": "import:job:4", "member": fourth, "card_number": "OLD 0001"},
                     {"key": "import:job:5", "member": {**fourth, "phone": "13900000005"}, "card_number": "卡1"}]}
    items = proxy.members.enrol_batch(sent)["items"]
    assert [item["status"] for item in items] == ["enrolled", "enrolled", "enrolled", "invalid"]
    assert items[0]["card_number"] == "OLD0001"  # kept, in the form cards are kept (no spaces or dashes)
    # held by the desk's member, or by an earlier row: a card is drawn, as for a desk
    assert items[1]["card_number"] not in (desk["card_number"], "OLD0001")
    assert items[2]["card_number"] not in (desk["card_number"], "OLD0001")
    assert items[3]["errors"] == {"card_number": ["Not a card number (1 to 20 letters and digits)."]}
    assert proxy.members.get_member_by_card("OLD0001")["id"] == items[0]["member_id"]
    # a balances sheet of the old system names the member by that card (the opening kinds' card column)
    found = proxy.members.locate_members({"rows": [{"key": "import:b:2", "card_number": "OLD-0001"}]})["items"]
    assert found[0]["status"] == "found" and found[0]["member_id"] == items[0]["member_id"]
    again = proxy.members.enrol_batch(sent)["items"]  # the stored answers, the same cards
    assert [(item.get("card_number"), item["replayed"]) for item in again[:3]] == [
        (item["card_number"], True) for item in items[:3]]
    # the batch's members announced in one members_imported (issue 19), the replay announced nothing; the desk's
    # enrolment is still a member_enrolled
    announced = [json.loads(payload)["members"] for payload, in query(
        container.database_url, "SELECT payload FROM kit_outbox WHERE event_type = 'members_imported'")]
    assert [[member["member_id"] for member in members] for members in announced] == [
        [item["member_id"] for item in items[:3]]]
    assert {member["source"] for member in announced[0]} == {"import"}
    assert scalar(container.database_url, "SELECT count(*) FROM kit_outbox WHERE event_type = 'member_enrolled'") == 1
