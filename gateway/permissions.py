"""Which role may do what through the gateway. One table, read by the routes and by the tests.

A route names one permission; a caller passes if its role holds it. Branch limits (a branch manager
sees the KPIs of their own branches) are checked on top, where a branch is in the request.

Routes without a permission here are ``public=True``: health, readiness, the API document, sign-in — and
the providers' delivery receipts (``/v1/receipts/sms``, ``/line``, ``/wechat``, ``provider_signed=True``),
which no staff token or API key opens: each is authenticated by its provider's own signature (Twilio's
X-Twilio-Signature, LINE's X-Line-Signature, WeChat's signature of the query), checked by notifications,
which holds the providers' secrets (``gateway/routes/receipts.py``).
"""

from __future__ import annotations

from services.kit.caller import ROLES

_STAFF = ("group_admin", "branch_manager", "front_desk", "clinician", "customer_service")
_LEDGER_READERS = ("group_admin", "branch_manager", "front_desk", "customer_service", "auditor", "integration")
_DESK = ("group_admin", "branch_manager", "front_desk", "integration")  # the service checks the branch too

GRANTS: dict[str, tuple[str, ...]] = {
    "members:read": (*_STAFF, "integration"),
    "members:enrol": ("group_admin", "branch_manager", "front_desk", "integration"),
    "members:update": ("group_admin", "branch_manager", "front_desk", "customer_service", "integration"),
    "members:merge": ("group_admin", "branch_manager"),
    "members:status": ("group_admin", "branch_manager", "customer_service"),
    "members:close": ("group_admin", "branch_manager"),
    "members:audit": ("group_admin", "branch_manager", "auditor"),
    # family accounts (issue 20): members link and unlink with audit; transfers within a family (points)
    "families:read": (*_STAFF, "auditor", "integration"),
    "families:manage": ("group_admin", "branch_manager", "front_desk", "customer_service"),
    "families:transfer": _DESK,
    "tiers:manage": ("group_admin",),
    "benefits:use": ("group_admin", "branch_manager", "front_desk", "integration"),
    "segments:read": ("group_admin", "branch_manager", "customer_service"),
    "programme:read": (*_STAFF, "auditor", "integration"),
    "programme:write": ("group_admin",),
    "ops:nightly": ("group_admin",),
    "notifications:read": ("group_admin", "branch_manager", "front_desk", "customer_service"),
    # records (issue 6): health data is for clinicians and the HIS/EMR only; the records service checks
    # it again and audits every access, refusals included
    "records:read": ("clinician", "integration"),
    "records:write": ("clinician", "integration"),
    "visits:read": (*_STAFF, "integration"),
    "visits:write": ("group_admin", "branch_manager", "front_desk", "clinician", "integration"),
    "his:bills": ("integration",),
    "hl7:send": ("integration",),
    "subscriptions:manage": ("group_admin",),  # outbound webhooks: they send data out of CareLoop
    "subscriptions:read": ("group_admin", "auditor"),  # HL7 v2 over HTTP (the sending facility's branches are checked too)
    "appointments:read": (*_STAFF, "integration"),
    "appointments:write": (*_STAFF, "integration"),
    "schedules:write": ("group_admin", "branch_manager", "front_desk"),
    "follow-ups:work": ("group_admin", "branch_manager", "clinician", "customer_service"),
    "feedback:submit": ("group_admin", "branch_manager", "front_desk", "customer_service", "integration"),
    "complaints:handle": ("group_admin", "branch_manager", "customer_service"),
    "kpis:read": ("group_admin", "branch_manager"),
    "audit:read": ("auditor",),
    # notifications (issue 7)
    "notifications:preview": ("group_admin", "branch_manager", "customer_service"),
    "notifications:send": ("group_admin", "branch_manager", "customer_service", "integration"),
    "notifications:preferences": ("group_admin", "branch_manager", "front_desk", "customer_service", "integration"),
    "notifications:inbox": ("group_admin", "customer_service", "integration"),
    "recalls:reactivation": ("group_admin", "branch_manager", "customer_service"),
    "ops:metrics": ("group_admin", "monitoring"),
    "ops:dead-letters": ("group_admin",),
    # the cross-service visit audit: who runs ops and who reads the reconciliations
    "ops:audit": ("group_admin", "auditor"),
    # imports (issue 19): group admins, and branch managers for their branches (checked by interfaces)
    "imports:read": ("group_admin", "branch_manager"),
    "imports:write": ("group_admin", "branch_manager"),
    "exports:read": ("group_admin", "integration"),
    # the gateway's own: a caller's own session and identity; staff accounts; system credentials; the
    # security log (sign-ins, lockouts, credential changes)
    "auth:self": ROLES,
    "staff:manage": ("group_admin",),
    "credentials:manage": ("group_admin",),
    "audit:security": ("group_admin", "auditor"),
    # points, stored value, coupons, rewards (issue 4); adjusting points by hand: managers (checked by points)
    "points:read": _LEDGER_READERS,
    "points:earn": _DESK,
    "points:redeem": _DESK,
    "points:audit": ("group_admin", "auditor"),
    "wallet:read": _LEDGER_READERS,
    "wallet:topup": _DESK,
    "wallet:pay": _DESK,
    "wallet:refund": ("group_admin", "branch_manager", "integration"),
    "coupons:read": _LEDGER_READERS,
    "coupons:issue": ("group_admin", "branch_manager", "customer_service", "integration"),
    "coupons:redeem": _DESK,
    "coupons:void": ("group_admin", "branch_manager"),
    "rewards:manage": ("group_admin",),
    # identity reviews (issue 18): the front desk's managers decide who a probable match is
    "identity:review": ("group_admin", "branch_manager"),
    # composed journeys (issue 20): managers; branch managers only for their own branches (checked by notifications)
    "journeys:read": ("group_admin", "branch_manager"),
    "journeys:write": ("group_admin", "branch_manager"),
    # points campaigns through the API (issue 20 item 7): group admins; branch managers read them
    "campaigns:read": ("group_admin", "branch_manager"),
    "campaigns:write": ("group_admin",),
    # points earning rules through the API and the console (issue 21 item 2): group-wide, so only group admins
    # change them; branch managers read them (as campaigns; /v1/points/programme shows them to the desk anyway)
    "points-rules:read": ("group_admin", "branch_manager"),
    "points-rules:write": ("group_admin",),
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
