"""The records service: health profile, dental chart, visits, care plans, appointments and the waitlist, follow-ups,
feedback, the audit trail of health-data access, and the KPIs of visits.

The rooms: ``service.py`` holds the service class only (entrypoints: load, check, apply a rule, persist,
dump). ``rules/`` holds the pure rules (no I/O, table-tested in ``tests/unit``). Beside ``service.py``
are the modules that read and write records' tables for those rules, named for the domain (``visits``,
``bookings``, ``waitlist``, ``charts``, ``profiles``, ``careplans``, ``worklists``, ``feedback``, ``figures``,
``membership``, ``patients``, ``audit``, ``visit_audit``), each with the metrics of what it counts.
``access.py`` says which roles may do what; ``schemas.py`` is what the RPCs take and answer (answers are
dumped by those schemas); ``events.py`` is what records announces; ``models.py`` and ``migrations/``
the tables.
"""
