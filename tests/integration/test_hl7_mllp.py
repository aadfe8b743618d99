"""HL7 v2 over a real MLLP socket to the interfaces service, with members, records and points running
(real RabbitMQ; PostgreSQL, and SQLite): A04 registers and answers AA, the same message again changes
nothing and gets the same ACK; A08 updates; A40 merges and the merge can be reversed; a DFT^P03 earns
points once however often it comes; a probable match waits in the identity review queue (AA naming the
review, no member) and, once linked, the facility's patient id finds the member; a broken PID is AE with ERR; a non-HL7 payload, an unknown facility
or another facility's branch is AR; GB18030 and Big5 names; the original is stored encrypted."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.interfaces.hl7.mllp import FRAME_END, MllpServer, frame
from services.interfaces.service import InterfacesService
from services.kit.caller import Identity
from services.members.service import MembersService
from services.points.service import PointsService
from services.records.service import RecordsService
from tests.harness import query, scalar, wait_for

FACILITIES = {"HIS01": ["SH01", "SH02"], "HIS02": ["HZ01"]}
ADMIN = Identity(kind="staff", subject="admin-1", role="group_admin", branches=("*",))


def message(kind: str, control_id: str, *segments: str, facility: str = "HIS01", charset: str = "",
            version: str = "2.5.1") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    msh = f"MSH|^~\\&|HISAPP|{facility}|CARELOOP|SMILE|{stamp}||{kind}|{control_id}|P|{version}||||||{charset}"
    return "\r".join((msh, *segments)) + "\r"


def pid(mrn: str, family: str = "Wang", given: str = "Xiaoming", born: str = "19850615", sex: str = "M",
        phone: str = "13800138000") -> str:
    return f"PID|1||{mrn}^^^HIS01^MR||{family}^{given}||{born}|{sex}|||||{phone}^PRN^CP"


def pv1(branch: str = "SH01", visit: str = "") -> str:
    return f"PV1|1|O|DENT^^^{branch}||||dr-wang^Wang^Lei||||||||||||{visit}"


class Mllp:
    """One MLLP connection: send a message, read its ACK."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buffer = b""

    def send(self, payload: str | bytes, encoding: str = "utf-8") -> dict[str, Any]:
        raw = payload.encode(encoding) if isinstance(payload, str) else payload
        self.sock.sendall(frame(raw))
        while FRAME_END not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, "the listener closed the connection without an ACK"
            self.buffer += chunk
        framed, self.buffer = self.buffer.split(FRAME_END, 1)
        text = framed.lstrip(b"\x0b").decode(encoding)
        segments = {s.split("|", 1)[0]: s.split("|") for s in text.split("\r") if s}
        return {"text": text, "code": segments["MSA"][1], "control_id": segments["MSA"][2],
                "err": segments.get("ERR")}

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def world(start_service, backend):
    members = start_service(MembersService, backend)
    records = start_service(RecordsService, backend)
    points = start_service(PointsService, backend)
    interfaces = start_service(InterfacesService, backend, HL7_FACILITIES=FACILITIES, HL7_MLLP_PORT=0,
                               HL7_MLLP_HOST="127.0.0.1")
    port = next(e.port for e in interfaces.entrypoints if isinstance(e, MllpServer))
    connection = Mllp(port)
    yield {"members": members, "records": records, "points": points, "interfaces": interfaces,
           "mllp": connection, "port": port}
    connection.close()


def _member_count(members: Any) -> int:
    return scalar(members.database_url, "SELECT count(*) FROM members")


