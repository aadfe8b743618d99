"""What the gateway remembers briefly so that a request costs no database read: verified keys, open
sessions, webhook integrations. A revocation reaches the replica that made it at once (``forget``) and
the others within ``seconds``."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    """Values loaded on first use and kept for ``seconds``; emptied whole when it holds over ``limit``."""

    def __init__(self, seconds: float, limit: int) -> None:
        self.seconds = seconds
        self.limit = limit
        self._entries: dict[Hashable, tuple[float, V]] = {}

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is None or cached[0] < now:
            cached = (now + self.seconds, load())
            if len(self._entries) > self.limit:
                self._entries.clear()
            self._entries[key] = cached
        return cached[1]

    def put(self, key: Hashable, value: V) -> None:
        self._entries[key] = (time.monotonic() + self.seconds, value)

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)
