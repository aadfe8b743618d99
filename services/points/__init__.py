"""The points service: the points ledger, earning rules, rewards, stored value and coupons.

How the rooms split (issue 16):
- ``service.py``: the service class only — dependencies and entrypoints (load input, call a rule or a
  module below, persist, return ``OutputSchema().dump(...)``).
- ``rules/``: the pure rules, no I/O (no session, broker or clock): ``programme``, ``earning``, ``lots``,
  ``redemption``.
- beside ``service.py``, the modules that read and write points' tables for those rules, named for the
  domain: ``ledger`` (postings, lots, accounts), ``awards`` (what earns, posted), ``catalogue`` (rewards and
  redemptions), ``coupons``, ``wallet`` (stored value), ``merges``, ``roster`` (points' copy of members),
  ``expiry`` (the nightly expiry steps), ``holds`` (pending points: locked for the refund window, released
  by a daily step), ``transfers`` (family transfers and balances), ``outcomes`` (what each visit earned, for
  the audit), ``reconciliation``, ``campaigns`` (campaigns created through the API: versions, who and when,
  and the programme in force with them merged in). Each defines the metrics of what it counts.
- ``access.py`` (which roles may do what), ``settings.py`` (reading the programme file), ``events.py`` (the
  contracts of what points announces), ``schemas.py`` (what the RPCs take and answer), ``models.py``,
  ``migrations/``.
"""
