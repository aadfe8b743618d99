"""Health profiles through the records RPC: encrypted at rest, clinical roles only, every access audited."""

from __future__ import annotations

import pytest

from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from tests.integration.records_support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    CUSTOMER_SERVICE,
    FRONT_DESK,
    HIS,
    MANAGER,
    enrol,
    rows,
    start_records,
)

PROFILE = {
    "medical_history": [{"condition": "Type 2 diabetes mellitus", "since": "2019"}],
    "allergies": [{"substance": "Penicillinamide", "reaction": "Urticaria hives", "severity": "severe"}],
    "family_history": [{"relation": "mother", "condition": "Periodontitis gravis"}],
    "medication": [{"name": "Metformin", "dose": "500 mg", "frequency": "twice daily"}],
    "notes": "Anxious about needles; prefers morning visits",
}
PLAINTEXTS = ("Type 2 diabetes", "Penicillinamide", "Urticaria", "Periodontitis gravis", "Metformin",
              "Anxious about needles", "severe")


@pytest.fixture
def suite(start_service, rpc, backend):
    records, _members = start_records(start_service, backend)
    return records, rpc()


def test_allergies_history_and_notes_are_not_stored_in_the_clear(suite, rpc):
    records, proxy = suite
    member_id = enrol(proxy, 1)
    saved = rpc(caller=CLINICIAN).records.update_health_profile(member_id, PROFILE, "first examination")
    assert saved["allergies"][0]["substance"] == "Penicillinamide" and saved["version"] == 1

    for table, columns in (("health_profiles", "medical_history, allergies, family_history, medication, notes"),
                           ("health_profile_revisions", "snapshot")):
        stored = rows(records.database_url, f"SELECT {columns} FROM {table}")
        assert len(stored) == 1
        raw = " ".join(str(value) for value in stored[0])
        for plain in PLAINTEXTS:
            assert plain not in raw, (table, plain)
        assert all(str(value).startswith("v1.test1.") for value in stored[0])
    assert rpc(caller=CLINICIAN).records.get_health_profile(member_id, "treatment")["notes"] == PROFILE["notes"]
    for plain in PLAINTEXTS:  # nor in the audit trail or the outbox
        assert plain not in str(rows(records.database_url, "SELECT * FROM audit_trail"))
        assert plain not in str(rows(records.database_url, "SELECT payload FROM kit_outbox"))


@pytest.mark.parametrize("caller", [FRONT_DESK, CUSTOMER_SERVICE, MANAGER, ADMIN, AUDITOR],
                         ids=lambda c: c.role)
def test_non_clinical_callers_are_refused_and_the_refusal_is_audited(suite, rpc, caller):
    records, proxy = suite
    member_id = enrol(proxy, 2)
    rpc(caller=CLINICIAN).records.update_health_profile(member_id, PROFILE, "first examination")
    with pytest.raises(Forbidden) as refused:
        rpc(caller=caller).records.get_health_profile(member_id, "just looking")
    assert "recorded" in refused.value.message
    with pytest.raises(Forbidden):
        rpc(caller=caller).records.update_health_profile(member_id, {"notes": "x"}, "tidying", idempotency_key="k1")
    with pytest.raises(Forbidden):
        rpc(caller=caller).records.get_record(member_id)

    trail = rpc(caller=AUDITOR).records.audit_trail({"member_id": member_id, "outcome": "refused"})["items"]
    assert [(e["actor"], e["actor_role"], e["action"], e["resource"], e["outcome"]) for e in trail] == [
        (caller.subject, caller.role, "read", "record", "refused"),
        (caller.subject, caller.role, "write", "profile", "refused"),
        (caller.subject, caller.role, "read", "profile", "refused"),
    ]
    assert trail[2]["reason"] == "just looking" and trail[2]["actor_branches"] == list(caller.branches)
    # the refused write claimed no idempotency key and changed nothing
    assert rows(records.database_url, "SELECT count(*) FROM kit_idempotency")[0][0] == 0
    assert rpc(caller=CLINICIAN).records.get_health_profile(member_id, "check")["version"] == 1


