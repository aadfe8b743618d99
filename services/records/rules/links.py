"""What a patient's confirm or cancel link does to an appointment as it is now. No I/O.

A link acts once (its nonce is kept: ``records/links.py``); this rule says what its one use does. Asking
for what is already so (confirm a confirmed appointment, cancel a cancelled one) is "already done" and
changes nothing; asking for what can no longer be (confirm a cancelled one, anything once it has started)
is refused with a message the patient can act on.
"""

from __future__ import annotations

from datetime import datetime

from services.kit.errors import Conflict, Gone, Invalid

CONFIRM, CANCEL = "confirm", "cancel"
ACTIONS = (CONFIRM, CANCEL)
CONFIRMED, CANCELLED, ALREADY_DONE = "confirmed", "cancelled", "already_done"
OUTCOMES = (CONFIRMED, CANCELLED, ALREADY_DONE)

CALL_US = "Please call the clinic."


def decide(action: str, status: str, confirmed: bool, starts_at: datetime, now: datetime) -> str:
    """The outcome of using an ``action`` link on an appointment in ``status`` (``confirmed``: said so before)."""
    if action not in ACTIONS:
        raise Invalid(f"Unknown link action {action!r}.", {"action": [f"One of {', '.join(ACTIONS)}."]})
    if now >= starts_at:
        raise Gone(f"This appointment has already started; the link no longer works. {CALL_US}")
    if action == CONFIRM:
        if status == "booked":
            return ALREADY_DONE if confirmed else CONFIRMED
        if status == "cancelled":
            raise Conflict(f"This appointment was cancelled, so it cannot be confirmed. {CALL_US}")
    else:
        if status == "booked":
            return CANCELLED
        if status == "cancelled":
            return ALREADY_DONE
    raise Conflict(f"This appointment is {status.replace('_', ' ')}; the link no longer changes it. {CALL_US}")
