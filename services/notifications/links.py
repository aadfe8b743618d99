"""The confirm and cancel links of an appointment's confirmation and reminders (``kit.links`` tokens).

Made when a message is rendered, never stored with it (a token acts without a login): one pair per message,
each with its own nonce (the delivery id and the action), expiring at the appointment's start. Records
verifies and acts (``records.use_appointment_link``); the gateway serves them at ``/a/<token>``. No
links without both the secret (``APPOINTMENT_LINK_SECRET``) and ``PUBLIC_BASE_URL``: a relative link in an
SMS leads nowhere.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from services.kit import links
from services.kit.clock import as_utc
from services.notifications.settings import Settings

LINK_PATH = "/a/"
"""The gateway's route for a link (``gateway/routes/links.py``)."""

LINK_JOURNEYS = ("appointment_confirmation", "appointment_reminder")
ACTIONS = {"confirm": "c", "cancel": "x"}  # action -> the nonce's suffix


def appointment_links(journey: str, context: dict[str, Any], delivery_id: uuid.UUID,
                      settings: Settings) -> dict[str, str]:
    """``confirm_url`` and ``cancel_url`` for the message's template (empty when links are off or the
    journey has none)."""
    if journey not in LINK_JOURNEYS or not settings.link_secret or not settings.public_url:
        return {}
    appointment_id, starts_at = context.get("appointment_id"), context.get("starts_at")
    if not appointment_id or not starts_at:
        return {}
    expires = as_utc(datetime.fromisoformat(str(starts_at)))
    return {f"{action}_url": settings.public_url + LINK_PATH + links.sign(settings.link_secret, links.Claims(
        subject=str(appointment_id), action=action, expires_at=expires, nonce=f"{delivery_id.hex}{suffix}"))
        for action, suffix in ACTIONS.items()}