def test_every_clinical_read_and_write_is_audited_with_who_and_why(suite, rpc):
    records, proxy = suite
    member_id = enrol(proxy, 3)
    doctor = rpc(caller=CLINICIAN).records
    doctor.update_health_profile(member_id, {"allergies": PROFILE["allergies"]}, "allergy noted at check-in")
    doctor.get_health_profile(member_id, "before extraction")
    rpc(caller=HIS).records.get_health_profile(member_id, "EMR sync")
    trail = rpc(caller=AUDITOR).records.audit_trail({"member_id": member_id})["items"]
    assert [(e["actor"], e["action"], e["resource"], e["reason"], e["outcome"]) for e in trail] == [
        ("key:his-sh01", "read", "profile", "EMR sync", "granted"),
        ("doc-1", "read", "profile", "before extraction", "granted"),
        ("doc-1", "write", "profile", "allergy noted at check-in", "granted"),
    ]
    assert trail[2]["detail"] == "fields: allergies"
    assert all(e["at"].endswith("Z") for e in trail)
    by_actor = rpc(caller=AUDITOR).records.audit_trail({"actor": "key:his-sh01"})["items"]
    assert [e["reason"] for e in by_actor] == ["EMR sync"]


@pytest.mark.parametrize("reason", [None, "", "  ", "x" * 201])
def test_a_reason_is_required_and_nothing_is_read_without_one(suite, rpc, reason):
    records, proxy = suite
    member_id = enrol(proxy, 4)
    with pytest.raises(Invalid) as raised:
        rpc(caller=CLINICIAN).records.get_health_profile(member_id, reason)
    assert "reason" in raised.value.fields
    with pytest.raises(Invalid):
        rpc(caller=CLINICIAN).records.update_health_profile(member_id, {"notes": "x"}, reason)
    assert rows(records.database_url, "SELECT count(*) FROM audit_trail")[0][0] == 0
    assert rows(records.database_url, "SELECT count(*) FROM health_profiles")[0][0] == 0


def test_a_change_on_a_stale_version_is_refused_and_history_keeps_every_version(suite, rpc):
    _records, proxy = suite
    member_id = enrol(proxy, 5)
    doctor = rpc(caller=CLINICIAN).records
    first = doctor.update_health_profile(member_id, PROFILE, "first examination")
    second = doctor.update_health_profile(member_id, {"notes": "Calmer now", "expected_version": 1}, "review")
    assert second["version"] == 2 and second["allergies"] == first["allergies"]
    with pytest.raises(Conflict) as stale:
        doctor.update_health_profile(member_id, {"notes": "Overwrite", "expected_version": 1}, "late edit")
    assert stale.value.details == {"version": "2"}  # nameko carries error details as strings
    unchanged = doctor.update_health_profile(member_id, {"notes": "Calmer now"}, "no-op")
    assert unchanged["version"] == 2
    history = doctor.health_profile_history(member_id, "review history")["items"]
    assert [(h["version"], h["changed"]) for h in history] == [
        (2, ["notes"]), (1, ["medical_history", "allergies", "family_history", "medication", "notes"])]
    assert history[1]["profile"]["notes"] == PROFILE["notes"] and history[0]["changed_by"] == "doc-1"


@pytest.mark.parametrize(("changes", "field"), [
    ({"allergies": [{"substance": "Latex", "severity": "deadly"}]}, "allergies"),
    ({"allergies": [{"reaction": "rash", "severity": "mild"}]}, "allergies"),
    ({"medication": "aspirin"}, "medication"),
    ({"blood_type": "A+"}, "blood_type"),
    ({}, "_schema"),
    ({"notes": "x" * 5001}, "notes"),
])
def test_invalid_profile_changes_are_refused_and_write_nothing(suite, rpc, changes, field):
    records, proxy = suite
    member_id = enrol(proxy, 6)
    with pytest.raises(Invalid) as raised:
        rpc(caller=CLINICIAN).records.update_health_profile(member_id, changes, "examination")
    assert field in raised.value.fields
    assert rows(records.database_url, "SELECT count(*) FROM health_profiles")[0][0] == 0
    assert rows(records.database_url, "SELECT count(*) FROM audit_trail")[0][0] == 0


def test_a_member_the_members_service_does_not_know_has_no_record(suite, rpc):
    records, _proxy = suite
    for member_id in ("00000000-0000-0000-0000-000000000000", "not-a-member"):
        with pytest.raises(NotFound):
            rpc(caller=CLINICIAN).records.update_health_profile(member_id, {"notes": "x"}, "examination")
    assert rows(records.database_url, "SELECT count(*) FROM patients")[0][0] == 0


def test_only_auditors_read_the_audit_trail(suite, rpc):
    for caller in (CLINICIAN, ADMIN, MANAGER):
        with pytest.raises(Forbidden):
            rpc(caller=caller).records.audit_trail({})
    assert rpc(caller=AUDITOR).records.audit_trail({"limit": 5}) == {"items": [], "next_cursor": None}
