"""What members' lifecycle events mean for the clinical record: merges, their reversal, aliases, status.

**A closed membership keeps its health record.** Medical-records retention law outlives a membership:
closing it (even on an erasure request, which removes *membership* data in the members service) does
not erase visits, chart, profile, care plans, follow-ups or feedback here; they stay readable to
clinical roles, audited as ever. What closing stops is the future: booked appointments still to come
are cancelled (``appointment_cancelled`` with the reason, so reminders stop), open follow-up calls are
closed with outcome ``member_closed``, active care plans are closed (``care_plan_updated``, so recalls
stop), and no new booking is taken. A **frozen** membership keeps everything it has (appointments
included) but takes no new booking until it is active again.

**A merge** (``member_merged``) makes the duplicate's record part of the survivor's: its visits,
appointments, follow-ups, feedback and care plans are moved (a care plan whose recall type the survivor
already has stays on the duplicate, closed: one recall per type), the history of its chart and of its
profile is moved and renumbered after the survivor's, and the two current profiles and charts are
combined, by the system, as a new version of the survivor's (written in their history):
- list fields (history, allergies, family history, medication) are the union: every entry of either,
  none twice; nothing is dropped;
- the duplicate's notes are appended under a marker naming the merged member and the merge;
- a tooth charted on one only keeps that state; a tooth charted on both takes the state of the chart
  updated last (the later examination), and the other state stays readable in the moved history.
Every moved or closed row is written to ``merge_moves`` against the merge id, and the merged member's
profile and chart as they were are kept (encrypted) with the merge. Its id becomes an alias: calls and
events naming it apply to the survivor. The merge is audited on both members, the system as actor.

**A reversal** (``member_unmerged``) puts back exactly the rows that merge moved (with their own
version numbers) and reopens the plans it closed; what was written for the survivor since stays with the
survivor. The merged member gets its own profile and chart back as kept at merge time. The survivor
keeps what it had and what was written since, and loses what the merge brought in (entries added by the
union, the appended notes block, teeth the merge set) where it is still as the merge left it: a reversed
merge means two people, and one person's allergies or teeth must not stay in the other's record. What a
clinician changed since the merge is kept and stays in both histories. The alias goes.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from services.kit.aliases import follow
from services.kit.caller import Identity
from services.kit.clock import isoformat
from services.kit.config import Group
from services.kit.db import dialect_insert
from services.kit.errors import Conflict
from services.records import audit, bookings, patients, profiles
from services.records.models import (
    Appointment,
    CarePlan,
    ChartChange,
    DentalChart,
    Feedback,
    FollowUp,
    HealthProfile,
    HealthProfileRevision,
    MemberAlias,
    MergeMove,
    Patient,
    RecordMerge,
    Visit,
)
from services.records.rules import fdi

SYSTEM = Identity.service("records")
MOVED_TABLES = {model.__tablename__: model for model in (Visit, Appointment, FollowUp, Feedback, CarePlan,
                                                          ChartChange, HealthProfileRevision)}
NOTES_MARKER = "--- From the record of merged member {merged_id} (merge {merge_id}, {on}) ---"


_ALIAS_OF = select(MemberAlias.member_id).where(MemberAlias.alias_id == bindparam("alias"))


def resolve(session: Session, member_id: Any) -> uuid.UUID:
    """The member an id names in the records: the survivor for a merged member's id."""
    return follow(lambda current: session.scalar(_ALIAS_OF, {"alias": current}),
                  patients.parse_member_id(member_id))[-1]


def _insert_patient(session: Session, member_id: uuid.UUID, now: datetime) -> None:
    session.execute(dialect_insert(session, Patient).values(member_id=member_id, completed_visits=0, paid_visits=0, created_at=now)
                    .on_conflict_do_nothing(index_elements=["member_id"]))


