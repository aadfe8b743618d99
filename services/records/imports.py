"""Historical visits brought from a clinic group's old system (imports, issue 19): each bill a completed visit
with its items and payments, stored once and marked as imported.

A batch comes in one call (``RecordsService.import_visits``). Each bill is checked on its own by the rules a
live bill meets (``ImportedBillSchema``, the group's branches and currency, payments adding up to the items,
no completion in the future), so a bad bill leaves the others be; the batch's good bills are then stored
together (a multi-row insert of the visits, one of their items, one of their payments: a handful of statements
a batch, not a savepoint and two flushes a bill). The import's key for the bill (``import:<job>:<bill>``) is kept
on its visit: the same key again (a batch sent again, a job resumed after a crash) answers ``imported`` as the
first time; a bill number CareLoop already holds otherwise (a second import of the same file, or the HIS sent
the bill live) answers ``present`` — also when the HIS sends it between the check and the insert (the insert
skips a bill number taken meanwhile: ``ON CONFLICT DO NOTHING``).

Nothing a live completion sets off happens: no ``visit_completed`` (no points earned — the old system's
balances came over as openings —, no post-visit messages or survey), no follow-ups, no care-plan recall
moved, no appointment touched. The patient row is recounted from its visits (an imported member with
history is not "never came"), and each member's new visits are announced once per batch as
``visits_imported`` (``events.py`` says why an event of its own), which members counts for tiers.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.clock import local_date
from services.kit.config import Group
from services.kit.db import dialect_insert
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from services.kit.schemas import load
from services.records import patients, visits
from services.records.models import MemberAlias, Patient, Visit, VisitItem, VisitPayment
from services.records.rules import lifecycle
from services.records.schemas import ImportedBillSchema

Checked = tuple[int, dict[str, Any], lifecycle.BillTotals]  # position in the batch, the bill, its totals
PatientOf = Callable[..., Patient]
"""A member's patient row (``RecordsService._patient``: ``(member_id, lock=True)``), created after asking members
if need be; ``NotFound``, ``Conflict`` or ``Invalid`` if it may have none."""


def _refused(key: Any, error: Invalid | Forbidden | Conflict | NotFound) -> dict[str, Any]:
    return {"key": key, "status": "invalid", "message": str(error), "errors": error.fields}


def _check(rows: list[dict[str, Any]], group: Group, caller: Identity, now: datetime,
           outcomes: list[dict[str, Any] | None]) -> list[Checked]:
    """The bills that meet the rules of a live bill; the others' outcomes filled in."""
    schema = ImportedBillSchema()  # one for the batch: building a schema costs
    checked = []
    for position, row in enumerate(rows):
        try:
            bill = load(schema, row)
            caller.require_branch(bill["branch"], "import visits at this branch")
            group.branch(bill["branch"])
            if bill["completed_at"] > now + visits.CLOCK_SKEW:
                raise Invalid("The visit date is in the future.", {"completed_at": ["Must not be in the future."]})
            checked.append((position, bill, lifecycle.check_bill(bill["items"], bill["payments"], bill["currency"],
                                                                 group.currency)))
        except (Invalid, Forbidden) as error:
            outcomes[position] = _refused(row.get("key") if isinstance(row, dict) else None, error)
    return checked


def _new(checked: list[Checked], session: Session, dry_run: bool,
         outcomes: list[dict[str, Any] | None]) -> list[Checked]:
    """The bills CareLoop does not hold yet; the others answered ``imported`` (this key, sent again) or
    ``present``."""
    held = {visit.bill_id: visit for visit in session.scalars(
        select(Visit).where(Visit.bill_id.in_({bill["bill_id"] for _p, bill, _t in checked})))} if checked else {}
    fresh, seen = [], set()
    for position, bill, totals in checked:
        visit = held.get(bill["bill_id"])
        if visit is None and bill["bill_id"] not in seen:
            seen.add(bill["bill_id"])
            fresh.append((position, bill, totals))
            continue
        again = visit is not None and visit.import_key == bill["key"] and not dry_run
        outcomes[position] = {"key": bill["key"], "status": "imported" if again else "present",
                              "visit_id": str(visit.id) if visit is not None else None,
                              "message": f"Bill {bill['bill_id']} is in CareLoop already."}
    return fresh


