"""HL7 v2 without I/O: MSH-18 decoding, PID and FT1 reading, the ACK and its ERR in 2.3 and 2.5 forms."""

from __future__ import annotations

import pytest

from services.interfaces.hl7 import messages
from services.interfaces.hl7.messages import Refused

HEAD = "MSH|^~\\&|APP|HIS01|CARELOOP|SMILE|20261206101500||{kind}|{control}|P|{version}||||||{charset}"


def raw(*segments: str, kind: str = "ADT^A04", control: str = "C1", version: str = "2.5.1", charset: str = "",
        encoding: str = "utf-8") -> bytes:
    return "\r".join((HEAD.format(kind=kind, control=control, version=version, charset=charset), *segments)).encode(
        encoding)


@pytest.mark.parametrize(("charset", "encoding"), [("", "utf-8"), ("UNICODE UTF-8", "utf-8"),
                                                   ("GB 18030-2000", "gb18030"), ("BIG-5", "big5")])
def test_names_are_read_in_the_character_set_msh_18_names(charset, encoding):
    inbound = messages.read(raw("PID|1||M1||王^小明||19900101|M|||||13800138000", charset=charset, encoding=encoding))
    assert messages.patient(inbound.message).fields["full_name"] == "王小明"
    assert inbound.codec == encoding


@pytest.mark.parametrize(("family", "given", "middle", "name"), [
    ("Schmidt", "Anna", "Maria", "Anna Maria Schmidt"), ("王", "小明", "", "王小明"), ("", "Cher", "", "Cher"),
    ("陳", "", "", "陳")])
def test_xpn_components_make_one_name(family, given, middle, name):
    assert messages.person_name(family, given, middle) == name


def test_pid_gives_the_patient_id_document_and_the_mobile():
    pid = ("PID|1||MRN7^^^HIS01^MR~110101199001011234^^^^NI||Li^Na||19920304|F|||||"
           "021-5555^PRN^PH~^PRN^CP^^86^139^00139000")
    patient = messages.patient(messages.read(raw(pid)).message)
    assert patient.patient_id == "MRN7"
    assert patient.fields == {"full_name": "Na Li", "birth_date": "1992-03-04", "gender": "female",
                              "phone": "+8613900139000",
                              "id_document": {"type": "cn_resident_id", "number": "110101199001011234"}}


@pytest.mark.parametrize(("pid", "location", "code"), [
    ("PID|1||||Li^Na||19920304|F|||||13800138000", "PID-3", "101"),
    ("PID|1||M1||||19920304|F|||||13800138000", "PID-5", "101"),
    ("PID|1||M1||Li^Na||1992-03-04|F|||||13800138000", "PID-7", "102"),
    ("PID|1||M1||Li^Na||19921304|F|||||13800138000", "PID-7", "102"),
    ("PID|1||M1||Li^Na||19920304|X|||||13800138000", "PID-8", "103"),
    ("PID|1||M1||Li^Na||19920304|F", "PID-13", "101"),
])
def test_a_broken_pid_names_its_field(pid, location, code):
    with pytest.raises(Refused) as refused:
        messages.patient(messages.read(raw(pid)).message)
    assert (refused.value.code, refused.value.location, refused.value.error) == ("AE", location, code)


@pytest.mark.parametrize(("payload", "location", "code"), [
    (b'{"json": true}', "MSH-1", "101"),
    (b"", "MSH-1", "101"),
    (raw(kind="ORU^R01"), "MSH-9", "200"),
    (raw(kind="ADT^A31"), "MSH-9", "201"),
    (raw(version="2.6"), "MSH-12", "203"),
    (raw(control=""), "MSH-10", "101"),
    (raw(charset="EBCDIC"), "MSH-18", "103"),
    (raw("PID|1||M1||\xff", charset="UNICODE UTF-8", encoding="latin-1"), "MSH-18", "102"),
])
def test_what_cannot_be_taken_is_rejected(payload, location, code):
    with pytest.raises(Refused) as refused:
        messages.read(payload)
    assert (refused.value.code, refused.value.location, refused.value.error) == ("AR", location, code)


