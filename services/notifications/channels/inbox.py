"""The in-app inbox: a message is stored for the member's app to show (delivered at once).

Stored encrypted at rest; written once per delivery (a resend after a crash finds it and changes nothing).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

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
        delivery_id = uuid.UUID(message.delivery_id)
        insert = (postgresql.insert if self.store.is_postgresql else sqlite.insert)(InboxMessage)
        row = {"id": uuid.uuid4(), "member_id": uuid.UUID(message.member_id), "delivery_id": delivery_id,
               "journey": message.journey, "language": message.language, "subject": message.subject,
               "body": message.body or message.text, "created_at": utcnow(), "read_at": None}
        with self.store.transaction() as session:
            session.execute(insert.values(**row).on_conflict_do_nothing(index_elements=["delivery_id"]))
            stored = session.scalars(select(InboxMessage.id).where(InboxMessage.delivery_id == delivery_id)).one()
        return Receipt(provider_id=str(stored), delivered=True)
