"""How the group's clinics work: the records service's defaults, in one place. No I/O.

Every number here is a *default* of the shipped programme (SPEC.md); a group overrides any of them
in the service config under ``RECORDS_PRACTICE`` (e.g. ``{"urgent_response_minutes": 20}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from services.kit.errors import Invalid


@dataclass(frozen=True)
class Practice:
    # care plans
    recall_interval_months: int = 6  # SPEC: recall at the care-plan interval, default 6 months

    # complaints: time to a first answer
    urgent_response_minutes: int = 30  # SPEC: urgent complaints answered within 30 minutes
    complaint_response_hours: int = 24  # other complaints: within a working day

    # follow-up (callback) tasks: days after the fact that the call is due
    no_show_call_after_days: int = 1  # a missed appointment: customer service calls the next day
    never_came_after_days: int = 3  # enrolled (left details) but no arrival after this many days
    not_treated_call_after_days: int = 1  # came but was not treated: the consultant calls the next day
    in_treatment_call_after_days: int = 2  # between sessions: the doctor or assistant checks in
    interrupted_after_days: int = 30  # in treatment, no visit and no future appointment for this long
    surgery_call_days: tuple[int, ...] = (1, 3)  # SPEC: outpatient surgery, day 1 and day 3
    finished_call_after_days: int = 3  # SPEC: treatment finished, day 3
    event_call_after_days: int = 1  # free clinic / event attendee

    # the waitlist (waitlist.py): a cancelled slot is offered to this many waiting patients at once, first to
    # accept gets it; an offer not taken within this many hours lapses
    waitlist_offers_per_slot: int = 3
    waitlist_offer_hours: int = 4  # and never past the slot's start
    # a freed slot is offered only if it is at most this many local days ahead (the branch's booking horizon:
    # a slot further out is for ordinary booking); a branch may have its own (``{"SH01": 7}``)
    waitlist_horizon_days: int = 14
    waitlist_horizon_days_by_branch: dict[str, int] = field(default_factory=dict)

    # the full record read
    record_visits: int = 200  # visits returned with a member's full record (newest first; then paged)

    # the cross-service visit audit (visit_audit.py)
    audit_settle_minutes: int = 10  # visits completed or refunded this recently may still be in flight: left out
    audit_lookback_days: int = 35  # the nightly run (and a run without ``since``) audits visits completed since
    audit_nightly_hour: int = 3  # local hour from which the night's run starts (checked hourly)
    audit_batch: int = 500  # visits per page: one call to points and one to members per page

    def waitlist_horizon(self, branch: str) -> int:
        """How many local days ahead a freed slot of ``branch`` is still offered to the waitlist."""
        return int(self.waitlist_horizon_days_by_branch.get(branch, self.waitlist_horizon_days))


DEFAULT_PRACTICE = Practice()


def practice_from_config(config: dict[str, Any]) -> Practice:
    """The defaults with the overrides of ``RECORDS_PRACTICE`` in the service config."""
    overrides = dict(config.get("RECORDS_PRACTICE") or {})
    known = {field.name for field in fields(Practice)}
    unknown = set(overrides) - known
    if unknown:
        raise Invalid(f"Unknown RECORDS_PRACTICE settings: {', '.join(sorted(unknown))}.")
    if "surgery_call_days" in overrides:
        overrides["surgery_call_days"] = tuple(overrides["surgery_call_days"])
    return replace(DEFAULT_PRACTICE, **overrides)
