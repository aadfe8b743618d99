"""HL7 v2 messages, without I/O: decode (MSH-18), read the header, say what a message asks, build the ACK.

Every refusal is a ``Refused``: ``AR`` (the message cannot be taken at all: not HL7, a type, version or
character set we do not take, a facility or branch not allowed) or ``AE`` (taken, but a field is wrong:
the ERR segment names the field and why). Parsing is python-hl7's (``hl7.parse``); the ACK is its
``Message.create_ack`` with MSA-3 and ERR added.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import hl7

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")

HANDLED = {
    ("ADT", "A04"): "register",
    ("ADT", "A08"): "update",
    ("ADT", "A40"): "merge",
    ("DFT", "P03"): "bill",
    ("SIU", "S12"): "book",
    ("SIU", "S15"): "cancel",
}
"""The messages taken (MSH-9.1, MSH-9.2) and what each does."""

CHARSETS = {
    "": "utf-8",  # MSH-18 empty: we read UTF-8 (ASCII is a subset)
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "GB 18030-2000": "gb18030",
    "GB18030": "gb18030",
    "BIG-5": "big5",
    "BIG5": "big5",
    "CNS 11643-1992": "big5",
}
"""MSH-18 (HL7 table 0211, and the spellings Chinese HIS systems use) → Python codec."""

GENDERS = {"F": "female", "M": "male", "O": "other", "U": "undisclosed", "A": "other", "N": "undisclosed"}
DOCUMENTS = {"NI": "cn_resident_id", "NNCHN": "cn_resident_id", "PPN": "passport", "PT": "passport"}
"""PID-3 identifier types (CX-5, table 0203) that are an ID document rather than the patient id."""

# HL7 table 0357 (message error condition codes)
REQUIRED_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE = "103"
UNSUPPORTED_TYPE = "200"
UNSUPPORTED_EVENT = "201"
UNSUPPORTED_VERSION = "203"
UNKNOWN_KEY = "204"
DUPLICATE_KEY = "205"
APPLICATION_ERROR = "207"
ERROR_TEXT = {REQUIRED_MISSING: "Required field missing", DATA_TYPE_ERROR: "Data type error",
              TABLE_VALUE: "Table value not found", UNSUPPORTED_TYPE: "Unsupported message type",
              UNSUPPORTED_EVENT: "Unsupported event code", UNSUPPORTED_VERSION: "Unsupported version id",
              UNKNOWN_KEY: "Unknown key identifier", DUPLICATE_KEY: "Duplicate key identifier",
              APPLICATION_ERROR: "Application internal error"}

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


class Refused(Exception):
    """The message is answered ``code`` (AR or AE); ``location`` is the field (``PID-7``) when one is at
    fault, ``error`` its HL7 0357 code, ``why`` the text for MSA-3 and ERR."""

    def __init__(self, code: str, why: str, location: str | None = None, error: str = APPLICATION_ERROR) -> None:
        super().__init__(why)
        self.code, self.why, self.location, self.error = code, why, location, error


def rejected(why: str, location: str | None = None, error: str = APPLICATION_ERROR) -> Refused:
    return Refused("AR", why, location, error)


def field_error(location: str, why: str, error: str = DATA_TYPE_ERROR) -> Refused:
    return Refused("AE", why, location, error)


@dataclass(frozen=True)
class Inbound:
    """A message taken apart: its header, what it asks (``action``), and the message itself."""

    text: str  # as decoded, segments separated by CR
    message: Any  # hl7.Message
    facility: str  # MSH-4.1
    control_id: str  # MSH-10
    message_type: str  # "ADT^A04"
    version: str  # MSH-12
    action: str  # HANDLED's value
    codec: str = "utf-8"  # MSH-18's: the ACK goes back in it


def codec_of(raw: bytes) -> str:
    """The Python codec MSH-18 names (``Refused`` AR if none we take)."""
    body = raw.strip(b"\x0b\x1c\r\n \t")
    if not body.startswith(b"MSH") or len(body) < 8:
        raise rejected("Not an HL7 v2 message: it must start with an MSH segment.", "MSH-1", REQUIRED_MISSING)
    header = re.split(rb"[\r\n]", body, maxsplit=1)[0]
    fields_ = header.split(header[3:4])
    charset = fields_[17].decode("latin-1").split(chr(header[4]))[0].strip().upper() if len(fields_) > 17 else ""
    codec = CHARSETS.get(charset)
    if codec is None:
        raise rejected(f"Character set {charset!r} (MSH-18) is not taken: send UNICODE UTF-8, GB 18030-2000 or "
                       "BIG-5.", "MSH-18", TABLE_VALUE)
    return codec


def decode(raw: bytes) -> str:
    """The message as text, read in the character set MSH-18 names. The MSH segment itself is ASCII, so it
    is read before the rest (a GB18030 or Big5 second byte may be ``|``: the rest is decoded whole)."""
    codec = codec_of(raw)
    try:
        text = raw.strip(b"\x0b\x1c\r\n \t").decode(codec)
    except UnicodeDecodeError:
        raise rejected(f"The message is not valid {codec} (MSH-18).", "MSH-18", DATA_TYPE_ERROR) from None
    return "\r".join(segment for segment in re.split(r"\r\n|\r|\n", text) if segment)


def header_of(text: str) -> dict[str, str]:
    """MSH-10 and what an ACK needs, read without the parser (for refusing what the parser cannot read)."""
    first = text.split("\r", 1)[0]
    parts = first.split(first[3:4]) if first.startswith("MSH") and len(first) > 4 else []
    return {"control_id": parts[9] if len(parts) > 9 else "", "version": parts[11] if len(parts) > 11 else ""}


def read(raw: bytes) -> Inbound:
    """Decode, parse and classify one message; ``Refused`` (AR) if it is not one we take."""
    text, codec = decode(raw), codec_of(raw)
    try:
        message = hl7.parse(text)
        msh = message.segment("MSH")
    except Exception:
        raise rejected("The message could not be parsed as HL7 v2.", "MSH", DATA_TYPE_ERROR) from None
    control_id = _text(message, "MSH.F10")
    facility = _text(message, "MSH.F4.R1.C1")
    kind, trigger = _text(message, "MSH.F9.R1.C1").upper(), _text(message, "MSH.F9.R1.C2").upper()
    version = _text(message, "MSH.F12.R1.C1")
    if not control_id:
        raise rejected("MSH-10 (message control id) is empty.", "MSH-10", REQUIRED_MISSING)
    if len(control_id) > 64:
        raise rejected("MSH-10 (message control id) is longer than 64 characters.", "MSH-10", DATA_TYPE_ERROR)
    if not facility or len(facility) > 64:
        raise rejected("MSH-4 (sending facility) must name the facility (at most 64 characters).", "MSH-4",
                       REQUIRED_MISSING)
    if version not in SUPPORTED_VERSIONS:
        raise rejected(f"HL7 version {version!r} (MSH-12) is not taken: 2.3 to 2.5.1.", "MSH-12",
                       UNSUPPORTED_VERSION)
    action = HANDLED.get((kind, trigger))
    if action is None:
        known = {k for k, _ in HANDLED}
        raise rejected(f"Message type {kind}^{trigger} (MSH-9) is not taken here.", "MSH-9",
                       UNSUPPORTED_EVENT if kind in known else UNSUPPORTED_TYPE)
    del msh
    return Inbound(text=text, message=message, facility=facility, control_id=control_id,
                   message_type=f"{kind}^{trigger}", version=version, action=action, codec=codec)


def _text(message: Any, path: str) -> str:
    try:
        return str(message[path]).strip()
    except (KeyError, IndexError):
        return ""


def _segment(message: Any, name: str) -> Any:
    try:
        return message.segment(name)
    except KeyError:
        raise field_error(name, f"The {name} segment is missing.", REQUIRED_MISSING) from None


def _component(segment: Any, number: int, repetition: int = 1, component: int = 1) -> str:
    try:
        return str(segment.extract_field(1, number, repetition, component)).strip()
    except (IndexError, KeyError, ValueError):  # absent: python-hl7 says so by raising
        return ""


def _repetitions(segment: Any, number: int) -> int:
    if number >= len(segment):
        return 0
    value = str(segment[number])
    return len(value.split(segment.separators[2])) if value else 0


# --- the patient (PID) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    """A PID: the facility's patient id and the member fields it gives."""

    patient_id: str  # PID-3: the first identifier that is not an ID document
    fields: dict[str, Any] = field(default_factory=dict)  # members' enrolment fields found in the PID


