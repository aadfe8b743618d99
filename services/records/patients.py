"""The patients records knows: members seen by RPC or enrolment event, with the state visits leave.

A member's first record in this service is created only after the members service confirmed the
member exists (``ensure``), so a mistyped id never grows a record of its own. Ids that come in are first
resolved through merges (``membership.resolve``: a merged member's id names the survivor), and the row
keeps the membership's status as members' events told it (``membership.py``). The patient row is
locked by every change that depends on the member's history (completing a bill, booking), so two
such changes for one member never both think they are the first.

Lock order (``kit.locks``): the patient row first, then the visit, then the appointment. A completion locks
the patient and the visit and then moves the appointment; a cancellation, check-in, no-show, reschedule or
a visit's move at the desk therefore also locks the patient before its appointment or visit
(``visits.lock_with_patient``, ``bookings.lock_with_patient``), so no two of them wait on each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.orm import Session

from services.kit.clock import local_date
from services.kit.db import dialect_insert, fetch, parse_uuid
from services.kit.errors import Conflict, NotFound
from services.kit.models import UtcDateTime
from services.records.models import Patient, Visit

MemberLookup = Callable[[str], dict[str, Any]]


def parse_member_id(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"No member {value}.") from None


def get(session: Session, member_id: uuid.UUID, lock: bool = False) -> Patient | None:
    query = select(Patient).where(Patient.member_id == member_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def ensure(session: Session, member_id: Any, lookup: MemberLookup, now: datetime, lock: bool = True) -> Patient:
    """The member's patient row (locked for this transaction unless ``lock`` is False); created on first
    sight, after asking members whether the member exists."""
    member_uuid = parse_member_id(member_id)
    patient = get(session, member_uuid, lock=lock)
    if patient is not None:
        return patient
    member = lookup(str(member_uuid))  # NotFound for a member that does not exist
    if member.get("status") == "merged" and member.get("merged_into"):  # merged before its event came here
        return ensure(session, member["merged_into"], lookup, now, lock=lock)
    if member.get("status") == "closed":
        raise Conflict("This membership is closed; no new records are kept for it.")
    referrer = member.get("referred_by")
    session.execute(dialect_insert(session, Patient).values(
        member_id=member_uuid, home_branch=member.get("home_branch"),
        referrer_id=uuid.UUID(referrer) if referrer else None, completed_visits=0, paid_visits=0, created_at=now,
        membership_status="frozen" if member.get("status") == "frozen" else "active",
    ).on_conflict_do_nothing(index_elements=["member_id"]))
    return get(session, member_uuid, lock=lock)


def lock_with_patient(session: Session, model: Any, row_id: Any, what: str) -> tuple[Any, Patient | None]:
    """A member's visit or appointment (``model`` row ``row_id``) and its patient, both locked, the patient first
    (the lock order above); a row moved to another member by a merge while we waited is read again."""
    key = parse_uuid(row_id, what)
    for _attempt in range(3):
        member_id = fetch(session, model, key, what).member_id
        patient = get(session, member_id, lock=True)
        row = session.scalars(select(model).where(model.id == key).with_for_update()
                              .execution_options(populate_existing=True)).one()
        if row.member_id == member_id:  # not moved to another member (a merge) while we waited
            return row, patient
    raise Conflict(f"This {what} is being moved to another member's record at this moment; try again.")


def known(session: Session, member_id: Any) -> Patient:
    """A patient records already knows (for reads: nothing is created by looking)."""
    patient = get(session, parse_member_id(member_id))
    if patient is None:
        raise NotFound(f"No records for member {member_id}.")
    return patient


def enrolled(session: Session, event: dict[str, Any], zone: ZoneInfo, now: datetime) -> None:
    """Remember an enrolment (``member_enrolled``, in domain values): the start of "left details but never came"."""
    member_id, enrolled_at = event["member_id"], event["enrolled_at"]
    values = {"home_branch": event["home_branch"], "referrer_id": event["referrer_id"],
              "enrolled_at": enrolled_at, "enrolled_on": local_date(enrolled_at, zone)}
    session.execute(dialect_insert(session, Patient).values(member_id=member_id, completed_visits=0, paid_visits=0,
                                            created_at=now, **values)
                    .on_conflict_do_nothing(index_elements=["member_id"]))
    patient = get(session, member_id, lock=True)
    if patient.enrolled_at is None:
        for name, value in values.items():
            setattr(patient, name, value)


# ``enrolled`` of many members in one statement (PostgreSQL): each patient row created, or given its enrolment if it
# had none, and locked, in member-id order (the patient row comes first in records' lock order)
_ENROLLED_MANY_PG = text(
    "INSERT INTO patients (member_id, home_branch, referrer_id, enrolled_at, enrolled_on, completed_visits, "
    "paid_visits, created_at) SELECT m.member_id, m.home_branch, m.referrer_id, m.enrolled_at, m.enrolled_on, 0, 0, "
    ":now FROM unnest(CAST(:members AS uuid[]), CAST(:branches AS varchar[]), CAST(:referrers AS uuid[]), "
    "CAST(:moments AS timestamptz[]), CAST(:days AS date[])) "
    "AS m(member_id, home_branch, referrer_id, enrolled_at, enrolled_on) ORDER BY m.member_id "
    "ON CONFLICT (member_id) DO UPDATE SET home_branch = excluded.home_branch, referrer_id = excluded.referrer_id, "
    "enrolled_at = excluded.enrolled_at, enrolled_on = excluded.enrolled_on WHERE patients.enrolled_at IS NULL"
).bindparams(bindparam("now", type_=UtcDateTime()))


def enrolled_many(session: Session, events: list[dict[str, Any]], zone: ZoneInfo, now: datetime) -> None:
    """``enrolled`` of each of an import's members (``members_imported``): one statement on PostgreSQL."""
    events = sorted(events, key=lambda event: str(event["member_id"]))
    if session.get_bind().dialect.name != "postgresql":
        for event in events:
            enrolled(session, event, zone, now)
        return
    first = {}  # a member twice: its first enrolment, as one by one (a later one finds it enrolled)
    for event in events:
        first.setdefault(event["member_id"], event)
    if not first:
        return
    rows = list(first.values())
    session.execute(_ENROLLED_MANY_PG, {
        "members": [str(event["member_id"]) for event in rows], "branches": [event["home_branch"] for event in rows],
        "referrers": [str(event["referrer_id"]) if event["referrer_id"] else None for event in rows],
        "moments": [event["enrolled_at"] for event in rows],
        "days": [local_date(event["enrolled_at"], zone) for event in rows], "now": now})


