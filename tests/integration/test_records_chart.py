"""Dental charts and care plans through the records RPC: clear refusals, history, recalls and their event."""

from __future__ import annotations

import pytest

from services.kit.errors import Conflict, Forbidden, Invalid
from services.records.rules.recalls import next_recall
from tests.integration.records_support import (
    AUDITOR,
    CLINICIAN,
    CUSTOMER_SERVICE,
    FRONT_DESK,
    HIS,
    bill,
    enrol,
    events,
    local_today,
    rows,
    start_records,
)


@pytest.fixture
def suite(start_service, rpc, backend):
    records, _members = start_records(start_service, backend)
    return records, rpc()


def test_marks_change_the_chart_and_its_history_says_what_when_and_who(suite, rpc):
    records, proxy = suite
    member_id = enrol(proxy, 20)
    doctor = rpc(caller=CLINICIAN).records
    visit = rpc(caller=HIS).records.complete_visit(bill(member_id, "B-C-1"))
    chart = doctor.update_chart(member_id, {"visit_id": visit["id"], "marks": [
        {"tooth": 36, "finding": "caries", "surfaces": ["M", "o"]},
        {"tooth": "16", "finding": "pocket_depth", "depths": {"MB": 5, "DP": 4}},
        {"tooth": 85, "finding": "mobility", "grade": 2},
    ]}, "periodontal exam")
    assert [(t["tooth"], t["name"]) for t in chart["teeth"]] == [
        (16, "upper right first molar"), (36, "lower left first molar"), (85, "lower right primary second molar")]
    assert chart["teeth"][0]["pocket_depths"] == {"MB": 5, "DP": 4} and chart["version"] == 1
    doctor.update_chart(member_id, {"expected_version": 1, "marks": [
        {"tooth": 36, "finding": "caries", "action": "clear"},
        {"tooth": 36, "finding": "filled", "surfaces": ["M", "O"]}]}, "filling placed")
    with pytest.raises(Conflict):
        doctor.update_chart(member_id, {"expected_version": 1, "marks": [{"tooth": 11, "finding": "crown"}]},
                            "late edit")

    history = doctor.chart_history(member_id, "review")["items"]
    assert [h["version"] for h in history] == [2, 1]
    assert history[0]["changes"] == [
        {"tooth": 36, "finding": "caries", "before": ["M", "O"], "after": []},
        {"tooth": 36, "finding": "filled", "before": [], "after": ["M", "O"]}]
    assert history[1]["visit_id"] == visit["id"] and history[1]["changed_by"] == "doc-1"
    assert history[1]["changed_by_role"] == "clinician" and history[1]["changed_at"].endswith("Z")
    raw = str(rows(records.database_url, "SELECT teeth FROM dental_charts")) + str(
        rows(records.database_url, "SELECT changes FROM chart_changes"))
    assert "filled" not in raw and "pocket" not in raw  # encrypted like the rest of the record
    trail = rpc(caller=AUDITOR).records.audit_trail({"member_id": member_id})["items"]
    assert [(e["action"], e["resource"], e["detail"]) for e in trail] == [
        ("read", "chart_history", None), ("write", "chart", "teeth: 36"), ("write", "chart", "teeth: 16,36,85")]


def test_invalid_teeth_and_surfaces_are_refused_clearly_and_nothing_changes(suite, rpc):
    records, proxy = suite
    member_id = enrol(proxy, 21)
    doctor = rpc(caller=CLINICIAN).records
    with pytest.raises(Invalid) as refused:
        doctor.update_chart(member_id, {"marks": [
            {"tooth": 11, "finding": "caries", "surfaces": ["O"]},
            {"tooth": 19, "finding": "crown"},
            {"tooth": 46, "finding": "caries", "surfaces": ["P"]},
            {"tooth": 26, "finding": "crown"},
        ]}, "exam")
    marks = refused.value.fields["marks"]
    assert set(marks) == {"0", "1", "2"}
    assert "I (incisal), not O (occlusal)" in marks["0"]["surfaces"][0]
    assert "quadrant 1 has permanent teeth 11–18" in marks["1"]["tooth"][0]
    assert "L (lingual), not P (palatal)" in marks["2"]["surfaces"][0]
    with pytest.raises(Invalid) as shape:
        doctor.update_chart(member_id, {"marks": [{"tooth": 36, "finding": "calculus"}]}, "exam")
    assert "finding" in str(shape.value.fields)
    assert rows(records.database_url, "SELECT count(*) FROM dental_charts")[0][0] == 0
    assert rows(records.database_url, "SELECT count(*) FROM chart_changes")[0][0] == 0


