"""Who may do what in interfaces: the roles each guarded entrypoint asks of its caller.

The gateway checks its own permission first (``gateway/permissions.py``); these are the service's own
checks, so that a call over the broker is held to the same rule. A CareLoop service calling (no person)
may do all of it.
"""

from __future__ import annotations

REVIEWERS = ("group_admin", "branch_manager")
"""List, read and resolve the identity reviews of their branches (the front desk's managers)."""

IMPORTERS = ("group_admin", "branch_manager")
"""Upload, check, commit, cancel and read imports: group admins for any branch, branch managers for theirs."""
