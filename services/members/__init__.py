"""The members service: enrolment, lookups and changes; tiers, benefits and segments; merges and lifecycle.

How the rooms are split:

- ``service.py`` — the ``MembersService`` class only: dependencies and entrypoints (load input with a
  schema, call the modules below, answer ``OutputSchema().dump(...)``).
- ``rules/`` — the pure rules (no session, no broker, no clock read): the programme document, tiers and
  reviews, benefits and prices, RFM segments, identity (names, phones, cards, masks).
- beside ``service.py``, the modules that read and write members' tables for those rules, named for the
  domain: ``register`` (members), ``activity`` (what other services' events tell), ``tier_ledger`` (tier
  changes and reviews), ``quotas``, ``segmentation``, ``lifecycle`` (merges, freeze, close),
  ``programme_versions`` (the programme in force), ``standings`` (what a proposed programme would do to
  members' tiers: the preview, one grouped query), ``nightly`` (the night's batches), ``families`` (family
  accounts: contact person, links and their audit). Metrics live beside
  what they count.
- ``access.py`` (who sees what unmasked, who may set tiers and audit), ``settings.py`` (config keys and
  their defaults), ``events.py`` (the contracts of what members announces), ``schemas.py`` (what the RPCs
  take and answer), ``models.py`` and ``migrations/``.
"""
