"""Staff alerts about negative feedback: which feedback is negative, whom to alert, on which channel, when. No I/O.

Negative is a complaint, a satisfaction of ``dissatisfied`` or ``very_dissatisfied``, or an NPS of 0–6
(detractors). An urgent complaint must be answered within 30 minutes (SPEC), so it alerts every
configured address on every channel at once, quiet hours or not: these are operational messages to
staff, not marketing to members. Other negative feedback alerts by e-mail only, at once during the
group's working hours — the hours outside the members' quiet hours (``NOTIFICATIONS_QUIET_HOURS``, one
rule for the group's night) — else the next morning when they end.

An alert carries the feedback id, branch, kind, scores, urgency and the gateway path of the feedback
(``/v1/feedback/<id>``), never a comment, a name or a phone: staff open the feedback to see the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.kit.clock import as_utc
from services.kit.config import BranchAlerts
from services.notifications.rules.sending import QuietHours

JOURNEY = "feedback_alert"  # the template name and the journey label on its deliveries and metrics
NEGATIVE_SATISFACTION = ("dissatisfied", "very_dissatisfied")
NPS_DETRACTOR_MAX = 6  # NPS 0-6 are detractors, 7-8 passives, 9-10 promoters
NO_RECIPIENT = "no_recipient"  # the branch has nobody to alert in the group file
SAMPLE = {"feedback_id": "3f0c2a9e-0000-4000-8000-000000000001", "branch": "SH01", "kind": "complaint",
          "satisfaction": "very_dissatisfied", "nps": 2, "urgent": True,
          "path": "/v1/feedback/3f0c2a9e-0000-4000-8000-000000000001"}


@dataclass(frozen=True)
class Feedback:
    """The facts of a ``feedback_submitted`` event that the rule reads."""

    feedback_id: str
    branch: str
    kind: str  # survey or complaint
    satisfaction: str | None
    nps: int | None
    urgent: bool

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Feedback:
        """Records' ``feedback_submitted`` in domain values."""
        return cls(feedback_id=str(event["feedback_id"]), branch=event["branch"], kind=event["kind"],
                   satisfaction=event["satisfaction"], nps=event["nps"], urgent=event["urgent"])

    @property
    def urgent_complaint(self) -> bool:
        return self.kind == "complaint" and self.urgent


@dataclass(frozen=True)
class Alert:
    """One alert to queue: one staff address on one channel, due at ``due_at``."""

    channel: str
    address: str
    due_at: datetime


def is_negative(feedback: Feedback) -> bool:
    """A complaint, a dissatisfied answer or a detractor's NPS."""
    if feedback.kind == "complaint":
        return True
    if feedback.satisfaction in NEGATIVE_SATISFACTION:
        return True
    return feedback.nps is not None and feedback.nps <= NPS_DETRACTOR_MAX


def alerts_for(feedback: Feedback, recipients: BranchAlerts, now: datetime, quiet: QuietHours,
               zone: ZoneInfo) -> list[Alert]:
    """The alerts a feedback calls for (none if it is not negative or nobody is configured)."""
    if not is_negative(feedback):
        return []
    if feedback.urgent_complaint:
        due = as_utc(now)
        return [Alert(channel, address, due) for channel, addresses in (("email", recipients.email),
                                                                         ("sms", recipients.sms))
                for address in addresses]
    due = quiet.release(now, zone)
    return [Alert("email", address, due) for address in recipients.email]


def needs_recipient(feedback: Feedback, recipients: BranchAlerts) -> bool:
    """Negative feedback that nobody can be told about: to be recorded as suppressed (``no_recipient``)."""
    if not is_negative(feedback):
        return False
    return not (recipients.email or (feedback.urgent_complaint and recipients.sms))


def context_of(feedback: Feedback) -> dict[str, Any]:
    """What the template shows: ids, scores and the gateway path; nothing that names the member."""
    return {"feedback_id": feedback.feedback_id, "branch": feedback.branch, "kind": feedback.kind,
            "satisfaction": feedback.satisfaction, "nps": feedback.nps, "urgent": feedback.urgent_complaint,
            "path": f"/v1/feedback/{feedback.feedback_id}"}