def patient(message: Any, changes_only: bool = False) -> Patient:
    """The PID as a member. For a register (``changes_only`` False) PID-3, PID-5, PID-7 and a phone are
    required; for an update, only PID-3 and what is given."""
    pid = _segment(message, "PID")
    patient_id, document = "", None
    for repetition in range(1, _repetitions(pid, 3) + 1):
        value, kind = _component(pid, 3, repetition, 1), _component(pid, 3, repetition, 5).upper()
        if not value:
            continue
        if kind in DOCUMENTS:
            document = document or {"type": DOCUMENTS[kind], "number": value}
        elif not patient_id:
            patient_id = value
    if not patient_id:
        raise field_error("PID-3", "PID-3 (patient identifier list) has no patient id.", REQUIRED_MISSING)
    if len(patient_id) > 100:
        raise field_error("PID-3", "PID-3.1 (patient id) is longer than 100 characters.")
    found: dict[str, Any] = {}
    name = person_name(*(_component(pid, 5, 1, n) for n in (1, 2, 3)))
    if name:
        found["full_name"] = name
    elif not changes_only:
        raise field_error("PID-5", "PID-5 (patient name) is empty: family^given is needed.", REQUIRED_MISSING)
    born = _component(pid, 7)
    if born:
        found["birth_date"] = hl7_date(born, "PID-7").isoformat()
    elif not changes_only:
        raise field_error("PID-7", "PID-7 (date of birth) is empty.", REQUIRED_MISSING)
    sex = _component(pid, 8).upper()
    if sex:
        if sex not in GENDERS:
            raise field_error("PID-8", f"PID-8 (administrative sex) {sex!r} is not F, M, O, U, A or N.", TABLE_VALUE)
        found["gender"] = GENDERS[sex]
    phone = phone_of(pid)
    if phone:
        found["phone"] = phone
    elif not changes_only:
        raise field_error("PID-13", "PID-13 (home phone) has no number: a mobile is needed to enrol.",
                          REQUIRED_MISSING)
    if document:
        found["id_document"] = document
    return Patient(patient_id=patient_id, fields=found)


