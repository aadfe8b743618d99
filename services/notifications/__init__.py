"""Notifications: care journeys from events and days, sent on the member's channel and terms.

How the rooms split:

- ``service.py``: the service class only (dependencies and entrypoints: load, call, persist, dump);
- ``rules/``: the pure rules, no I/O (journeys, composed journeys, sending, alerts, festivals, addresses, providers'
  receipts);
- beside ``service.py``, the modules that read and write this service's tables (``deliveries``, ``inbox``,
  ``preferences``, ``appointments``, ``recalls``, ``digests``, ``audience``, ``staff_alerts``, ``receipts``; ``composed``:
  journeys managers compose, their versions and members' runs), the scheduler
  and the daily scans (``schedule``, ``scans``), members' sign-in codes sent at once (``sign_in``), the provider adapters (``channels/``) and the templates
  (``templates``, ``templates/``); each keeps its metrics beside what it counts;
- ``events.py``: the contracts of what notifications announces; ``schemas.py``: what its RPCs take and answer;
- ``access.py``: which roles may do what; ``settings.py``: every setting and its default, read from the config;
- ``models.py`` and ``migrations/``: the tables.
"""
