"""Notifications' rules, with no I/O (no session, no broker, no clock read): values in, values out.

- ``journeys``: which message each event or day calls for, to whom, when, once for which cause (``Plan``);
- ``sending``: consent and channel choice, quiet hours, the marketing cap, retry backoff (``decide``);
- ``alerts``: which feedback alerts the branch's staff, on which channel, when;
- ``festivals``: festival (lunar ones resolved) and season dates of a year;
- ``addresses``: whether an address can receive a message on its channel.

The modules beside ``service.py`` read and write the database (or talk to providers) for them.
"""