def patient_of(session: Session, member_id: uuid.UUID, now: datetime) -> Patient:
    """The patient row (locked), created without asking members: the id comes from members' own event."""
    _insert_patient(session, member_id, now)
    return patients.get(session, member_id, lock=True)


# --- status --------------------------------------------------------------------------------------


def check_may_book(status: str | None) -> None:
    """A frozen or closed membership takes no new booking (``Conflict`` naming the status)."""
    if status == "frozen":
        raise Conflict("This membership is frozen; no new appointments can be booked until it is active again.")
    if status == "closed":
        raise Conflict("This membership is closed; no new appointments can be booked.")


@dataclass
class Closure:
    """What closing a membership stopped: for the events the service announces."""

    appointments: list[Appointment] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    plans: list[CarePlan] = field(default_factory=list)
    follow_ups: int = 0


def change_status(session: Session, member_id: uuid.UUID, to_status: str, reason: str, group: Group,
                  now: datetime) -> Closure:
    """Apply ``member_status_changed``; on ``closed``, stop what was still to come (see the docstring)."""
    patient = patient_of(session, member_id, now)  # the member named, not an alias's
    patient.membership_status = to_status
    closure = Closure()
    if to_status != "closed":
        return closure
    why = f"member_closed: {reason}"
    for appointment in bookings.upcoming(session, patient.member_id, now):
        changed, visit = bookings.move(session, appointment, patient, "cancelled", group, now, why)
        if changed:
            closure.appointments.append(appointment)
        if visit is not None:
            closure.visits.append(visit)
    for task in list(session.scalars(select(FollowUp).where(FollowUp.member_id == patient.member_id,
                                                            FollowUp.status == "open"))):
        task.status, task.outcome, task.closed_at, task.closed_by, task.updated_at = (
            "cancelled", "member_closed", now, "records", now)
        closure.follow_ups += 1
    for plan in list(session.scalars(select(CarePlan).where(CarePlan.member_id == patient.member_id,
                                                            CarePlan.status == "active"))):
        plan.status, plan.updated_at, plan.updated_by = "closed", now, "records"
        plan.version += 1
        closure.plans.append(plan)
    return closure


# --- merge ---------------------------------------------------------------------------------------


@dataclass
class MergeOutcome:
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    counts: Counter = field(default_factory=Counter)
    plans: list[CarePlan] = field(default_factory=list)  # closed or reopened: their recalls change


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _locked_pair(session: Session, survivor_id: uuid.UUID, merged_id: uuid.UUID,
                 now: datetime) -> tuple[Patient, Patient]:
    for member_id in sorted((survivor_id, merged_id)):  # one lock order: never a deadlock with a twin
        patient_of(session, member_id, now)
    return patients.get(session, survivor_id, lock=True), patients.get(session, merged_id, lock=True)


def _move(session: Session, merge_id: str, row: Any, to: uuid.UUID, counts: Counter,
          new_version: int | None = None) -> None:
    original = None
    if new_version is not None:
        original, row.version = row.version, new_version
    row.member_id = to
    session.add(MergeMove(merge_id=merge_id, table_name=row.__tablename__, row_id=str(row.id), action="moved",
                          original_version=original))
    counts[row.__tablename__] += 1


def profile_union(survivor: dict[str, Any], merged: dict[str, Any], marker: str) -> tuple[dict, dict]:
    """(the combined profile, what the merged one brought in that the survivor did not have)."""
    combined, brought = dict(survivor), {}
    for name in profiles.LIST_FIELDS:
        added = [entry for entry in merged[name] if entry not in survivor[name]]
        combined[name] = survivor[name] + [e for i, e in enumerate(added) if e not in added[:i]]
        brought[name] = combined[name][len(survivor[name]):]
    brought["notes"] = None
    if merged["notes"]:
        block = f"{marker}\n{merged['notes']}"
        combined["notes"] = f"{survivor['notes']}\n\n{block}" if survivor["notes"] else block
        brought["notes"] = block
    return combined, brought


