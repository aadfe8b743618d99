"""Who may do what in notifications: the roles each guarded entrypoint asks of its caller.

The gateway checks its own permission first (``gateway/permissions.py``); these are the service's own
checks, so that a call over the broker is held to the same rule. The scheduler's RPCs (``dispatch_due``,
``run_daily``) are for CareLoop services only: they read members' contacts.
"""

from __future__ import annotations

SENDERS = ("group_admin", "branch_manager", "customer_service", "integration")
"""May ask for a message to a member (``schedule``) and cancel one not sent yet (``cancel``)."""

ALERT_READERS = ("group_admin", "branch_manager", "customer_service", "auditor")
"""May read the staff alerts of a feedback (``feedback_alerts``), for their own branches."""

REACTIVATORS = ("group_admin", "branch_manager", "customer_service")
"""Work the recall reactivation list of their own branches (``reactivation_list``, ``record_reactivation``)."""

JOURNEY_MANAGERS = ("group_admin", "branch_manager")
"""Compose, change, activate, pause, retire and dry-run journeys (``composed``): group admins every journey, branch
managers those restricted to their own branches."""
