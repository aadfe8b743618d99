"""Who may see what of a patient's record. No I/O.

Health data (the health profile with allergies and medication, the dental chart and its history,
care-plan content, the full record) goes to clinical roles only: clinicians, and the group's HIS/EMR
(API keys of role ``integration``, the clinics' system of record), and to CareLoop services. Every
other role is refused in the service, whatever the gateway let through, and the refusal is audited.
Each access names why (``reason``), which the audit trail keeps.

Administrative data (visits and their bills, appointments, follow-up tasks, feedback) goes to the
staff who run the clinics; branch-bound work (queues, KPIs, bookings) to the caller's own branches.
"""

from __future__ import annotations

from services.kit.caller import CLINICAL_ROLES, Identity
from services.kit.errors import Forbidden, Invalid

HEALTH_ROLES = CLINICAL_ROLES | {"integration"}
STAFF_ROLES = ("group_admin", "branch_manager", "front_desk", "clinician", "customer_service", "integration")
VISIT_WRITERS = ("group_admin", "branch_manager", "front_desk", "clinician", "integration")
BOOKERS = ("group_admin", "branch_manager", "front_desk", "clinician", "customer_service", "integration")
SCHEDULERS = ("group_admin", "branch_manager", "front_desk")
FEEDBACK_TAKERS = ("group_admin", "branch_manager", "front_desk", "customer_service", "integration")
COMPLAINT_HANDLERS = ("group_admin", "branch_manager", "customer_service")
KPI_READERS = ("group_admin", "branch_manager")
AUDITORS = ("auditor",)
VISIT_AUDITORS = ("group_admin", "auditor")  # the cross-service visit audit (ops)
EXPORTERS = ("group_admin", "integration")  # visits for the group's data warehouse (as members are)
EXPORT_REVEALERS = ("integration",)  # who gets an export's doctor and referral source in full (kit.exports)
SCAN_RUNNERS = ("group_admin",)  # the follow-up scan, by hand (the hourly timer runs it as the service)
IMPORTERS = ("group_admin", "branch_manager")  # historical visits from an old system (interfaces calls as a service)
MIN_REASON, MAX_REASON = 3, 200


def may_see_health_data(caller: Identity) -> bool:
    return caller.kind == "service" or caller.role in HEALTH_ROLES


def refusal(caller: Identity) -> Forbidden:
    return Forbidden(f"Health records are for clinical staff; your role ({caller.role}) may not see or change "
                     "them. This attempt has been recorded.")


def check_reason(reason: object) -> str:
    """Why the caller opens the record (kept in the audit trail): 3–200 characters."""
    text = " ".join(reason.split()) if isinstance(reason, str) else ""
    if not MIN_REASON <= len(text) <= MAX_REASON:
        raise Invalid("Say why you open this record (a reason of 3 to 200 characters, e.g. \"treatment\").",
                      {"reason": ["A reason of 3 to 200 characters is required."]})
    return text


def branches_of(caller: Identity, wanted: str | None, every: tuple[str, ...]) -> tuple[str, ...]:
    """The branches a list or KPI covers: ``wanted`` if the caller may see it, else all of theirs."""
    if wanted is not None:
        caller.require_branch(wanted, "see this branch")
        return (wanted,)
    if caller.kind == "service" or caller.all_branches:
        return every
    return tuple(branch for branch in every if branch in caller.branches)
