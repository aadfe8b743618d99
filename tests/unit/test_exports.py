"""The export mechanism's rules without a database (``kit.exports``) and the gateway's CSV row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.routes.exports import _flat
from services.kit.caller import Identity
from services.kit.exports import horizon, reveals
from services.points.access import EXPORT_REVEALERS
from services.points.schemas import PostingExportSchema

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("config", "expected"), [
    ({}, NOW - timedelta(seconds=60)),
    ({"EXPORT_SAFETY_LAG_SECONDS": 0}, NOW),
    ({"EXPORT_SAFETY_LAG_SECONDS": 2.5}, NOW - timedelta(seconds=2.5)),
])
def test_the_horizon_is_now_less_the_configured_lag(config, expected):
    assert horizon(config, NOW) == expected


@pytest.mark.parametrize("lag", [-1, "60", True, None])
def test_a_lag_that_is_not_seconds_is_refused_at_once(lag):
    with pytest.raises(ValueError, match="EXPORT_SAFETY_LAG_SECONDS"):
        horizon({"EXPORT_SAFETY_LAG_SECONDS": lag}, NOW)


@pytest.mark.parametrize(("caller", "config", "revealed"), [
    (Identity("service", "records", "service"), {}, True),
    (Identity("system", "k1", "integration"), {}, True),
    (Identity("staff", "u1", "group_admin"), {}, False),
    (Identity("staff", "u1", "group_admin"), {"UNMASKED_EXPORT_ROLES": ["group_admin"]}, True),
    (Identity("system", "k1", "integration"), {"UNMASKED_EXPORT_ROLES": []}, False),
])
def test_who_sees_an_export_s_personal_fields(caller, config, revealed):
    assert reveals(caller, config, EXPORT_REVEALERS) is revealed


def test_a_masked_row_keeps_every_other_field_and_the_last_four_characters():
    posting = {"id": 1, "member_id": "m", "kind": "earn", "rule": "adjust", "points": 5, "balance_after": 5,
               "source": "manual", "source_ref": None, "branch": "SH01", "operator": "staff:alice (front_desk)",
               "reason": "busy desk", "reverses_id": None, "redemption_id": None, "expires_on": None,
               "created_at": NOW}
    full, masked = PostingExportSchema(reveal=True).dump(posting), PostingExportSchema().dump(posting)
    assert full["operator"] == "staff:alice (front_desk)" and full["reason"] == "busy desk"
    assert masked["operator"] == "*" * 20 + "esk)" and masked["reason"] == "*****desk"
    assert {k: v for k, v in masked.items() if k not in ("operator", "reason")} == {
        k: v for k, v in full.items() if k not in ("operator", "reason")}


def test_a_csv_row_has_money_in_minor_units_lists_as_json_and_booleans_as_words():
    item = {"id": "v1", "value": {"amount": 3000, "currency": "CNY"}, "discount": None, "first_visit": True,
            "items": [{"code": "RCT1", "amount_minor": 80000}], "title": "满减"}
    assert _flat(item) == {"id": "v1", "value_minor": 3000, "currency": "CNY", "discount": None,
                           "first_visit": "true", "items": '[{"code":"RCT1","amount_minor":80000}]', "title": "满减"}


def test_the_members_export_dumps_the_csv_columns_only_and_masks_as_a_member_answer_does():
    from types import SimpleNamespace

    from gateway.routes.exports import MEMBER_COLUMNS, _member_row
    from services.members.schemas import MemberExportSchema, MemberSchema, export_rows

    member = SimpleNamespace(
        id="9b2f0c1e-0000-4000-8000-000000000001", card_number="8800000001", referral_code="ABCDEFGH",
        referred_by_id=None, full_name="王芳", phone="+8613800138000", email="fang@example.cn", gender="female",
        birth_date="1980-02-03", preferred_language="zh-Hans", consent_sms=True, consent_email=False,
        consent_wechat=False, consent_line=False, consent_marketing=False, document_type="cn_resident_id",
        document_number="310101198002030021", home_branch="SH01", status="active", tier="gold", source="desk",
        enrolled_at=NOW, updated_at=NOW, merged_into_id=None, version=3)
    bare = SimpleNamespace(**{**vars(member), "full_name": None, "phone": None, "email": None, "birth_date": None,
                              "document_type": None, "document_number": None, "merged_into_id": member.id})
    for flags in ({"reveal_phone": True, "reveal_document": True}, {"reveal_phone": True},
                  {"reveal_document": True}, {}):
        assert export_rows([member, bare], **flags) == MemberExportSchema(many=True, **flags).dump([member, bare])
        exported = _member_row(MemberExportSchema(**flags).dump(member))
        assert set(exported) - {"id_document"} == set(MEMBER_COLUMNS)
        whole = _member_row(MemberSchema(**flags).dump(member))
        assert {column: exported[column] for column in MEMBER_COLUMNS} == {column: whole[column]
                                                                           for column in MEMBER_COLUMNS}
    assert exported["phone"] == "+86138****8000" and exported["id_number"] != member.document_number
    assert set(MemberExportSchema.columns()) < set(MemberSchema.columns())