def test_a_dft_bill_has_items_payments_and_the_visit_number():
    inbound = messages.read(raw(
        "PID|1||M1", "PV1|1|O|DENT^^^SH02||||dr-li||||||||||||V-77",
        "FT1|1|T1||20261206||CG|IMP1^Implant|||1|8800.50^CNY||implant",
        "FT1|2|T2||20261206||CG|XR^X-ray|||1|120^CNY||radiology",
        "FT1|3|T3||20261206||PY|insurance|||1|5000^CNY", "FT1|4|T4||20261206||PY|card|||1|3920.50^CNY",
        kind="DFT^P03"))
    bill = messages.bill(inbound.message, ("exam", "implant"), ("card", "insurance"))
    assert (bill.bill_id, bill.branch, bill.doctor_id, bill.currency) == ("V-77", "SH02", "dr-li", "CNY")
    assert bill.items == [{"category": "implant", "code": "IMP1", "amount_minor": 880050},
                          {"category": "exam", "code": "XR", "amount_minor": 12000}]
    assert bill.payments == [{"method": "insurance", "amount_minor": 500000},
                             {"method": "card", "amount_minor": 392050}]


@pytest.mark.parametrize(("amount", "ok"), [("10", 1000), ("10.5", 1050), ("0.01", 1), ("1.001", None),
                                            ("-5", None), ("ten", None), ("NaN", None)])
def test_amounts_are_exact_minor_units(amount, ok):
    if ok is None:
        with pytest.raises(Refused):
            messages.minor_units(amount, "FT1-11")
    else:
        assert messages.minor_units(amount, "FT1-11") == ok


def test_the_ack_echoes_the_control_id_and_says_where_and_why():
    inbound = messages.read(raw("PID|1||M1", control="ABC-9"))
    ack = messages.ack(inbound, None, "AE", "PID-7 is not a date | really", "PID-7", "102")
    msh, msa, err = ack.rstrip("\r").split("\r")
    assert msh.startswith("MSH|^~\\&|CARELOOP|SMILE|APP|HIS01|") and "|ACK^A04^ACK|" in msh
    assert msa == "MSA|AE|ABC-9|PID-7 is not a date \\F\\ really"
    assert err.split("|")[2:5] == ["PID^1^7", "102^Data type error^HL70357", "E"]
    old = messages.read(raw("PID|1||M1", control="X", version="2.3"))
    assert messages.ack(old, None, "AE", "bad", "PID-8", "103").rstrip("\r").split("\r")[2] == (
        "ERR|PID^1^8^103&Table value not found&HL70357")
    assert messages.ack(inbound, None, "AA").count("\r") == 2  # MSH and MSA only


@pytest.mark.parametrize(("value", "utc"), [("202612070930", "2026-12-07T01:30:00+00:00"),
                                            ("20261207093015", "2026-12-07T01:30:15+00:00"),
                                            ("202612070930+0000", "2026-12-07T09:30:00+00:00"),
                                            ("20261207093000-0500", "2026-12-07T14:30:00+00:00")])
def test_a_timestamp_without_offset_is_the_group_s_local_time(value, utc):
    from zoneinfo import ZoneInfo

    assert messages.hl7_moment(value, "AIS-4", ZoneInfo("Asia/Shanghai")).isoformat() == utc


def test_an_siu_names_its_appointment_start_doctor_and_branch():
    from zoneinfo import ZoneInfo

    inbound = messages.read(raw("SCH|APT-9^HIS01|F-1|||||^^^202612070930", "PID|1||M1",
                                "AIS|1||cleaning|202612071000", "AIL|1||DENT^^^SH02", "AIP|1||dr-zhao^Zhao",
                                kind="SIU^S12"))
    wanted = messages.appointment(inbound.message, ZoneInfo("Asia/Shanghai"), booking=True)
    assert (wanted.placer_id, wanted.doctor_id, wanted.service, wanted.starts_at.isoformat()) == (
        "APT-9", "dr-zhao", "cleaning", "2026-12-07T02:00:00+00:00")  # AIS-4 before SCH-11
    assert messages.branch_of(inbound.message) == "SH02"
    with pytest.raises(Refused) as refused:
        messages.appointment(messages.read(raw("SCH|APT-9", kind="SIU^S12")).message, ZoneInfo("UTC"), booking=True)
    assert refused.value.location == "AIS-4"