def person_name(family: str, given: str, middle: str = "") -> str:
    """An XPN's family^given^middle as one name: Chinese names family first with no space (王小明), others
    given first (Anna Maria Schmidt)."""
    family, given, middle = family.strip(), given.strip(), middle.strip()
    if CJK.search(family + given):
        return family + given + middle
    return " ".join(part for part in (given, middle, family) if part)


def phone_of(pid: Any) -> str:
    """PID-13 (home) then PID-14 (business): the first mobile (XTN-3 ``CP``), else the first number.
    The number is XTN-12 (unformatted) or XTN-1, else XTN-5/6/7 (country, area, local)."""
    numbers: list[tuple[bool, str]] = []
    for number in (13, 14):
        for repetition in range(1, _repetitions(pid, number) + 1):
            part = [""] + [_component(pid, number, repetition, c) for c in range(1, 13)]
            equipment = part[3].upper()
            if equipment in ("INTERNET", "X.400", "FX", "BP"):
                continue
            digits = part[12] or part[1] or "".join(p for p in (part[5] and f"+{part[5]}", part[6], part[7]) if p)
            if digits:
                numbers.append((equipment == "CP", digits))
    mobiles = [n for mobile, n in numbers if mobile]
    return (mobiles or [n for _, n in numbers] or [""])[0]


def hl7_date(value: str, location: str) -> date:
    """A DT / TS value's date (YYYYMMDD, time and zone ignored)."""
    digits = value[:8]
    try:
        if len(digits) != 8 or not digits.isdigit():
            raise ValueError
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise field_error(location, f"{location} {value!r} is not a date (YYYYMMDD).") from None


# --- the merge (MRG) ------------------------------------------------------------------------------------


def merged_patient_id(message: Any) -> str:
    """MRG-1: the prior patient id, the duplicate merged into the PID's patient."""
    mrg = _segment(message, "MRG")
    value = _component(mrg, 1)
    if not value:
        raise field_error("MRG-1", "MRG-1 (prior patient identifier) is empty.", REQUIRED_MISSING)
    return value


# --- the bill (PV1, FT1) --------------------------------------------------------------------------------

CHARGE, PAYMENT = "CG", "PY"


@dataclass(frozen=True)
class Bill:
    bill_id: str  # PV1-19 (visit number), else the first FT1-2 (transaction id)
    branch: str | None  # PV1-3.4 (the location's facility), else None (the integration's first branch)
    doctor_id: str | None  # PV1-7.1 (attending doctor)
    currency: str | None  # FT1-11.2 when given
    items: list[dict[str, Any]]
    payments: list[dict[str, Any]]


def branch_of(message: Any) -> str | None:
    """The branch the message is for: AIL-3.4 (a scheduled location's facility), else PV1-3.4 (the assigned
    location's); None when neither is given."""
    for name in ("AIL", "PV1"):
        try:
            segment = message.segment(name)
        except KeyError:
            continue
        found = _component(segment, 3, 1, 4)
        if found:
            return found
    return None


