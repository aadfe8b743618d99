"""Structured logs: one JSON object a line, with the nameko call id and the request id.

Used from each service's ``LOGGING`` config (``()`` factory ``services.kit.logs.JsonFormatter``).
Never log personal identifiers or secrets: log member ids, not names or phone numbers; ``mask()``
shortens an identifier when one must appear.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from services.kit.telemetry import call_id_var, request_id_var

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call_id = call_id_var.get()
        if call_id:
            entry["call_id"] = call_id
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def mask(value: str | None, keep: int = 4) -> str:
    """``+8613800138000`` -> ``*********8000``: enough to tell records apart, not to identify anyone."""
    if not value:
        return ""
    return "*" * max(len(value) - keep, 0) + value[-keep:]
