"""Who may see what of a member: the roles that see a phone (and email) or an ID number in full.

Everyone else sees them masked (``MemberSchema``); CareLoop's own services always see them in full. A
group's config may override either tuple (``UNMASKED_PHONE_ROLES``, ``UNMASKED_DOCUMENT_ROLES``).
"""

from __future__ import annotations

from typing import Any

from services.kit.caller import Identity

PHONE_ROLES = ("group_admin", "branch_manager", "front_desk", "customer_service", "integration")
DOCUMENT_ROLES = ("group_admin", "integration")
ENROLLERS = ("group_admin", "branch_manager", "front_desk", "integration")
"""Who identifies incoming patients (``identify``: links or enrols) and adds identifiers to members."""
TIER_SETTERS = ("group_admin",)
"""Who sets a tier by hand, changes the programme and runs the night's jobs."""
AUDITORS = ("group_admin", "auditor")
"""Who reads what visits contributed (the cross-service visit audit)."""


def reveals(caller: Identity, config: dict[str, Any]) -> dict[str, bool]:
    """``MemberSchema``'s arguments for ``caller``: what it may see unmasked."""
    if caller.kind == "service":
        return {"reveal_phone": True, "reveal_document": True}
    return {"reveal_phone": caller.role in config.get("UNMASKED_PHONE_ROLES", PHONE_ROLES),
            "reveal_document": caller.role in config.get("UNMASKED_DOCUMENT_ROLES", DOCUMENT_ROLES)}
EXPORTERS = ("group_admin", "integration")
"""Who exports the membership for the group's data warehouse (masked per ``reveals``)."""
IMPORTERS = ("group_admin", "branch_manager")
"""Who looks members up in bulk for an import of balances or visits (``locate_members``)."""
