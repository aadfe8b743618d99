"""The events the interfaces service announces (none yet): declare each one here with ``@EVENTS.event``
(``services.kit.contracts``) before emitting it, then run ``python -m services.kit.contracts --write``."""

from __future__ import annotations

from services.kit.contracts import Contracts

EVENTS = Contracts("interfaces")
