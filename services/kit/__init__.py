"""The CareLoop service kit: the mechanisms every service shares, written once.

| need | use |
| --- | --- |
| a database session committed before the reply/ack | ``db = Database()`` → ``self.db.session`` |
| events that are never lost nor phantom | ``events = Outbox()`` → ``self.events.emit(type, payload)`` |
| handle an event once, retried, dead-lettered | ``@event_handler("members", "member_enrolled")`` |
| a retry-safe command | ``@rpc`` + ``@idempotent`` on a method taking ``idempotency_key`` |
| one transaction at a time per aggregate (check, then act) | ``kit.locks.serialise(session, kind, key)`` |
| errors callers can act on | ``Invalid``, ``NotFound``, ``Conflict``, ``Forbidden`` (``kit.errors``) |
| validate input | ``load(Schema(), payload)`` (``kit.schemas``) |
| who is calling | ``self.caller`` (``kit.caller.Identity``) |
| metrics and log context | inherited from ``Service``; business counters via ``kit.telemetry.counter`` |
| personal data at rest | ``Encrypted("table.column")`` columns, ``blind_index`` (``kit.crypto``) |
| migrations | ``python -m services.kit.migrate <service>`` (kit tables, then the service's) |
"""

from services.kit.db import Database
from services.kit.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from services.kit.handlers import event_handler
from services.kit.idempotency import idempotent
from services.kit.models import UtcDateTime
from services.kit.outbox import Outbox
from services.kit.schemas import Schema, load
from services.kit.service import Service, rpc

__all__ = [
    "Conflict", "Database", "DomainError", "Forbidden", "Invalid", "NotFound", "Outbox", "Schema",
    "Service", "UtcDateTime", "event_handler", "idempotent", "load", "rpc",
]