def test_charts_and_care_plan_texts_are_for_clinicians_only(suite, rpc):
    _records, proxy = suite
    member_id = enrol(proxy, 22)
    rpc(caller=CLINICIAN).records.save_care_plan(member_id, {"recall_type": "cleaning", "branch": "SH01",
                                                             "guidance": "Bass technique"}, "plan")
    for caller in (FRONT_DESK, CUSTOMER_SERVICE):
        with pytest.raises(Forbidden):
            rpc(caller=caller).records.get_chart(member_id, "curious")
        with pytest.raises(Forbidden):
            rpc(caller=caller).records.get_care_plans(member_id, "curious")
        recalls = rpc(caller=caller).records.get_recalls(member_id)["items"]
        assert recalls[0]["recall_type"] == "cleaning" and "guidance" not in recalls[0]


def test_a_care_plan_sets_the_recall_and_a_cleaning_visit_moves_it(suite, rpc):
    records, proxy = suite
    member_id = enrol(proxy, 23)
    doctor = rpc(caller=CLINICIAN).records
    plan = doctor.save_care_plan(member_id, {"recall_type": "cleaning", "branch": "SH01", "guidance": "Floss daily",
                                             "diet": "Fewer sugary drinks", "prevention": "Fluoride varnish"},
                                 "care plan after exam", idempotency_key="cp-1")
    assert plan["recall_interval_months"] == 6 and plan["guidance"] == "Floss daily"
    assert plan["next_recall_on"] == next_recall(local_today(), 6).isoformat()
    same = doctor.save_care_plan(member_id, {"recall_type": "cleaning", "branch": "SH01", "guidance": "Floss daily",
                                             "diet": "Fewer sugary drinks", "prevention": "Fluoride varnish"},
                                 "care plan after exam", idempotency_key="cp-1")
    assert same == plan
    doctor.save_care_plan(member_id, {"recall_type": "cleaning", "branch": "SH01", "guidance": "Floss twice"},
                          "text only")  # no recall change: no event
    changed = doctor.save_care_plan(member_id, {"recall_type": "cleaning", "branch": "SH01",
                                                "recall_interval_months": 3}, "gum disease: every 3 months")
    assert changed["recall_interval_months"] == 3 and changed["guidance"] == "Floss twice"

    cleaning = bill(member_id, "B-CP-1", completed_at="2026-03-10T03:00:00Z")
    cleaning["items"] = [{"category": "cleaning", "code": "SC01", "amount_minor": 30000}]
    rpc(caller=HIS).records.complete_visit(cleaning)
    moved = doctor.get_care_plans(member_id, "check recall")["items"][0]
    assert (moved["last_reset_on"], moved["next_recall_on"]) == ("2026-03-10", "2026-06-10")

    updates = events(records.database_url, "care_plan_updated")
    assert [(e["recall_interval_months"], e["next_recall_on"]) for e in updates] == [
        (6, plan["next_recall_on"]), (3, next_recall(local_today(), 3).isoformat()), (3, "2026-06-10")]
    assert len(updates) == 3 and set(updates[0]) == {"event_id", "occurred_at", "member_id", "care_plan_id",
                                                     "recall_type", "recall_interval_months", "next_recall_on",
                                                     "status"}
    assert updates[0]["care_plan_id"] == plan["id"] and "Floss" not in str(updates)
    with pytest.raises(Invalid):
        doctor.save_care_plan(member_id, {"recall_type": "teeth_whitening_club", "branch": "SH01"}, "plan")
