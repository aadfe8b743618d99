"""Interfaces: what CareLoop owes the outside world — the identity review queue, HL7 v2 over MLLP and HTTP
with its message log (``hl7/``), outbound webhook subscriptions and deliveries (``webhooks/``); import and export
jobs as they arrive. It never owns a member: members are members'.

How the rooms split (docs/shape.md):

- ``service.py``: the service class only (dependencies and entrypoints: load, call, persist, dump);
- ``rules/``: the pure rules, no I/O;
- beside ``service.py``, the modules that read and write this service's tables, named for the domain;
- ``events.py``: the contracts of what interfaces announces; ``schemas.py``: what its RPCs take and answer;
- ``access.py``: which roles may do what; ``settings.py``: every setting and its default, read from the config;
- ``models.py`` and ``migrations/``: the tables.
"""
