"""Visits (encounters): opened at the desk or by an appointment, moved along their lifecycle, completed
once per HIS bill, refunded once per HIS refund. The rules are in ``rules/lifecycle.py``."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Date, Uuid, bindparam, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from services.kit.caller import Identity
from services.kit.clock import local_date
from services.kit.commit import AtCommit, at_commit
from services.kit.config import Group
from services.kit.db import fetch, parse_uuid, prepared
from services.kit.errors import Conflict, Invalid
from services.kit.models import UtcDateTime
from services.kit.paging import keyset_page
from services.kit.schemas import With
from services.kit.telemetry import counter
from services.records import careplans, patients
from services.records.models import Patient, Visit, VisitItem, VisitPayment, VisitRefund
from services.records.rules import lifecycle

VISITS_COMPLETED = counter("careloop_records_visits_completed_total", "Visits completed", ("branch", "kind"))
REFUNDS = counter("careloop_records_refunds_total", "Visit refunds", ("branch",))

CLOCK_SKEW = timedelta(minutes=5)  # how far in the future an HIS clock may be and still be believed


def parse_id(value: Any, what: str = "visit") -> uuid.UUID:
    return parse_uuid(value, what)


def get(session: Session, visit_id: Any, lock: bool = False) -> Visit:
    return fetch(session, Visit, visit_id, "visit", lock=lock)


def lock_with_patient(session: Session, visit_id: Any) -> tuple[Visit, Patient | None]:
    """The visit and its patient, both locked, the patient first (``patients.lock_with_patient``)."""
    return patients.lock_with_patient(session, Visit, visit_id, "visit")


_PATIENT_COLUMNS = Patient.__table__.columns
_OPEN_STATUSES = ", ".join(f"'{status}'" for status in lifecycle.OPEN_STATUSES)  # code constants
_OPEN_OF_DAY_SQL = (f"FROM visits v WHERE v.member_id = :member AND v.branch = :branch AND v.status IN ({_OPEN_STATUSES}) "
                    "AND v.visit_at >= :start AND v.visit_at < :end")
_RECALL_JSON = ", ".join(f"'{name}', c.{name}" for name in careplans.RECALL_FIELDS)
_RECALLS_SQL = ("FROM care_plans c WHERE c.member_id = :member AND c.status = 'active' "
                "AND c.recall_type = ANY(CAST(:types AS text[]))")
# PostgreSQL, a completion's first round trip, in the lock order (patient, visits, then care plans): the patient's
# row, the member's open visits of the day and the care plans the bill may reset are locked, then read (a statement
# of its own, so with a snapshot taken once the locks are granted: a completion of the same bill that held them is
# seen), with whether the id is a merged member's alias and which visit this bill completed before; each statement
# prepared once per connection (``kit.db.prepared``)
_READ_FOR_COMPLETION = prepared(text(
    "SELECT 1 FROM patients WHERE member_id = :member FOR UPDATE; "
    f"SELECT 1 {_OPEN_OF_DAY_SQL} LIMIT 2 FOR UPDATE; "
    f"SELECT 1 {_RECALLS_SQL} FOR UPDATE; "
    f"SELECT {', '.join('p.' + column.name for column in _PATIENT_COLUMNS)}, "
    "(SELECT a.member_id FROM member_aliases a WHERE a.alias_id = :member) AS alias_of, "
    "(SELECT v.id FROM visits v WHERE v.bill_id = :bill) AS billed_id, "
    f"ARRAY(SELECT CAST(v.id AS text) {_OPEN_OF_DAY_SQL} LIMIT 2) AS open_ids, "
    f"(SELECT json_agg(json_build_object({_RECALL_JSON}) "
    f"ORDER BY c.recall_type) {_RECALLS_SQL}) AS recalls "
    "FROM patients p WHERE p.member_id = :member"
).bindparams(bindparam("member", type_=Uuid()), bindparam("start", type_=UtcDateTime()),
             bindparam("end", type_=UtcDateTime())).columns(*_PATIENT_COLUMNS, alias_of=Uuid(), billed_id=Uuid()))
_BILLED = select(Visit.id).where(Visit.bill_id == bindparam("bill"))


@dataclass
class Completion:
    """What a completion reads before it writes: its patient (locked), the visit the bill completed before (if it
    did), and — when read with them — the member's open visits of the day and the recalls the bill may reset (both
    locked; None: not read, ``complete`` and ``careplans.reset_by_visit`` read them)."""

    patient: Patient
    billed_id: uuid.UUID | None
    open_ids: list[uuid.UUID] | None = None
    recalls: list[careplans.Recall] | None = None


def _completion_day(bill: dict[str, Any], group: Group, now: datetime) -> tuple[datetime, date]:
    completed_at = bill.get("completed_at") or now
    return completed_at, local_date(completed_at, group.zone)


def read_for_completion(session: Session, bill: dict[str, Any], group: Group, now: datetime) -> Completion | None:
    """On PostgreSQL, for a member records knows and that was not merged: all a completion reads, in one round trip
    (the patient detached: what a completion changes on it is written with the commit). None otherwise: then the
    patient is found the ordinary way and the rest read as needed (``Completion(patient, billed(...))``)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    start, end = _day_bounds(_completion_day(bill, group, now)[1], group)
    row = session.execute(_READ_FOR_COMPLETION, {
        "member": patients.parse_member_id(bill["member_id"]), "bill": bill["bill_id"], "branch": bill["branch"],
        "start": start, "end": end, "types": careplans.resettable({item["category"] for item in bill["items"]})}).first()
    if row is None or row.alias_of is not None or row.membership_status == "merged":
        return None
    mapping = row._mapping
    return Completion(Patient(**{column.name: mapping[column.name] for column in _PATIENT_COLUMNS}), row.billed_id,
                      [uuid.UUID(value) for value in row.open_ids], careplans.recalls_of(row.recalls or []))