def _visit_row(member_id: uuid.UUID, bill: dict[str, Any], totals: lifecycle.BillTotals, earlier: bool,
               group: Group, now: datetime) -> dict[str, Any]:
    """The visit row of an imported bill; ``earlier``: the patient came before this bill (a return visit)."""
    completed_at, items = bill["completed_at"], bill["items"]
    day = local_date(completed_at, group.zone)
    return {
        "id": uuid.uuid4(), "member_id": member_id, "branch": bill["branch"], "doctor_id": bill.get("doctor_id"),
        "kind": bill.get("kind") or lifecycle.default_kind(earlier), "status": "completed", "bill_id": bill["bill_id"],
        "bill_hash": visits.bill_fingerprint({name: value for name, value in bill.items() if name != "key"}),
        "currency": bill["currency"], "total_minor": totals.total_minor, "qualifying_minor": totals.qualifying_minor,
        "refunded_minor": 0, "refunded_qualifying_minor": 0,
        "treatment": bill.get("treatment") or lifecycle.default_treatment(items),
        "outpatient_surgery": lifecycle.is_outpatient_surgery(bill.get("outpatient_surgery"), items),
        # what a live completion flags for points (a referrer's bonus on the first paid visit): history pays nobody
        "first_visit": False, "first_paid_visit": False, "referral_source": None,
        "visit_at": completed_at, "arrived_at": completed_at, "arrived_on": day, "completed_at": completed_at,
        "completed_on": day, "created_at": now, "updated_at": now, "import_key": bill["key"]}


def _store(session: Session, bills: list[tuple[int, Patient, dict[str, Any], lifecycle.BillTotals]], group: Group,
           now: datetime) -> dict[int, dict[str, Any]]:
    """The bills' visits and their lines, a multi-row insert each (bills of a patient in the order they were
    completed); the visits stored by position. A bill number taken since ``_new`` looked (the HIS sent the bill
    live a moment ago) is skipped by the insert and left out of the answer. Its visit is still counted as an
    earlier arrival of the bills after it: it is in CareLoop, and the patient's figures are recounted after."""
    rows: dict[int, dict[str, Any]] = {}
    first_arrived: dict[uuid.UUID, datetime | None] = {}
    for position, patient, bill, totals in bills:
        first = first_arrived.get(patient.member_id, patient.first_arrived_at)
        earlier = first is not None and first < bill["completed_at"]
        rows[position] = _visit_row(patient.member_id, bill, totals, earlier, group, now)
        if not earlier:
            first_arrived[patient.member_id] = bill["completed_at"]
    if not rows:
        return {}
    inserted = set(session.scalars(dialect_insert(session, Visit).on_conflict_do_nothing(index_elements=["bill_id"])
                                   .returning(Visit.id), list(rows.values())))
    stored = {position: row for position, row in rows.items() if row["id"] in inserted}
    by_position = {position: bill for position, _patient, bill, _totals in bills}
    items = [{"visit_id": row["id"], "category": item["category"], "code": item["code"],
              "amount_minor": item["amount_minor"]} for position, row in stored.items()
             for item in by_position[position]["items"]]
    payments = [{"visit_id": row["id"], "method": payment["method"], "amount_minor": payment["amount_minor"]}
                for position, row in stored.items() for payment in by_position[position]["payments"]]
    for model, lines in ((VisitItem, items), (VisitPayment, payments)):
        if lines:
            session.execute(insert(model), lines)
    return stored


