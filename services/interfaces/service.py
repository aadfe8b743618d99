"""The interfaces service: what CareLoop owes the outside world (the rooms: the package's docstring).

Entrypoints only. Inherited from ``kit.Service``: ``ping`` (the gateway's readiness), dead letters, the
metrics and log context; its own database (kit tables and ``models``) and outbox.
"""

from __future__ import annotations

from typing import Any

from services.interfaces import access
from services.interfaces.events import EVENTS
from services.interfaces.hl7 import receive
from services.interfaces.hl7.mllp import mllp
from services.interfaces.schemas import Hl7AnswerSchema
from services.interfaces.settings import hl7_facilities
from services.kit import Database, Invalid, Outbox, Service, rpc
from services.kit.clock import utcnow
from services.kit.peers import Peer


class InterfacesService(Service):
    name = "interfaces"
    db = Database()
    events = Outbox(EVENTS)
    members = Peer("members")
    records = Peer("records")

    # --- HL7 v2 ------------------------------------------------------------------------------------

    @mllp
    def receive_mllp(self, message: bytes) -> tuple[str, str]:
        """One message from the MLLP listener (``hl7/mllp.py``): its ACK and character set, which the listener
        encodes, frames and sends after this worker's transaction committed."""
        done = self._hl7(message, "mllp")
        return done.ack, done.codec

    @rpc
    def receive_hl7(self, message: bytes | str) -> dict[str, Any]:
        """One message sent over HTTP (``POST /v1/hl7``), answered ``{"ack", "ack_code"}``. Retry-safe without
        an idempotency key: the sender's control id (MSH-10) is the key, kept in the message log."""
        self.caller.require_role(*access.HL7_SENDERS, action="send HL7 messages")
        if isinstance(message, str):
            message = message.encode("utf-8")
        if not isinstance(message, bytes):
            raise Invalid("An HL7 message is text or bytes.", {"message": ["Not a message."]})
        return Hl7AnswerSchema().dump(self._hl7(message, f"http:{self.caller.kind}:{self.caller.subject}"))

    def _hl7(self, message: bytes, via: str) -> receive.Done:
        return receive.take(self.db.session, receive.Peers(self.members, self.records), message, via, self.caller,
                            hl7_facilities(self.config), self.group, utcnow())

    @staticmethod
    def hl7_unavailable(message: bytes) -> tuple[str, str]:
        """The MLLP answer when the message could not be handled now (nothing kept: send it again)."""
        return receive.unavailable(message, utcnow()), "utf-8"