def billed(session: Session, bill_id: str) -> uuid.UUID | None:
    """The visit ``bill_id`` completed, if any."""
    return session.scalar(_BILLED, {"bill": bill_id})


def by_bill(session: Session, bill_id: str, lock: bool = False) -> Visit | None:
    query = select(Visit).where(Visit.bill_id == bill_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def _arrive(visit: Visit, patient: Patient, at: datetime, group: Group) -> None:
    visit.arrived_at, visit.arrived_on, visit.visit_at = at, local_date(at, group.zone), at
    if patient.first_arrived_at is None or patient.first_arrived_at > at:
        patient.first_arrived_at = at


def new_visit(patient: Patient, branch: str, doctor_id: str | None, kind: str | None, now: datetime,
              scheduled_at: datetime | None = None, appointment_id: uuid.UUID | None = None) -> Visit:
    """A visit in status booked (``scheduled_at`` given) or not yet placed (the caller arrives it)."""
    return Visit(
        id=uuid.uuid4(), member_id=patient.member_id, branch=branch, doctor_id=doctor_id,
        kind=kind or lifecycle.default_kind(patient.first_arrived_at is not None), status="booked",
        appointment_id=appointment_id, currency="", total_minor=0, qualifying_minor=0, refunded_minor=0,
        refunded_qualifying_minor=0, outpatient_surgery=False, first_visit=False, first_paid_visit=False,
        visit_at=scheduled_at or now, scheduled_at=scheduled_at, created_at=now, updated_at=now,
    )


def open_visit(session: Session, patient: Patient, data: dict[str, Any], group: Group, now: datetime) -> Visit:
    """A walk-in who has arrived, or a visit booked for later, at the desk."""
    group.branch(data["branch"])
    visit = new_visit(patient, data["branch"], data.get("doctor_id"), data.get("kind"), now,
                      scheduled_at=data.get("scheduled_at"))
    visit.currency = group.currency
    if data["status"] == "arrived":
        visit.status = "arrived"
        _arrive(visit, patient, now, group)
    session.add(visit)
    return visit


def advance(visit: Visit, patient: Patient, target: str, group: Group, now: datetime) -> bool:
    """Move an open visit along (arrived, in treatment, cancelled, no-show); False if it was there already."""
    if not lifecycle.visit_transition(visit.status, target):
        return False
    if target == "arrived":
        _arrive(visit, patient, now, group)
    elif target == "in_treatment":
        visit.treatment_started_at = now
    elif target in ("cancelled", "no_show"):
        visit.ended_at = now
    visit.status, visit.updated_at = target, now
    return True


def bill_fingerprint(bill: dict[str, Any]) -> str:
    canonical = json.dumps(bill, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _day_bounds(day: date, group: Group) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=group.zone).astimezone(UTC)
    return start, start + timedelta(days=1)


_OPEN_OF_DAY = select(Visit).where(
    Visit.member_id == bindparam("member"), Visit.branch == bindparam("branch"),
    Visit.status.in_(lifecycle.OPEN_STATUSES), Visit.visit_at >= bindparam("start"),
    Visit.visit_at < bindparam("end")).with_for_update().limit(2)


def _open_visit_of_day(session: Session, member_id: uuid.UUID, branch: str, day: date, group: Group) -> Visit | None:
    """The member's one open visit at ``branch`` on ``day``, if there is exactly one."""
    start, end = _day_bounds(day, group)
    found = session.scalars(_OPEN_OF_DAY, {"member": member_id, "branch": branch, "start": start, "end": end}).all()
    return found[0] if len(found) == 1 else None


# What a completion writes besides the visit row: nothing reads these back in its transaction, so they go with the
# commit (``kit.commit``: on PostgreSQL in the query that commits, however many lines the bill has), each statement
# prepared once per connection (``kit.db.prepared``): every paid visit runs them
_ADD_ITEM = AtCommit("INSERT INTO visit_items (visit_id, category, code, amount_minor) "
                     "VALUES (:visit_id, :category, :code, :amount_minor)", prepare=True, visit_id=Uuid())
_ADD_PAYMENT = AtCommit("INSERT INTO visit_payments (visit_id, method, amount_minor) "
                        "VALUES (:visit_id, :method, :amount_minor)", prepare=True, visit_id=Uuid())
_PATIENT_AFTER_VISIT = AtCommit(
    "UPDATE patients SET first_arrived_at = :first_arrived_at, completed_visits = :completed_visits, "
    "paid_visits = :paid_visits, last_visit_id = :last_visit_id, last_visit_on = :last_visit_on, "
    "treatment = :treatment WHERE member_id = :member_id",
    prepare=True, first_arrived_at=UtcDateTime(), last_visit_id=Uuid(), last_visit_on=Date(), member_id=Uuid())


def _keep_patient(session: Session, patient: Patient, **values: Any) -> None:
    """Write what a completion changes on the (locked) patient with the commit, and keep the object in step
    without making it dirty (no UPDATE of its own at the next flush)."""
    for name, value in values.items():
        set_committed_value(patient, name, value)
    at_commit(session, _PATIENT_AFTER_VISIT, {
        "member_id": patient.member_id, "first_arrived_at": patient.first_arrived_at,
        "completed_visits": patient.completed_visits, "paid_visits": patient.paid_visits,
        "last_visit_id": patient.last_visit_id, "last_visit_on": patient.last_visit_on, "treatment": patient.treatment})


def complete(session: Session, found: Completion, bill: dict[str, Any], group: Group,
             now: datetime) -> tuple[Visit, bool]:
    """Complete the visit a bill pays for; (visit, False) if this bill was completed before. What the completion
    changes on the (locked) patient, and the bill's lines, are written with the commit."""
    patient = found.patient
    fingerprint = bill_fingerprint(bill)
    existing = session.get(Visit, found.billed_id) if found.billed_id is not None else None
    if existing is not None:
        if existing.bill_hash != fingerprint:
            raise Conflict(f"Bill {bill['bill_id']} was already completed with other details; send a refund or "
                           "a new bill rather than changing it.", details={"visit_id": str(existing.id)})
        return existing, False
    group.branch(bill["branch"])
    completed_at, day = _completion_day(bill, group, now)
    if completed_at > now + CLOCK_SKEW:
        raise Invalid("The completion time is in the future.", {"completed_at": ["Must not be in the future."]})
    items, payments = bill["items"], bill["payments"]
    totals = lifecycle.check_bill(items, payments, bill["currency"], group.currency)

    if bill.get("visit_id") is not None:
        visit = get(session, bill["visit_id"], lock=True)
        if visit.member_id != patient.member_id:
            raise Invalid("This visit is another member's.", {"visit_id": ["Not this member's visit."]})
        if visit.branch != bill["branch"]:
            raise Invalid(f"This visit is at {visit.branch}, not {bill['branch']}.", {"branch": ["Not the visit's."]})
    elif found.open_ids is not None:  # read (and locked) with the patient
        visit = session.get(Visit, found.open_ids[0]) if len(found.open_ids) == 1 else None
    else:
        visit = _open_visit_of_day(session, patient.member_id, bill["branch"], day, group)
    if visit is None:
        visit = new_visit(patient, bill["branch"], bill.get("doctor_id"), bill.get("kind"), now)
        session.add(visit)
    if visit.status == "completed":
        raise Conflict(f"This visit was completed with bill {visit.bill_id}.", details={"visit_id": str(visit.id)})
    first_arrived_at = patient.first_arrived_at
    if visit.status == "booked":  # billed, so the patient came
        lifecycle.visit_transition("booked", "arrived")
        visit.status = "arrived"
        arrived_at = min(completed_at, now)
        visit.arrived_at, visit.arrived_on, visit.visit_at = arrived_at, local_date(arrived_at, group.zone), arrived_at
        if first_arrived_at is None or first_arrived_at > arrived_at:
            first_arrived_at = arrived_at
    lifecycle.visit_transition(visit.status, "completed")

    treatment = bill.get("treatment") or lifecycle.default_treatment(items)
    visit.status, visit.bill_id, visit.bill_hash = "completed", bill["bill_id"], fingerprint
    visit.doctor_id = bill.get("doctor_id") or visit.doctor_id
    visit.kind = bill.get("kind") or visit.kind
    visit.currency = bill["currency"]
    visit.total_minor, visit.qualifying_minor = totals.total_minor, totals.qualifying_minor
    visit.treatment = treatment
    visit.outpatient_surgery = lifecycle.is_outpatient_surgery(bill.get("outpatient_surgery"), items)
    visit.first_visit = patient.completed_visits == 0
    visit.first_paid_visit = totals.qualifying_minor > 0 and patient.paid_visits == 0
    visit.referral_source = patients.referral_source(patient, bill.get("referral_source"))
    visit.completed_at, visit.completed_on, visit.updated_at = completed_at, day, now
    try:
        session.flush()  # the visit row before its items
    except IntegrityError:
        raise Conflict(f"Bill {bill['bill_id']} is being completed for another visit at this moment.") from None
    for item in items:
        at_commit(session, _ADD_ITEM, {"visit_id": visit.id, "category": item["category"], "code": item["code"],
                                       "amount_minor": item["amount_minor"]})
    for payment in payments:
        at_commit(session, _ADD_PAYMENT, {"visit_id": visit.id, "method": payment["method"],
                                          "amount_minor": payment["amount_minor"]})
    last = {}
    if patient.last_visit_on is None or day >= patient.last_visit_on:
        last = {"last_visit_id": visit.id, "last_visit_on": day, "treatment": treatment}
    _keep_patient(session, patient, first_arrived_at=first_arrived_at, completed_visits=patient.completed_visits + 1,
                  paid_visits=patient.paid_visits + (1 if totals.qualifying_minor > 0 else 0), **last)
    return visit, True


def refund(session: Session, visit: Visit, data: dict[str, Any], caller: Identity,
           now: datetime) -> tuple[VisitRefund, bool]:
    """Give back (part of) what a completed visit was paid; (refund, False) if this HIS refund was done."""
    fingerprint = bill_fingerprint({"visit_id": str(visit.id), "payments": data["payments"]})
    existing = session.scalars(select(VisitRefund).where(VisitRefund.his_refund_id == data["refund_id"])).first()
    if existing is not None:
        if existing.request_hash != fingerprint:
            raise Conflict(f"Refund {data['refund_id']} was already made with other details.",
                           details={"refund_id": str(existing.id)})
        return existing, False
    if visit.status != "completed":
        raise Conflict("Only a completed visit can be refunded; cancel an open visit instead.")
    paid = lifecycle.by_method(_payments(session, [visit.id])[visit.id])
    refunded: dict[str, int] = defaultdict(int)
    for row in session.scalars(select(VisitRefund).where(VisitRefund.visit_id == visit.id)):
        for method, amount in lifecycle.by_method(json.loads(row.payments)).items():
            refunded[method] += amount
    outcome = lifecycle.plan_refund(paid, refunded, data["payments"])
    row = VisitRefund(id=uuid.uuid4(), visit_id=visit.id, his_refund_id=data["refund_id"],
                      request_hash=fingerprint, payments=json.dumps(data["payments"], separators=(",", ":")),
                      total_minor=outcome.total_minor, qualifying_minor=outcome.qualifying_minor,
                      full=outcome.full, refunded_at=now, refunded_by=caller.subject[:80])
    session.add(row)
    visit.refunded_minor += outcome.total_minor
    visit.refunded_qualifying_minor += outcome.qualifying_minor
    visit.updated_at = now
    return row, True


def page(session: Session, member_id: uuid.UUID, limit: int, cursor: str | None) -> tuple[list[Visit], str | None]:
    """A member's visits, newest first."""
    query = select(Visit).where(Visit.member_id == member_id)
    return keyset_page(session, query, Visit.visit_at, Visit.id, limit, cursor, descending=True)


def _items(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    found: dict[uuid.UUID, list[dict[str, Any]]] = {visit_id: [] for visit_id in ids}
    if ids:  # plain rows, not ORM objects: a full record reads hundreds of these
        query = (select(VisitItem.visit_id, VisitItem.category, VisitItem.code, VisitItem.amount_minor)
                 .where(VisitItem.visit_id.in_(ids)).order_by(VisitItem.id))
        for visit_id, category, code, amount in session.execute(query):
            found[visit_id].append({"category": category, "code": code, "amount_minor": amount})
    return found


def _payments(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    found: dict[uuid.UUID, list[dict[str, Any]]] = {visit_id: [] for visit_id in ids}
    if ids:
        query = (select(VisitPayment.visit_id, VisitPayment.method, VisitPayment.amount_minor)
                 .where(VisitPayment.visit_id.in_(ids)).order_by(VisitPayment.id))
        for visit_id, method, amount in session.execute(query):
            found[visit_id].append({"method": method, "amount_minor": amount})
    return found


def _refunds(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    found: dict[uuid.UUID, list[dict[str, Any]]] = {visit_id: [] for visit_id in ids}
    if ids:
        query = (select(VisitRefund.visit_id, VisitRefund.id, VisitRefund.his_refund_id, VisitRefund.total_minor,
                        VisitRefund.qualifying_minor, VisitRefund.full, VisitRefund.refunded_at)
                 .where(VisitRefund.visit_id.in_(ids)).order_by(VisitRefund.refunded_at))
        for row in session.execute(query):
            found[row.visit_id].append(row._asdict())
    return found


def with_lines(session: Session, visits: list[Visit]) -> list[With]:
    """Visits with their items, payments and refunds (for ``VisitSchema``), loaded in three queries."""
    ids = [visit.id for visit in visits]
    items, payments, refunds = _items(session, ids), _payments(session, ids), _refunds(session, ids)
    return [With(visit, items=items[visit.id], payments=payments[visit.id], refunds=refunds[visit.id])
            for visit in visits]


def one(session: Session, visit: Visit) -> With:
    return with_lines(session, [visit])[0]


def just_completed(visit: Visit, bill: dict[str, Any]) -> With:
    """A visit ``complete`` has just completed with ``bill`` (loaded by ``BillSchema``), with its lines as the bill
    gave them (in the order they are stored) and no refund yet, for ``VisitSchema``: nothing read back."""
    return With(visit, items=bill["items"], payments=bill["payments"], refunds=[])


def completed_event(visit: With) -> dict[str, Any]:
    """``visit_completed`` (services/records/events.py) of a visit ``just_completed``."""
    return {
        "visit_id": visit.id, "member_id": visit.member_id, "branch": visit.branch, "doctor_id": visit.doctor_id,
        "kind": visit.kind, "bill_id": visit.bill_id, "completed_at": visit.completed_at, "currency": visit.currency,
        "items": visit.items, "payments": visit.payments,
        "qualifying_minor": visit.qualifying_minor, "first_visit": visit.first_visit,
        "first_paid_visit": visit.first_paid_visit, "referral_source": visit.referral_source,
    }


def refunded_event(visit: Visit, row: VisitRefund) -> dict[str, Any]:
    return {"visit_id": visit.id, "member_id": visit.member_id, "branch": visit.branch, "refund_id": row.id,
            "refunded_minor": row.qualifying_minor, "currency": visit.currency, "full": row.full}


def cancelled_event(visit: Visit) -> dict[str, Any]:
    return {"visit_id": visit.id, "member_id": visit.member_id, "branch": visit.branch}
