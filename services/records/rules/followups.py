"""Follow-up (callback, 回访) tasks: which calls a patient's state calls for, by whom, when. No I/O.

| state | queue (who calls) | due |
| --- | --- | --- |
| never came: left details or booked, never arrived | customer service | ``never_came_after_days`` after enrolment; the day after a missed appointment |
| came but was not treated | consultant | ``not_treated_call_after_days`` after the visit |
| in treatment | clinician (doctor or assistant) | ``in_treatment_call_after_days`` after each session |
| treatment interrupted: in treatment, no visit and no future appointment for ``interrupted_after_days`` | consultant | when found |
| outpatient surgery | consultant | day 1 and day 3 after |
| treatment finished | customer service | day 3 after (not when a day-3 surgery call is made anyway) |
| free clinic / event attendee | customer service | ``event_call_after_days`` after |

Queues are named for the job; the staff roles that work each queue are in ``QUEUE_ROLES`` (the
consultant queue is worked by customer service staff: "customer service / consultants" in SPEC).
Every task has a dedupe key: the same fact never yields a second task, however often it is seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from services.kit.errors import Invalid
from services.records.rules.practice import Practice

QUEUES = ("customer_service", "consultant", "clinician")
QUEUE_ROLES: dict[str, tuple[str, ...]] = {
    "customer_service": ("customer_service",),
    "consultant": ("customer_service",),
    "clinician": ("clinician",),
}
SUPERVISORS = ("branch_manager", "group_admin")  # see and work every queue of their branches
STATE_QUEUES = {
    "never_came": "customer_service",
    "not_treated": "consultant",
    "in_treatment": "clinician",
    "interrupted": "consultant",
    "outpatient_surgery": "consultant",
    "treatment_finished": "customer_service",
    "event_attendee": "customer_service",
}
JOURNEY = "journey"  # a call a composed journey (notifications) asked for, in the queue it names
STATES = (*STATE_QUEUES, JOURNEY)
OUTCOMES = ("reached", "appointment_booked", "no_answer", "call_back_later", "declined", "wrong_number",
            "do_not_contact")
RETRY_OUTCOMES = frozenset({"no_answer", "call_back_later"})
TASK_STATUSES = ("open", "done", "cancelled")


@dataclass(frozen=True)
class Task:
    state: str
    due_on: date
    dedupe_key: str
    queue_named: str | None = None  # a journey's task names its queue; the others' follow from their state
    note: str | None = None

    @property
    def queue(self) -> str:
        return self.queue_named or STATE_QUEUES[self.state]


def after_visit(visit_id: str, kind: str, treatment: str, surgery: bool, day: date, practice: Practice) -> list[Task]:
    """The calls a completed visit calls for (``day``: its local date)."""
    if kind in ("free_clinic", "event"):
        return [Task("event_attendee", day + timedelta(days=practice.event_call_after_days), f"event:{visit_id}")]
    tasks = []
    if surgery:
        tasks += [Task("outpatient_surgery", day + timedelta(days=after), f"surgery:{visit_id}:d{after}")
                  for after in practice.surgery_call_days]
    if treatment == "none":
        tasks.append(Task("not_treated", day + timedelta(days=practice.not_treated_call_after_days),
                          f"not_treated:{visit_id}"))
    elif treatment == "ongoing":
        tasks.append(Task("in_treatment", day + timedelta(days=practice.in_treatment_call_after_days),
                          f"in_treatment:{visit_id}"))
    elif treatment == "finished":
        due = day + timedelta(days=practice.finished_call_after_days)
        if not (surgery and any(day + timedelta(days=after) == due for after in practice.surgery_call_days)):
            tasks.append(Task("treatment_finished", due, f"finished:{visit_id}"))
    return tasks


def after_no_show(appointment_id: str, day: date, practice: Practice) -> list[Task]:
    """A missed appointment: customer service calls to find out and rebook."""
    return [Task("never_came", day + timedelta(days=practice.no_show_call_after_days), f"no_show:{appointment_id}")]


@dataclass(frozen=True)
class PatientState:
    """What the daily scan knows of a patient."""

    member_id: str
    enrolled_on: date | None
    has_arrived: bool
    treatment: str | None  # after the last completed visit
    last_visit_id: str | None
    last_visit_on: date | None
    has_future_appointment: bool


def from_state(patient: PatientState, today: date, practice: Practice) -> list[Task]:
    """The calls a patient's standing state calls for on ``today`` (the daily scan)."""
    tasks = []
    if (not patient.has_arrived and patient.enrolled_on is not None and not patient.has_future_appointment
            and patient.enrolled_on <= today - timedelta(days=practice.never_came_after_days)):
        tasks.append(Task("never_came", today, f"never_came:{patient.member_id}"))
    if (patient.treatment == "ongoing" and patient.last_visit_on is not None and not patient.has_future_appointment
            and patient.last_visit_on <= today - timedelta(days=practice.interrupted_after_days)):
        tasks.append(Task("interrupted", today, f"interrupted:{patient.last_visit_id}"))
    return tasks


def journey_task(queue: str, due_on: date, dedupe_key: str, note: str | None) -> Task:
    """A call a composed journey puts in ``queue`` (its dedupe key: the journey run and step)."""
    if queue not in QUEUES:
        raise Invalid(f"Unknown follow-up queue {queue!r}.", {"queue": [f"One of {', '.join(QUEUES)}."]})
    return Task(JOURNEY, due_on, dedupe_key, queue_named=queue, note=note)


def obsolete_on_arrival() -> tuple[str, ...]:
    """Open tasks a patient's arrival makes pointless."""
    return ("never_came",)


def obsolete_on_completion() -> tuple[str, ...]:
    """Open tasks (of earlier visits) that a newly completed visit makes pointless."""
    return ("never_came", "interrupted", "not_treated")


def overdue(status: str, due_on: date, today: date) -> bool:
    """An open task whose day has passed."""
    return status == "open" and due_on < today


def may_work(role: str, queue: str) -> bool:
    return role in SUPERVISORS or role in QUEUE_ROLES[queue]


def outcome_effect(outcome: str, retry_on: date | None, today: date) -> tuple[str, date | None]:
    """(status, new due date) after a call: done, or still open for another try on ``retry_on``."""
    if retry_on is None:
        return "done", None
    if outcome not in RETRY_OUTCOMES:
        raise Invalid(f"A retry date goes with {' or '.join(sorted(RETRY_OUTCOMES))}, not {outcome}.",
                      {"retry_on": ["Only for no_answer or call_back_later."]})
    if retry_on < today:
        raise Invalid("The retry date is in the past.", {"retry_on": ["Must be today or later."]})
    return "open", retry_on