def test_a04_registers_once_and_a_resend_gets_the_same_ack(world, rpc):
    mllp, members, interfaces = world["mllp"], world["members"], world["interfaces"]
    a04 = message("ADT^A04^ADT_A01", "MSG-0001", "EVN|A04|20261206100000", pid("MRN-1"), pv1())
    first = mllp.send(a04)
    assert (first["code"], first["control_id"], first["err"]) == ("AA", "MSG-0001", None), first["text"]
    assert first["text"].startswith("MSH|^~\\&|CARELOOP|SMILE|HISAPP|HIS01|")
    assert _member_count(members) == 1
    member = query(interfaces.database_url, "SELECT member_id FROM hl7_messages")[0].member_id
    found = rpc(caller=ADMIN).members.get_member(str(member))
    assert (found["full_name"], found["birth_date"], found["gender"], found["home_branch"], found["source"]) == (
        "Xiaoming Wang", "1985-06-15", "male", "SH01", "his")

    again = mllp.send(a04)
    assert again["text"] == first["text"]  # the very same ACK, not a second member
    assert _member_count(members) == 1
    assert scalar(interfaces.database_url, "SELECT count(*) FROM hl7_messages") == 1
    # the message and its ACK are personal data: encrypted at rest
    stored = query(interfaces.database_url, "SELECT original, ack FROM hl7_messages")[0]
    assert "Wang" not in stored.original and "MSH" not in stored.original and "MSA" not in stored.ack

    # another control id for the same patient: the same member, linked already
    assert mllp.send(message("ADT^A04", "MSG-0002", pid("MRN-1"), pv1()))["code"] == "AA"
    assert _member_count(members) == 1


def test_a08_updates_and_an_unknown_patient_is_ae(world, rpc):
    mllp, members = world["mllp"], world["members"]
    assert mllp.send(message("ADT^A04", "R-1", pid("MRN-2"), pv1()))["code"] == "AA"
    update = mllp.send(message("ADT^A08", "U-1", pid("MRN-2", family="Wang", given="Xiaohong", sex="F",
                                                     phone="13900139000"), pv1()))
    assert update["code"] == "AA", update["text"]
    row = query(members.database_url, "SELECT id FROM members")[0]
    found = rpc(caller=ADMIN).members.get_member(str(row.id))
    assert (found["full_name"], found["gender"], found["phone"]) == ("Xiaohong Wang", "female", "+8613900139000")

    unknown = mllp.send(message("ADT^A08", "U-2", pid("MRN-404"), pv1()))
    assert unknown["code"] == "AE" and unknown["err"][2] == "PID^1^3", unknown["text"]


def test_a40_merges_and_the_merge_is_reversible(world, rpc):
    mllp, members = world["mllp"], world["members"]
    assert mllp.send(message("ADT^A04", "R-1", pid("MRN-A", given="Anna", phone="13800000001"), pv1()))["code"] == "AA"
    assert mllp.send(message("ADT^A04", "R-2", pid("MRN-B", given="Bo", born="19900101", phone="13800000002"),
                             pv1()))["code"] == "AA"
    merge = message("ADT^A40^ADT_A39", "M-1", "EVN|A40|20261206100000", pid("MRN-A", given="Anna",
                    phone="13800000001"), "MRG|MRN-B^^^HIS01^MR")
    done = mllp.send(merge)
    assert done["code"] == "AA", done["text"]
    assert mllp.send(merge)["text"] == done["text"]
    merged = query(members.database_url, "SELECT id, merged_into_id, status FROM members WHERE status = 'merged'")
    assert len(merged) == 1
    survivor = str(merged[0].merged_into_id)
    merges = rpc(caller=ADMIN).members.member_merges(survivor)
    assert len(merges["items"]) == 1
    reversed_ = rpc(caller=ADMIN).members.reverse_merge(merges["items"][0]["merge_id"], {"reason": "HIS error"})
    assert reversed_["merge_id"] == merges["items"][0]["merge_id"]
    assert scalar(members.database_url, "SELECT count(*) FROM members WHERE status = 'merged'") == 0