def recount(session: Session, patient: Patient) -> None:
    """Recompute what visits leave on the patient row from the visits themselves (after a merge moved some)."""
    recount_many(session, [patient])


def recount_many(session: Session, patients: list[Patient]) -> None:
    """``recount`` of several patients in two queries (an import's batch)."""
    if not patients:
        return
    ids = [patient.member_id for patient in patients]
    first = dict(session.execute(select(Visit.member_id, func.min(Visit.arrived_at))
                                 .where(Visit.member_id.in_(ids)).group_by(Visit.member_id)).all())
    completed: dict[uuid.UUID, list[Any]] = {member_id: [] for member_id in ids}
    for row in session.execute(select(Visit.member_id, Visit.id, Visit.completed_on, Visit.treatment,
                                      Visit.qualifying_minor)
                               .where(Visit.member_id.in_(ids), Visit.status == "completed")
                               .order_by(Visit.member_id, Visit.completed_on, Visit.completed_at, Visit.id)):
        completed[row.member_id].append(row)
    for patient in patients:
        rows = completed[patient.member_id]
        patient.first_arrived_at = first.get(patient.member_id)
        patient.completed_visits = len(rows)
        patient.paid_visits = sum(1 for row in rows if row.qualifying_minor > 0)
        last = rows[-1] if rows else None
        patient.last_visit_id = last.id if last else None
        patient.last_visit_on = last.completed_on if last else None
        patient.treatment = last.treatment if last else None


def referral_source(patient: Patient, given: str | None) -> str | None:
    """``member:<referrer id>`` for a member referral, else what the HIS said (``staff:…``, ``channel:…``)."""
    if patient.referrer_id is not None:
        return f"member:{patient.referrer_id}"
    return given