def bill(message: Any, categories: tuple[str, ...], methods: tuple[str, ...]) -> Bill:
    """A DFT^P03's posted transactions: charges (FT1-6 ``CG``) are items, payments (``PY``) are payments;
    a DFT with charges and no payment lines was paid in full (one ``cash`` payment). FT1-7.1 is the item
    code (a payment's method when it is one of ``methods``), FT1-13.1 the item category when it is one of
    ``categories`` (else ``exam``), FT1-11 the amount (decimal, currency FT1-11.2)."""
    pv1 = _segment(message, "PV1")
    lines = [segment for segment in message if str(segment[0]) == "FT1"]
    if not lines:
        raise field_error("FT1", "A DFT^P03 needs at least one FT1 segment.", REQUIRED_MISSING)
    bill_id = _component(pv1, 19) or _component(lines[0], 2)
    if not bill_id:
        raise field_error("PV1-19", "PV1-19 (visit number) or FT1-2 (transaction id) must name the bill.",
                          REQUIRED_MISSING)
    if len(bill_id) > 64:
        raise field_error("PV1-19", "PV1-19 (visit number) is longer than 64 characters.")
    items, payments, currencies = [], [], set()
    for position, line in enumerate(lines, start=1):
        where = f"FT1({position})"
        kind = _component(line, 6).upper()
        code = _component(line, 7)
        amount_text, currency = _component(line, 11, 1, 1), _component(line, 11, 1, 2).upper()
        if currency:
            currencies.add(currency)
        amount = minor_units(amount_text, f"{where}-11")
        if kind == CHARGE:
            if not code:
                raise field_error(f"{where}-7", f"{where}-7 (transaction code) is empty.", REQUIRED_MISSING)
            category = _component(line, 13).lower()
            items.append({"category": category if category in categories else "exam", "code": code[:32],
                          "amount_minor": amount})
        elif kind == PAYMENT:
            method = code.lower()
            if method not in methods:
                raise field_error(f"{where}-7", f"{where}-7 {code!r} is not a payment method we know: "
                                  f"{', '.join(methods)}.", TABLE_VALUE)
            payments.append({"method": method, "amount_minor": abs(amount)})
        else:
            raise field_error(f"{where}-6", f"{where}-6 (transaction type) {kind!r} is not CG or PY.", TABLE_VALUE)
    if len(currencies) > 1:
        raise field_error("FT1-11", "The FT1 lines are in more than one currency.")
    if not payments:
        total = sum(item["amount_minor"] for item in items)
        payments = [{"method": "cash", "amount_minor": total}] if total > 0 else []
    doctor = _component(pv1, 7) or None
    return Bill(bill_id=bill_id, branch=branch_of(message), doctor_id=doctor[:64] if doctor else None,
                currency=next(iter(currencies), None), items=items, payments=payments)


def minor_units(value: str, location: str) -> int:
    """A decimal amount (``1280.50``) in minor units (128050); more than two decimals is an error."""
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise field_error(location, f"{location} {value!r} is not an amount.") from None
    scaled = amount * 100
    if not amount.is_finite() or scaled != scaled.to_integral_value() or amount < 0:
        raise field_error(location, f"{location} {value!r} is not an amount of at most two decimals, at least 0.")
    return int(scaled)


# --- the appointment (SIU: SCH, AIS, AIP) ----------------------------------------------------------------


@dataclass(frozen=True)
class Appointment:
    placer_id: str  # SCH-1.1 (else SCH-2.1): the HIS's appointment id
    starts_at: datetime | None  # AIS-4, else SCH-11.4 (UTC)
    doctor_id: str | None  # AIP-3.1
    service: str | None  # AIS-3.1
    reason: str | None  # SCH-6.2 (or .1): why it was cancelled


def appointment(message: Any, zone: ZoneInfo, booking: bool) -> Appointment:
    """An SIU's appointment; a booking (S12) needs its start and doctor, a cancellation (S15) only its id."""
    sch = _segment(message, "SCH")
    placer = _component(sch, 1) or _component(sch, 2)
    if not placer:
        raise field_error("SCH-1", "SCH-1 (placer appointment id) or SCH-2 must name the appointment.",
                          REQUIRED_MISSING)
    ais = _optional(message, "AIS")
    aip = _optional(message, "AIP")
    start_text, where = (_component(ais, 4), "AIS-4") if ais is not None else ("", "AIS-4")
    if not start_text:
        start_text, where = _component(sch, 11, 1, 4), "SCH-11"
    starts_at = hl7_moment(start_text, where, zone) if start_text else None
    doctor = _component(aip, 3) if aip is not None else ""
    if booking and starts_at is None:
        raise field_error("AIS-4", "AIS-4 (start date/time) or SCH-11.4 is needed to book.", REQUIRED_MISSING)
    if booking and not doctor:
        raise field_error("AIP-3", "AIP-3 (the doctor) is needed to book.", REQUIRED_MISSING)
    return Appointment(placer_id=placer[:100], starts_at=starts_at, doctor_id=doctor[:64] or None,
                       service=(_component(ais, 3) if ais is not None else "") or None,
                       reason=(_component(sch, 6, 1, 2) or _component(sch, 6)) or None)


