"""Which role may do what through the gateway. One table, read by the routes and by the tests.

A route names one permission; a caller passes if its role holds it. Branch limits (a branch manager
sees the KPIs of their own branches) are checked on top, where a branch is in the request.
"""

from __future__ import annotations

from services.kit.caller import ROLES

_STAFF = ("group_admin", "branch_manager", "front_desk", "clinician", "customer_service")

GRANTS: dict[str, tuple[str, ...]] = {
    "members:read": (*_STAFF, "integration"),
    "members:enrol": ("group_admin", "branch_manager", "front_desk", "integration"),
    "members:update": ("group_admin", "branch_manager", "front_desk", "customer_service", "integration"),
    "notifications:read": ("group_admin", "branch_manager", "front_desk", "customer_service"),
    "notifications:preview": ("group_admin", "branch_manager", "customer_service"),
    "notifications:send": ("group_admin", "branch_manager", "customer_service", "integration"),
    "notifications:preferences": ("group_admin", "branch_manager", "front_desk", "customer_service", "integration"),
    "notifications:inbox": ("group_admin", "customer_service", "integration"),
    "ops:metrics": ("group_admin", "monitoring"),
    "ops:dead-letters": ("group_admin",),
}


def allowed(role: str, permission: str) -> bool:
    return role in GRANTS.get(permission, ())


def roles_with(permission: str) -> tuple[str, ...]:
    return GRANTS[permission]


def check_table() -> None:
    """Fail at start-up on a grant naming a role that does not exist."""
    for permission, roles in GRANTS.items():
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"permission {permission} grants unknown roles {sorted(unknown)}")


check_table()
