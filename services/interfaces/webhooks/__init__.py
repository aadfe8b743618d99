"""Outbound webhooks: an integration subscribes to an event type with a target URL; each such event becomes a
delivery, POSTed signed (``kit.signing``, the inbound webhooks' scheme), retried with backoff for
``WEBHOOK_RETRY_HOURS`` (24) and then parked; every attempt is logged; a parked (or any) delivery can be
replayed by hand. Targets must be on the configured allowlist of hosts (``WEBHOOK_ALLOWED_HOSTS``), checked
when subscribing and again before every attempt: CareLoop never posts to an arbitrary internal address.

- ``rules.py``: the pure part — is a URL allowed, when is the next attempt, what body an event becomes;
- ``subscriptions.py``: the subscriptions (create with a fresh secret shown once, list, disable);
- ``deliveries.py``: fanning an event out to its subscriptions, picking due deliveries, recording attempts,
  the log, replay;
- ``sender.py``: the HTTP POST itself.
"""