def chart_union(survivor: dict[str, dict], merged: dict[str, dict], merged_is_newer: bool) -> tuple[dict, dict]:
    """(the combined chart, the teeth the merge set: ``{tooth: {"before", "after"}}``)."""
    combined, brought = dict(survivor), {}
    for tooth, state in merged.items():
        if tooth not in survivor or (state != survivor[tooth] and merged_is_newer):
            brought[tooth] = {"before": survivor.get(tooth), "after": state}
            combined[tooth] = state
    return combined, brought


def _save_profile(session: Session, member_id: uuid.UUID, contents: dict[str, Any], version: int,
                  changed: list[str], by: str, now: datetime) -> None:
    profile = session.get(HealthProfile, member_id)
    if profile is None:
        profile = HealthProfile(member_id=member_id)
        session.add(profile)
    for name in profiles.FIELDS:
        setattr(profile, name, _json(contents[name]) if name in profiles.LIST_FIELDS else contents[name])
    profile.version, profile.updated_at, profile.updated_by = version, now, by
    session.add(HealthProfileRevision(id=uuid.uuid4(), member_id=member_id, version=version,
                                      snapshot=_json(contents), changed=",".join(changed)[:200], changed_at=now,
                                      changed_by=by, changed_by_role=SYSTEM.role))


def _save_chart(session: Session, member_id: uuid.UUID, teeth: dict[str, Any], version: int,
                changes: list[dict[str, Any]], by: str, now: datetime) -> None:
    chart = session.get(DentalChart, member_id)
    if chart is None:
        chart = DentalChart(member_id=member_id)
        session.add(chart)
    chart.teeth, chart.version, chart.updated_at, chart.updated_by = (
        json.dumps(teeth, separators=(",", ":")), version, now, by)
    session.add(ChartChange(id=uuid.uuid4(), member_id=member_id, version=version,
                            changes=json.dumps(changes, separators=(",", ":")), visit_id=None, changed_at=now,
                            changed_by=by, changed_by_role=SYSTEM.role))


def _tooth_changes(before: dict[str, Any], after: dict[str, Any], teeth: list[str]) -> list[dict[str, Any]]:
    changes = []
    for tooth in sorted(teeth, key=int):
        changes += fdi.diff(int(tooth), {**fdi.EMPTY, **before.get(tooth, {})}, {**fdi.EMPTY, **after.get(tooth, {})})
    return changes


def _history(session: Session, model: Any, member_id: uuid.UUID) -> list[Any]:
    return list(session.scalars(select(model).where(model.member_id == member_id).order_by(model.version)))


