"""The CareLoop service kit: the mechanisms every service shares, written once.

| need | use |
| --- | --- |
| a database session committed before the reply/ack | ``db = Database()`` → ``self.db.session`` |
| an event's contract, declared once by its producer | ``EVENTS = Contracts("members")``, ``@EVENTS.event("member_enrolled")`` in ``events.py`` (``kit.contracts``) |
| events that are never lost nor phantom | ``events = Outbox(EVENTS)`` → ``self.events.emit(type, payload)`` (checked against its contract) |
| handle an event once, retried, dead-lettered | ``@event_handler(MemberEnrolled)`` (the producer's contract: the payload in domain values) |
| events most of which nobody wants dropped by the broker, not the service | ``@event_handler(..., wanted=..., gate="x")`` and ``gates = Gates(wanted=...)`` (``kit.gates``) |
| a retry-safe command | ``@rpc`` + ``@idempotent`` on a method taking ``idempotency_key`` |
| one transaction at a time per aggregate (check, then act) | ``kit.locks.serialise(session, kind, key)`` |
| a row nothing reads back in the transaction, written with the commit (one round trip with ``COMMIT``) | ``kit.commit.at_commit(session, AtCommit(sql), params)`` |
| errors callers can act on | ``Invalid``, ``NotFound``, ``Conflict``, ``Forbidden`` (``kit.errors``) |
| validate input | ``load(Schema(), payload)`` (``kit.schemas``; NUL refused everywhere) |
| answer in the shape the OpenAPI document says | ``OutSchema().dump(obj)``; ``page_of``, ``list_of``, ``computed``, ``With``, ``UtcTime`` (``kit.schemas``) |
| a merged member's id, followed | ``kit.aliases.follow(next_of, start)`` |
| a service's tables | ``Base = model_base()``, ``UtcDateTime`` (``kit.models``) |
| the group (zone, currency, branches) | ``self.group`` (inherited); a file named in config: ``kit.config.resolve_path`` |
| who is calling | ``self.caller`` (``kit.caller.Identity``) |
| metrics and log context | inherited from ``Service``; business counters via ``kit.telemetry.counter`` |
| personal data at rest | ``Encrypted("table.column")`` columns, ``blind_index`` (``kit.crypto``) |
| migrations | ``python -m services.kit.migrate <service>`` (kit tables, then the service's) |
| queues replicated on a RabbitMQ cluster | ``QUEUE_TYPE: quorum`` in the config: every queue the kit declares (``kit.queues``) |
| sign or verify a webhook (HMAC over timestamp and body) | ``kit.signing`` |
| an incremental export for the warehouse (cursor safe under concurrent writes, personal fields masked) | ``kit.exports.changed_page``, ``MaskedExportSchema`` |
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
