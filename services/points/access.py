"""Which roles may do what in points (besides the gateway's permissions, checked again here because a
service trusts no caller to have asked the gateway first). A service caller may do all of it."""

from __future__ import annotations

ADJUSTERS = ("group_admin", "branch_manager")
"""Give or take points by hand (``earn`` with rule ``adjust``)."""
COUPON_VOIDERS = ("group_admin", "branch_manager")
CATALOGUE_EDITORS = ("group_admin",)
"""Create and change rewards."""
AUDITORS = ("group_admin", "auditor")
"""Audit visits and run the daily jobs."""
RECONCILERS = (*AUDITORS, "integration")
COUPON_ISSUERS = ("group_admin", "branch_manager", "customer_service", "integration")
BONUS_SETTERS = ("group_admin", "branch_manager", "integration")
"""Set a top-up's bonus instead of the programme's offers."""
REFUNDERS = ("group_admin", "branch_manager", "integration")
"""Give card payments back."""
OPENERS = ("group_admin", "branch_manager")
"""Post opening balances brought from an old system (imports; the interfaces service calls as a service)."""
EXPORTERS = ("group_admin", "integration")
"""Export postings, stored-value postings and coupons for the group's data warehouse (as members are)."""
EXPORT_REVEALERS = ("integration",)
"""Who gets an export's personal fields (staff names, free-text reasons, coupon codes) in full: the
warehouse's system key; a person downloading by hand gets them masked (config ``UNMASKED_EXPORT_ROLES``)."""
CAMPAIGN_EDITORS = ("group_admin",)
"""Create, change and end campaigns (the programme file's are changed in the file)."""
