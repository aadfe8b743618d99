"""The interfaces service: what CareLoop owes the outside world (the rooms: the package's docstring).

Entrypoints only. Inherited from ``kit.Service``: ``ping`` (the gateway's readiness), dead letters, the
metrics and log context; its own database (kit tables and ``models``) and outbox.
"""

from __future__ import annotations

from services.interfaces.events import EVENTS
from services.kit import Database, Outbox, Service


class InterfacesService(Service):
    name = "interfaces"
    db = Database()
    events = Outbox(EVENTS)