def merge(session: Session, survivor_id: uuid.UUID, merged_id: uuid.UUID, merge: uuid.UUID,
          now: datetime) -> MergeOutcome | None:
    """Apply ``member_merged``; None if this merge was applied before (see the module's docstring)."""
    merge_id = str(merge)
    if session.get(RecordMerge, merge_id) is not None:
        return None
    survivor_id = resolve(session, survivor_id)
    survivor, merged = _locked_pair(session, survivor_id, merged_id, now)
    outcome, by = MergeOutcome(survivor_id, merged_id), f"records:merge {merge_id}"[:80]
    record = RecordMerge(merge_id=merge_id, survivor_id=survivor_id, merged_id=merged_id, status="merged",
                         merged_at=now, merged_before="{}", brought="{}")
    session.add(record)
    session.flush()  # the merge row before the moves that name it

    for model in (Visit, Appointment, FollowUp, Feedback):
        for row in list(session.scalars(select(model).where(model.member_id == merged_id).with_for_update())):
            _move(session, merge_id, row, survivor_id, outcome.counts)
    survivor_recalls = set(session.scalars(select(CarePlan.recall_type).where(CarePlan.member_id == survivor_id)))
    for plan in list(session.scalars(select(CarePlan).where(CarePlan.member_id == merged_id).with_for_update())):
        if plan.recall_type not in survivor_recalls:
            _move(session, merge_id, plan, survivor_id, outcome.counts)
        elif plan.status == "active":  # one recall per type: the survivor's stays in force
            plan.status, plan.updated_at, plan.updated_by = "closed", now, by
            session.add(MergeMove(merge_id=merge_id, table_name=CarePlan.__tablename__, row_id=str(plan.id),
                                  action="closed"))
            outcome.plans.append(plan)

    # the two current profiles and charts: the duplicate's kept as it was, the survivor's combined
    merged_profile = profiles.contents(session.get(HealthProfile, merged_id))
    survivor_profile_row = session.get(HealthProfile, survivor_id)
    merged_chart_row, survivor_chart_row = session.get(DentalChart, merged_id), session.get(DentalChart, survivor_id)
    merged_teeth = json.loads(merged_chart_row.teeth) if merged_chart_row else {}
    survivor_teeth = json.loads(survivor_chart_row.teeth) if survivor_chart_row else {}
    record.merged_before = _json({"profile": merged_profile, "teeth": merged_teeth,
                                  "status": merged.membership_status})

    version = survivor_profile_row.version if survivor_profile_row else 0
    revisions = _history(session, HealthProfileRevision, merged_id)
    for offset, row in enumerate(revisions, start=1):
        _move(session, merge_id, row, survivor_id, outcome.counts, new_version=version + offset)
    marker = NOTES_MARKER.format(merged_id=merged_id, merge_id=merge_id, on=isoformat(now)[:10])
    survivor_profile = profiles.contents(survivor_profile_row)
    combined, brought_profile = profile_union(survivor_profile, merged_profile, marker)
    if revisions or combined != survivor_profile:
        changed = [name for name in profiles.FIELDS if combined[name] != survivor_profile[name]]
        _save_profile(session, survivor_id, combined, version + len(revisions) + 1, changed, by, now)

    version = survivor_chart_row.version if survivor_chart_row else 0
    changes = _history(session, ChartChange, merged_id)
    for offset, row in enumerate(changes, start=1):
        _move(session, merge_id, row, survivor_id, outcome.counts, new_version=version + offset)
    merged_is_newer = merged_chart_row is not None and (
        survivor_chart_row is None or merged_chart_row.updated_at > survivor_chart_row.updated_at)
    teeth, brought_teeth = chart_union(survivor_teeth, merged_teeth, merged_is_newer)
    if changes or brought_teeth:
        _save_chart(session, survivor_id, teeth, version + len(changes) + 1,
                    _tooth_changes(survivor_teeth, teeth, list(brought_teeth)), by, now)
    record.brought = _json({"profile": brought_profile, "teeth": brought_teeth})

    session.add(MemberAlias(alias_id=merged_id, member_id=survivor_id, merge_id=merge_id, created_at=now))
    merged.membership_status = "merged"
    patients.recount(session, survivor)
    patients.recount(session, merged)
    detail = "moved: " + ", ".join(f"{table} {n}" for table, n in sorted(outcome.counts.items()))
    for member_id in (survivor_id, merged_id):
        session.add(audit.entry(SYSTEM, "write", "record", member_id, f"member_merged {merge_id}", "granted",
                                resource_id=merge_id[:64], detail=detail, at=now))
    return outcome