def test_dft_p03_earns_points_once(world):
    mllp, records, points = world["mllp"], world["records"], world["points"]
    assert mllp.send(message("ADT^A04", "R-1", pid("MRN-9"), pv1()))["code"] == "AA"
    dft = message("DFT^P03", "D-1", "EVN|P03|20261206100000", pid("MRN-9"), pv1(visit="V-20261206-1"),
                  "FT1|1|T-1||20261206|20261206|CG|FIL2^Filling|||1|200.00^CNY||treatment",
                  "FT1|2|T-2||20261206|20261206|CG|EX01^Exam|||1|100.00^CNY||exam",
                  "FT1|3|T-3||20261206|20261206|PY|card|||1|300.00^CNY")
    paid = mllp.send(dft)
    assert paid["code"] == "AA", paid["text"]
    # a resend with a new control id (the HIS re-posting the visit): the bill id decides, no second visit
    assert mllp.send(dft.replace("|D-1|", "|D-2|"))["code"] == "AA"
    assert mllp.send(dft)["text"] == paid["text"]
    visits = query(records.database_url, "SELECT bill_id, doctor_id, branch FROM visits")
    assert [(v.bill_id, v.doctor_id, v.branch) for v in visits] == [("V-20261206-1", "dr-wang", "SH01")]
    wait_for(lambda: scalar(points.database_url, "SELECT count(*) FROM kit_inbox "
                                                 "WHERE consumer = 'points.on_visit_completed'") == 1,
             timeout=30, message="points to apply the visit")
    earned = query(points.database_url, "SELECT rule, points FROM points_postings WHERE kind = 'earn' "
                                        "AND source = 'visit' ORDER BY rule")
    assert [(row.rule, row.points) for row in earned] == [("spend", 300), ("visit", 10)], earned


def test_field_errors_are_ae_with_err_and_change_nothing(world):
    mllp, members = world["mllp"], world["members"]
    broken = mllp.send(message("ADT^A04", "B-1", pid("MRN-5", born="19XX0615"), pv1()))
    assert broken["code"] == "AE" and broken["control_id"] == "B-1"
    assert broken["err"][2] == "PID^1^7" and broken["err"][3].startswith("102^"), broken["text"]
    no_name = mllp.send(message("ADT^A04", "B-2", "PID|1||MRN-6^^^HIS01^MR||||19850615|M|||||13800138000", pv1()))
    assert no_name["code"] == "AE" and no_name["err"][2] == "PID^1^5" and no_name["err"][3].startswith("101^")
    # 2.3 puts the location and code in ERR-1
    old = mllp.send(message("ADT^A04", "B-3", pid("MRN-7", sex="Q"), pv1(), version="2.3"))
    assert old["code"] == "AE" and old["err"][1].startswith("PID^1^8^103&"), old["text"]
    assert _member_count(members) == 0


def test_what_cannot_be_taken_is_ar(world):
    mllp, interfaces = world["mllp"], world["interfaces"]
    junk = mllp.send(b'{"not": "hl7"}')
    assert junk["code"] == "AR" and junk["control_id"] == ""
    wrong_type = mllp.send(message("ORU^R01", "X-1", pid("MRN-1")))
    assert wrong_type["code"] == "AR" and wrong_type["control_id"] == "X-1" and wrong_type["err"][2] == "MSH^1^9"
    wrong_version = mllp.send(message("ADT^A04", "X-2", pid("MRN-1"), version="2.7"))
    assert wrong_version["code"] == "AR" and wrong_version["err"][3].startswith("203^")
    stranger = mllp.send(message("ADT^A04", "X-3", pid("MRN-1"), pv1(), facility="NOBODY"))
    assert stranger["code"] == "AR" and stranger["err"][2] == "MSH^1^4"
    other_branch = mllp.send(message("ADT^A04", "X-4", pid("MRN-1"), pv1("HZ01")))
    assert other_branch["code"] == "AR" and other_branch["err"][2] == "PV1^1^3"
    assert scalar(interfaces.database_url, "SELECT count(*) FROM hl7_messages") == 0
    # the connection carried every refusal and still takes a good message
    assert mllp.send(message("ADT^A04", "X-5", pid("MRN-1"), pv1()))["code"] == "AA"


