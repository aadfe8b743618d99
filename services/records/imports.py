"""Historical visits brought from a clinic group's old system (imports, issue 19): each bill a completed visit
with its items and payments, stored once and marked as imported.

A batch comes in one call (``RecordsService.import_visits``). Each bill is checked on its own by the rules a
live bill meets (``ImportedBillSchema``, the group's branches and currency, payments adding up to the items,
no completion in the future) and stored in a savepoint of its own, so a bad bill leaves the others be. The
import's key for the bill (``import:<job>:<bill>``) is kept on its visit: the same key again (a batch sent
again, a job resumed after a crash) answers ``imported`` as the first time; a bill number CareLoop already
holds otherwise (a second import of the same file, or the HIS sent the bill live) answers ``present``.

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

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.clock import local_date
from services.kit.config import Group
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from services.kit.schemas import load
from services.records import patients, visits
from services.records.models import Patient, Visit, VisitItem, VisitPayment
from services.records.rules import lifecycle
from services.records.schemas import ImportedBillSchema

Checked = tuple[int, dict[str, Any], lifecycle.BillTotals]  # position in the batch, the bill, its totals


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


def _store(session: Session, patient: Patient, bill: dict[str, Any], totals: lifecycle.BillTotals, group: Group,
           now: datetime) -> Visit:
    completed_at, items = bill["completed_at"], bill["items"]
    day = local_date(completed_at, group.zone)
    earlier = patient.first_arrived_at is not None and patient.first_arrived_at < completed_at
    visit = Visit(
        id=uuid.uuid4(), member_id=patient.member_id, branch=bill["branch"], doctor_id=bill.get("doctor_id"),
        kind=bill.get("kind") or lifecycle.default_kind(earlier), status="completed", bill_id=bill["bill_id"],
        bill_hash=visits.bill_fingerprint({name: value for name, value in bill.items() if name != "key"}),
        currency=bill["currency"], total_minor=totals.total_minor, qualifying_minor=totals.qualifying_minor,
        refunded_minor=0, refunded_qualifying_minor=0,
        treatment=bill.get("treatment") or lifecycle.default_treatment(items),
        outpatient_surgery=lifecycle.is_outpatient_surgery(bill.get("outpatient_surgery"), items),
        # what a live completion flags for points (a referrer's bonus on the first paid visit): history pays nobody
        first_visit=False, first_paid_visit=False,
        visit_at=completed_at, arrived_at=completed_at, arrived_on=day, completed_at=completed_at, completed_on=day,
        created_at=now, updated_at=now, import_key=bill["key"])
    session.add(visit)
    session.flush()  # the visit row before its lines; a bill id taken meanwhile fails here
    session.add_all([VisitItem(visit_id=visit.id, category=item["category"], code=item["code"],
                               amount_minor=item["amount_minor"]) for item in items])
    session.add_all([VisitPayment(visit_id=visit.id, method=payment["method"], amount_minor=payment["amount_minor"])
                     for payment in bill["payments"]])
    session.flush()
    if not earlier:
        patient.first_arrived_at = completed_at
    return visit


def imported_event(member_id: uuid.UUID, stored: list[Visit], currency: str) -> dict[str, Any]:
    """``visits_imported`` (services/records/events.py)."""
    return {"member_id": member_id, "currency": currency, "visits": [
        {"visit_id": visit.id, "branch": visit.branch, "kind": visit.kind, "completed_at": visit.completed_at,
         "qualifying_minor": visit.qualifying_minor} for visit in stored]}


def import_each(session: Session, rows: list[dict[str, Any]], group: Group, caller: Identity,
                patient_of: Callable[[Any], Patient], now: datetime,
                dry_run: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each row's outcome (in the order of ``rows``) and the ``visits_imported`` events to announce (none on a
    dry run). ``patient_of``: a member's patient row, locked (created after asking members if need be)."""
    outcomes: list[dict[str, Any] | None] = [None] * len(rows)
    fresh = _new(_check(rows, group, caller, now, outcomes), session, dry_run, outcomes)
    if dry_run:
        for position, bill, _totals in fresh:
            outcomes[position] = {"key": bill["key"], "status": "valid"}
        return [outcome for outcome in outcomes if outcome is not None], []
    by_member: dict[uuid.UUID, list[Checked]] = defaultdict(list)
    for position, bill, totals in fresh:
        by_member[bill["member_id"]].append((position, bill, totals))
    announced = []
    for member_id in sorted(by_member):  # patients locked in one order (patients.py)
        bills = sorted(by_member[member_id], key=lambda checked: checked[1]["completed_at"])
        try:
            patient = patient_of(member_id)
        except (NotFound, Conflict, Invalid) as error:
            for position, bill, _totals in bills:
                outcomes[position] = _refused(bill["key"], error)
            continue
        stored = []
        for position, bill, totals in bills:
            try:
                with session.begin_nested():
                    visit = _store(session, patient, bill, totals, group, now)
            except IntegrityError:  # the HIS sent this bill live a moment ago
                outcomes[position] = {"key": bill["key"], "status": "present",
                                      "message": f"Bill {bill['bill_id']} is in CareLoop already."}
                continue
            stored.append(visit)
            outcomes[position] = {"key": bill["key"], "status": "imported", "visit_id": str(visit.id)}
        if stored:
            patients.recount(session, patient)
            announced.append(imported_event(patient.member_id, stored, group.currency))
    return [outcome for outcome in outcomes if outcome is not None], announced