def unmerge(session: Session, merge: uuid.UUID, now: datetime) -> MergeOutcome | None:
    """Apply ``member_unmerged``: put back what that merge moved; None if there is nothing to reverse."""
    merge_id = str(merge)
    record = session.scalars(select(RecordMerge).where(RecordMerge.merge_id == merge_id).with_for_update()).first()
    if record is None or record.status != "merged":
        return None
    survivor, merged = _locked_pair(session, record.survivor_id, record.merged_id, now)
    outcome, by = MergeOutcome(record.survivor_id, record.merged_id), f"records:unmerge {merge_id}"[:80]
    for move in list(session.scalars(select(MergeMove).where(MergeMove.merge_id == merge_id).order_by(MergeMove.id))):
        model = MOVED_TABLES[move.table_name]
        row = session.get(model, uuid.UUID(move.row_id), with_for_update=True)
        if row is None:  # pragma: no cover - clinical rows are never deleted
            continue
        if move.action == "closed":
            if row.status == "closed":
                row.status, row.updated_at, row.updated_by = "active", now, by
                outcome.plans.append(row)
            continue
        row.member_id = record.merged_id
        if move.original_version is not None:
            row.version = move.original_version
        outcome.counts[move.table_name] += 1

    before, brought = json.loads(record.merged_before), json.loads(record.brought)
    _give_back_profile(session, record.merged_id, before["profile"])
    _give_back_chart(session, record.merged_id, before["teeth"])
    _take_out_profile(session, record.survivor_id, brought["profile"], by, now)
    _take_out_teeth(session, record.survivor_id, brought["teeth"], by, now)

    session.execute(delete(MemberAlias).where(MemberAlias.merge_id == merge_id))
    record.status, record.unmerged_at = "unmerged", now
    merged.membership_status = before.get("status") or "active"
    patients.recount(session, survivor)
    patients.recount(session, merged)
    detail = "moved back: " + ", ".join(f"{table} {n}" for table, n in sorted(outcome.counts.items()))
    for member_id in (record.survivor_id, record.merged_id):
        session.add(audit.entry(SYSTEM, "write", "record", member_id, f"member_unmerged {merge_id}", "granted",
                                resource_id=merge_id[:64], detail=detail, at=now))
    return outcome


def _give_back_profile(session: Session, member_id: uuid.UUID, contents: dict[str, Any]) -> None:
    """The merged member's own profile as kept at merge time (its row was out of reach meanwhile)."""
    profile = session.get(HealthProfile, member_id)
    if profile is not None:
        for name in profiles.FIELDS:
            setattr(profile, name, _json(contents[name]) if name in profiles.LIST_FIELDS else contents[name])


def _give_back_chart(session: Session, member_id: uuid.UUID, teeth: dict[str, Any]) -> None:
    chart = session.get(DentalChart, member_id)
    if chart is not None:
        chart.teeth = json.dumps(teeth, separators=(",", ":"))


def _take_out_profile(session: Session, member_id: uuid.UUID, brought: dict[str, Any], by: str,
                      now: datetime) -> None:
    profile = session.get(HealthProfile, member_id)
    if profile is None:
        return
    current = profiles.contents(profile)
    after = dict(current)
    for name in profiles.LIST_FIELDS:
        after[name] = [entry for entry in current[name] if entry not in brought.get(name, [])]
    block = brought.get("notes")
    if block and current["notes"] and block in current["notes"]:
        after["notes"] = current["notes"].replace(f"\n\n{block}", "").replace(block, "") or None
    changed = [name for name in profiles.FIELDS if after[name] != current[name]]
    if changed:
        _save_profile(session, member_id, after, profile.version + 1, changed, by, now)


def _take_out_teeth(session: Session, member_id: uuid.UUID, brought: dict[str, Any], by: str,
                    now: datetime) -> None:
    chart = session.get(DentalChart, member_id)
    if chart is None or not brought:
        return
    current = json.loads(chart.teeth)
    after = dict(current)
    for tooth, change in brought.items():
        if current.get(tooth) == change["after"]:  # as the merge left it: a later charting stays
            if change["before"] is None:
                after.pop(tooth, None)
            else:
                after[tooth] = change["before"]
    touched = [tooth for tooth in brought if after.get(tooth) != current.get(tooth)]
    if touched:
        _save_chart(session, member_id, after, chart.version + 1, _tooth_changes(current, after, touched), by, now)