def test_chinese_names_in_gb18030_and_big5(world, rpc):
    mllp, members = world["mllp"], world["members"]
    gb = mllp.send(message("ADT^A04", "C-1", pid("MRN-GB", family="王", given="小明", phone="13811110001"),
                           pv1(), charset="GB 18030-2000"), encoding="gb18030")
    assert gb["code"] == "AA", gb["text"]
    big5 = mllp.send(message("ADT^A04", "C-2", pid("MRN-B5", family="陳", given="大文", born="19700202",
                                                   phone="13811110002"), pv1(), charset="BIG-5"), encoding="big5")
    assert big5["code"] == "AA", big5["text"]
    names = sorted(rpc(caller=ADMIN).members.get_member(str(row.id))["full_name"]
                   for row in query(members.database_url, "SELECT id FROM members"))
    assert names == ["王小明", "陳大文"]
    unknown = mllp.send(message("ADT^A04", "C-3", pid("MRN-X"), pv1(), charset="KLINGON"))
    assert unknown["code"] == "AR" and unknown["err"][2] == "MSH^1^18"


def test_many_connections_at_once(world):
    """Ten connections send the same A04 at the same time: one member, one log row, ten equal ACK codes."""
    import eventlet

    a04 = message("ADT^A04", "SAME-1", pid("MRN-C"), pv1())

    def send(_: int) -> str:
        connection = Mllp(world["port"])
        try:
            return connection.send(a04)["code"]
        finally:
            connection.close()

    assert list(eventlet.GreenPool(10).imap(send, range(10))) == ["AA"] * 10
    assert _member_count(world["members"]) == 1
    assert scalar(world["interfaces"].database_url, "SELECT count(*) FROM hl7_messages") == 1


def test_siu_s12_books_a_free_slot_and_s15_cancels_it(world, rpc):
    from datetime import timedelta

    from tests.integration.records_support import ZONE, local_today

    mllp = world["mllp"]
    day = local_today() + timedelta(days=1)
    rpc(caller=ADMIN).records.publish_slots({"branch": "SH01", "doctor_id": "dr-zhao", "on": day.isoformat(),
                                             "start": "09:00", "end": "10:00", "slot_minutes": 30})
    assert mllp.send(message("ADT^A04", "R-1", pid("MRN-S"), pv1()))["code"] == "AA"
    at = f"{day:%Y%m%d}0930"
    s12 = message("SIU^S12^SIU_S12", "S-1", f"SCH|APT-1^HIS01||||||^^^{at}", pid("MRN-S"),
                  "RGS|1", f"AIS|1||cleaning^Cleaning|{at}", "AIL|1||DENT^^^SH01", "AIP|1||dr-zhao^Zhao^Min")
    booked = mllp.send(s12)
    assert booked["code"] == "AA", booked["text"]
    assert mllp.send(s12)["text"] == booked["text"]
    rows = query(world["records"].database_url, "SELECT status, service_category, starts_at FROM appointments")
    assert [(r.status, r.service_category) for r in rows] == [("booked", "cleaning")]
    starts = rows[0].starts_at  # SQLite gives the stored text back
    starts = datetime.fromisoformat(starts) if isinstance(starts, str) else starts
    assert starts.replace(tzinfo=starts.tzinfo or UTC).astimezone(ZONE).strftime("%H:%M") == "09:30"
    # the same HIS appointment id again under a new control id: AE, no second booking
    again = mllp.send(s12.replace("|S-1|", "|S-2|"))
    assert again["code"] == "AE" and again["err"][2] == "SCH^1^1"
    no_slot = mllp.send(message("SIU^S12", "S-3", f"SCH|APT-2||||||^^^{day:%Y%m%d}1700", pid("MRN-S"),
                                f"AIS|1||exam|{day:%Y%m%d}1700", "AIL|1||DENT^^^SH01", "AIP|1||dr-zhao"))
    assert no_slot["code"] == "AE" and no_slot["err"][2] == "AIS^1^4", no_slot["text"]
    cancelled = mllp.send(message("SIU^S15", "S-4", "SCH|APT-1||||||^patient asked", pid("MRN-S"),
                                  "AIL|1||DENT^^^SH01"))
    assert cancelled["code"] == "AA", cancelled["text"]
    assert [r.status for r in query(world["records"].database_url, "SELECT status FROM appointments")] == [
        "cancelled"]