def _optional(message: Any, name: str) -> Any:
    try:
        return message.segment(name)
    except KeyError:
        return None


def hl7_moment(value: str, location: str, zone: ZoneInfo) -> datetime:
    """A TS (YYYYMMDDHHMM[SS][+/-ZZZZ]) as a UTC instant; without an offset it is the group's local time."""
    match = re.fullmatch(r"(\d{12})(\d{2})?(?:\.\d+)?([+-]\d{4})?", value.strip())
    if match is None:
        raise field_error(location, f"{location} {value!r} is not a date and time (YYYYMMDDHHMM[SS][+ZZZZ]).")
    digits, seconds, offset = match.groups()
    try:
        naive = datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:8]), int(digits[8:10]), int(digits[10:12]),
                         int(seconds or 0))
    except ValueError:
        raise field_error(location, f"{location} {value!r} is not a valid date and time.") from None
    if offset:
        sign = 1 if offset[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        return naive.replace(tzinfo=tz).astimezone(UTC)
    return naive.replace(tzinfo=zone).astimezone(UTC)


# --- the ACK ----------------------------------------------------------------------------------------------


def ack(inbound: Inbound | None, raw_text: str | None, code: str, why: str = "", location: str | None = None,
        error: str | None = None, now: datetime | None = None) -> str:
    """The ACK for a message: MSH (python-hl7's ``create_ack``, MSH-10 a fresh id), MSA (code, the
    message's MSH-10, why), and an ERR naming the field when one is at fault. ``inbound`` None: the message
    could not be parsed; the ACK is built from what could be read of its MSH."""
    now = now or datetime.now(UTC)
    ack_id = uuid.uuid4().hex[:20].upper()
    if inbound is not None:
        version = inbound.version
        message = inbound.message.create_ack(ack_code=code, message_id=ack_id, application="CARELOOP")
        msh = str(message.segment("MSH"))
        control_id = inbound.control_id
    else:
        head = header_of(raw_text or "")
        version = head["version"] if head["version"] in SUPPORTED_VERSIONS else "2.5.1"
        control_id = head["control_id"]
        msh = f"MSH|^~\\&|CARELOOP||||{now:%Y%m%d%H%M%S}||ACK|{ack_id}|P|{version}"
    segments = [msh, "|".join(["MSA", code, _escape(control_id), _escape(why)[:80]])]
    if code != "AA":
        segments.append(err_segment(version, location, error or APPLICATION_ERROR, why))
    return "\r".join(segments) + "\r"


def err_segment(version: str, location: str | None, error: str, why: str) -> str:
    """ERR: 2.5 and later put the location in ERR-2, the 0357 code in ERR-3, severity E in ERR-4 and the
    text in ERR-8; 2.3 and 2.4 have ERR-1 (segment^sequence^field^code&text&table)."""
    segment, field_number = _location_parts(location)
    code = f"{error}^{ERROR_TEXT.get(error, 'Error')}^HL70357"
    if version.startswith(("2.3", "2.4")):
        return f"ERR|{segment}^1^{field_number}^{code.replace('^', '&')}"
    return "|".join(["ERR", "", f"{segment}^1^{field_number}" if segment else "", code, "E", "", "", "",
                     _escape(why)])


def _location_parts(location: str | None) -> tuple[str, str]:
    if not location:
        return "", ""
    match = re.match(r"^([A-Z0-9]{3})(?:\(\d+\))?(?:-(\d+))?", location)
    return (match.group(1), match.group(2) or "") if match else ("", "")


def _escape(value: str) -> str:
    """Escape HL7's delimiters in a text we put in a field (\\F\\ etc.)."""
    return (value.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\")
            .replace("~", "\\R\\").replace("\r", " ").replace("\n", " "))


def ack_code(ack_text: str) -> str:
    """MSA-1 of an ACK we built."""
    for segment in ack_text.split("\r"):
        if segment.startswith("MSA|"):
            return segment.split("|")[1]
    return ""
