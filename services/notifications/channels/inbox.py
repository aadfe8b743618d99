"""The in-app inbox: a message is stored for the member's app to show (delivered at once).

Stored encrypted at rest; written once per delivery (a resend after a crash finds it and changes nothing). The
dispatcher writes it with ``send_in``, in the transaction that records the delivery as sent (one transaction, one
statement: the message and its record commit together); ``send`` is the channel's usual call, in a transaction of
its own.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.kit.clock import utcnow
from services.kit.db import Store
from services.notifications.channels.base import Message, Receipt
from services.notifications.models import InboxMessage


class InboxChannel:
    name = "inbox"
    idempotent = True  # one row per delivery id

    def __init__(self, store: Store) -> None:
        self.store = store

    def send(self, message: Message) -> Receipt:
        with self.store.transaction() as session:
            return self.send_in(session, message)

    def send_in(self, session: Session, message: Message) -> Receipt:
        """Store ``message`` in ``session``'s transaction: one statement (``RETURNING`` the new row's id); a delivery
        whose message is stored already (a resend) inserts nothing and reads the stored id."""
        delivery_id = uuid.UUID(message.delivery_id)
        insert = (postgresql.insert if self.store.is_postgresql else sqlite.insert)(InboxMessage)
        row = {"id": uuid.uuid4(), "member_id": uuid.UUID(message.member_id), "delivery_id": delivery_id,
               "journey": message.journey, "language": message.language, "subject": message.subject,
               "body": message.body or message.text, "created_at": utcnow(), "read_at": None}
        stored = session.scalars(insert.values(**row).on_conflict_do_nothing(index_elements=["delivery_id"])
                                 .returning(InboxMessage.id)).first()
        if stored is None:
            stored = session.scalars(select(InboxMessage.id).where(InboxMessage.delivery_id == delivery_id)).one()
        return Receipt(provider_id=str(stored), delivered=True)
