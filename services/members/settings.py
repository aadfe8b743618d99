"""The members service's settings (nameko config keys), their defaults, and reading them.

Also read elsewhere: ``PROGRAMME_FILE`` (default ``config/programme.yml``, ``programme_versions``) and
``UNMASKED_PHONE_ROLES`` / ``UNMASKED_DOCUMENT_ROLES`` (``access``).
"""

from __future__ import annotations

from datetime import time
from typing import Any

SETTINGS: dict[str, Any] = {
    "NIGHTLY_AT": "02:00",  # local time (group zone) after which the night's jobs run; "off": never by timer
    "NIGHTLY_MAX_BATCHES": 20,  # batches per job and timer tick (a tick a minute): keeps each worker short
    "TIER_REVIEW_BATCH": 500,  # members per review / notice batch (one transaction each)
    "SEGMENT_BATCH": 1000,  # members per segmentation batch (one transaction each)
    "CARD_SYSTEM": None,  # the identifier system URI of the group's card numbers; None: urn:careloop:<group code>:card
}


def setting(config: dict[str, Any], key: str) -> Any:
    return config.get(key, SETTINGS[key])


def nightly_starts(config: dict[str, Any]) -> time | None:
    """The local time after which the night's jobs run, or None when the timer must not run them."""
    starts = setting(config, "NIGHTLY_AT")
    if starts in ("off", False, None):
        return None
    if isinstance(starts, int):  # YAML 1.1 reads an unquoted 02:00 as 120 (base 60): minutes
        starts = f"{starts // 60:02d}:{starts % 60:02d}"
    return time.fromisoformat(str(starts))


def card_system(config: dict[str, Any], group_code: str) -> str:
    """The system URI under which a member's card number is one of their identifiers (FHIR, HL7, imports)."""
    return setting(config, "CARD_SYSTEM") or f"urn:careloop:{group_code}:card"
