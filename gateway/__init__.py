"""The gateway: HTTP in front of the services, and who may come in. It holds no business rule.

How it is split (a room per concern; the gateway has no ``rules/``: what it decides is who is asking):

- ``service.py`` — ``GatewayService``: the route mixins of ``routes/`` composed with the dependencies.
- ``routes/`` — one module per service fronted; a route loads its input with a schema, makes one RPC
  (or one call into ``auth``) and returns the answer (the gateway's own answers dumped by ``schemas.py``).
- HTTP machinery: ``http.py`` (the ``@route`` entrypoint: request ids, limits, authentication, permission,
  path shapes, JSON, errors), ``admission.py`` (what every request passes, and the housekeeping),
  ``ratelimit.py``, ``idempotency.py`` (``Idempotency-Key`` replies), ``paths.py`` (path placeholders and
  their shapes), ``upstream.py`` (calling services), ``readiness.py`` (``/ready``), ``openapi.py`` and
  ``docs_ui/`` (the API document and its viewer).
- ``auth/`` — authentication: principals, API keys, staff accounts and sessions, tokens, passwords,
  lockout, webhook signatures, the security log, the operator commands (see ``gateway.auth``). Pure:
  ``principal``, ``passwords``, ``tokens``; the rest reads and writes the gateway's tables.
- ``console/`` — the staff console: HTML pages under ``/console`` (``@page``, cookie sessions bound to the
  staff sessions of ``auth``, CSRF), calling the same RPCs as the routes (see ``gateway.console``).
- ``permissions.py`` — which roles hold which permission (the gateway's access table).
- ``schemas.py`` — the contract of the gateway's own routes; ``models.py`` and ``migrations/`` — its tables.
"""