def _uuid(value: Any) -> uuid.UUID:
    return uuid.UUID(str(value))  # SQLite gives the stored hex back


def test_identity_a_sure_match_links_and_a_probable_one_waits_for_review(world, rpc):
    mllp, members, interfaces = world["mllp"], world["members"], world["interfaces"]
    assert mllp.send(message("ADT^A04", "I-1", pid("MRN-I1", given="Jun", phone="13800001111"), pv1()))["code"] == "AA"
    jun = _uuid(query(members.database_url, "SELECT id FROM members")[0].id)
    # another facility id, same person (same phone, name and birth date): linked to the same member
    sure = mllp.send(message("ADT^A04", "I-2", pid("MRN-I2", given="Jun", phone="13800001111"), pv1()))
    assert sure["code"] == "AA" and _member_count(members) == 1
    assert rpc(caller=ADMIN).members.find_by_identifier(
        {"system": "urn:careloop:his:HIS01", "value": "MRN-I2"})["id"] == str(jun)

    # same name and birth date, another phone: probably the same person, not surely -> taken and parked for a
    # person (AA, MSA-3 names the review), nobody created
    a04 = message("ADT^A04", "I-3", pid("MRN-I3", given="Jun", phone="13800002222"), pv1())
    probable = mllp.send(a04)
    assert probable["code"] == "AA" and probable["err"] is None, probable["text"]
    reviews = query(interfaces.database_url, "SELECT id, source, source_ref, status FROM identity_reviews")
    assert [(r.source, r.source_ref, r.status) for r in reviews] == [("hl7:HIS01", "I-3", "open")]
    review_id = str(_uuid(reviews[0].id))
    assert probable["text"].split("\r")[1].split("|")[3] == f"Held for identity review {review_id}; no member yet."
    assert _member_count(members) == 1
    assert mllp.send(a04)["text"] == probable["text"]  # a resend: the same ACK, still one review
    assert scalar(interfaces.database_url, "SELECT count(*) FROM identity_reviews") == 1
    rows = query(interfaces.database_url, "SELECT control_id, member_id FROM hl7_messages ORDER BY id")
    assert _uuid(rows[0].member_id) == _uuid(rows[1].member_id) == jun and rows[2].member_id is None

    manager = rpc(caller=Identity(kind="staff", subject="m1", role="branch_manager", branches=("SH01",))).interfaces
    detail = manager.identity_review(review_id)
    assert (detail["original"], detail["original_format"]) == (a04.rstrip("\r"), "x-application/hl7-v2+er7")
    assert {"system": "urn:careloop:his:HIS01", "value": "MRN-I3"} in detail["patient"]["identifiers"]
    assert [c["member_id"] for c in detail["candidates"]] == [str(jun)]

    # until it is resolved, the facility's patient id names nobody
    early = mllp.send(message("ADT^A08", "I-4", pid("MRN-I3", given="Jun", phone="13800002222"), pv1()))
    assert early["code"] == "AE" and early["err"][2] == "PID^1^3", early["text"]
    resolved = manager.resolve_review(review_id, {"action": "link", "member_id": str(jun)}, idempotency_key="r-1")
    assert (resolved["status"], resolved["member_id"]) == ("linked", str(jun))
    # linked: MRN-I3 is Jun's now, and the next A08 finds him
    update = mllp.send(message("ADT^A08", "I-5", pid("MRN-I3", given="Jun", phone="13800002222"), pv1()))
    assert update["code"] == "AA", update["text"]
    assert _uuid(query(interfaces.database_url, "SELECT member_id FROM hl7_messages WHERE control_id = 'I-5'")[0]
                 .member_id) == jun
    assert _member_count(members) == 1