def _patients(session: Session, member_ids: list[uuid.UUID],
              patient_of: PatientOf) -> dict[uuid.UUID, Patient | NotFound | Conflict | Invalid]:
    """The patient row of each of a batch's members (a merged member's: the survivor's), locked, or why there is
    none; the rows locked together, in member-id order (``patients.py``), by one statement. What a row found at once
    does not answer (an alias, a member not seen yet, a merge meanwhile) is ``patient_of``'s, member by member, as
    for a bill of its own: those found first without locking, so that every lock is taken in that one order."""
    aliased = set(session.scalars(select(MemberAlias.alias_id).where(MemberAlias.alias_id.in_(member_ids))))
    plain = {patient.member_id: patient for patient in session.scalars(
        select(Patient).where(Patient.member_id.in_([m for m in member_ids if m not in aliased])))}
    found: dict[uuid.UUID, Any] = {}
    for member_id in member_ids:
        patient = plain.get(member_id)
        if patient is None or patient.membership_status == "merged":
            try:
                patient = patient_of(member_id, lock=False)
            except (NotFound, Conflict, Invalid) as error:
                patient = error
        found[member_id] = patient
    held = {patient.member_id for patient in found.values() if isinstance(patient, Patient)}
    if held:
        session.scalars(select(Patient).where(Patient.member_id.in_(held)).order_by(Patient.member_id)
                        .with_for_update().execution_options(populate_existing=True)).all()
    for member_id, patient in found.items():
        if isinstance(patient, Patient) and patient.membership_status == "merged":  # merged while we waited
            try:
                found[member_id] = patient_of(member_id)
            except (NotFound, Conflict, Invalid) as error:
                found[member_id] = error
    return found


def imported_event(member_id: uuid.UUID, stored: list[dict[str, Any]], currency: str) -> dict[str, Any]:
    """``visits_imported`` (services/records/events.py) of a member's visits stored (``_visit_row``)."""
    return {"member_id": member_id, "currency": currency, "visits": [
        {"visit_id": visit["id"], "branch": visit["branch"], "kind": visit["kind"],
         "completed_at": visit["completed_at"], "qualifying_minor": visit["qualifying_minor"]} for visit in stored]}


def import_each(session: Session, rows: list[dict[str, Any]], group: Group, caller: Identity,
                patient_of: PatientOf, now: datetime,
                dry_run: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each row's outcome (in the order of ``rows``) and the ``visits_imported`` events to announce (none on a
    dry run). ``patient_of``: a member's patient row (``PatientOf``)."""
    outcomes: list[dict[str, Any] | None] = [None] * len(rows)
    fresh = _new(_check(rows, group, caller, now, outcomes), session, dry_run, outcomes)
    if dry_run:
        for position, bill, _totals in fresh:
            outcomes[position] = {"key": bill["key"], "status": "valid"}
        return [outcome for outcome in outcomes if outcome is not None], []
    by_member: dict[uuid.UUID, list[Checked]] = defaultdict(list)
    for position, bill, totals in fresh:
        by_member[bill["member_id"]].append((position, bill, totals))
    found: dict[uuid.UUID, Patient] = {}
    bills = []
    for member_id, patient in _patients(session, sorted(by_member), patient_of).items():
        if not isinstance(patient, Patient):
            for position, bill, _totals in by_member[member_id]:
                outcomes[position] = _refused(bill["key"], patient)
            continue
        found[patient.member_id] = patient
        bills += [(position, patient, bill, totals) for position, bill, totals
                  in sorted(by_member[member_id], key=lambda checked: checked[1]["completed_at"])]
    stored = _store(session, bills, group, now)
    by_patient: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for position, patient, bill, _totals in bills:
        visit = stored.get(position)
        if visit is None:
            outcomes[position] = {"key": bill["key"], "status": "present",
                                  "message": f"Bill {bill['bill_id']} is in CareLoop already."}
            continue
        by_patient[patient.member_id].append(visit)
        outcomes[position] = {"key": bill["key"], "status": "imported", "visit_id": str(visit["id"])}
    patients.recount_many(session, [patient for patient in found.values() if patient.member_id in by_patient])
    announced = [imported_event(member_id, by_patient[member_id], group.currency) for member_id in sorted(by_patient)]
    return [outcome for outcome in outcomes if outcome is not None], announced
