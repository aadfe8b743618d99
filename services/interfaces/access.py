"""Who may do what in interfaces: the roles each guarded entrypoint asks of its caller.

The gateway checks its own permission first (``gateway/permissions.py``); these are the service's own
checks, so that a call over the broker is held to the same rule. A CareLoop service calling (no person)
may do all of it.
"""

from __future__ import annotations

REVIEWERS = ("group_admin", "branch_manager")
"""List, read and resolve the identity reviews of their branches (the front desk's managers)."""

HL7_SENDERS = ("integration",)
"""Who may send HL7 messages over HTTP (MLLP has no caller: the sending facility's configuration decides)."""

SUBSCRIPTION_MANAGERS = ("group_admin",)
"""Who creates, disables and replays outbound webhook subscriptions (they send data out of CareLoop)."""
SUBSCRIPTION_READERS = ("group_admin", "auditor")
"""Who lists subscriptions and reads their delivery logs."""

IMPORTERS = ("group_admin", "branch_manager")
"""Upload, check, commit, cancel and read imports: group admins for any branch, branch managers for theirs."""
