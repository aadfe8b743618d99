"""Domain errors: raised by rules and services, carried across RPC intact, mapped to HTTP by the gateway.

Each error carries a message a front-desk person can act on, per-field messages for input errors, and
optional details (e.g. which member a duplicate matches). They are registered with nameko so that a
caller receives the same class back instead of a bare ``RemoteError``.
"""

from __future__ import annotations

from typing import Any

from nameko.exceptions import deserialize_to_instance


class DomainError(Exception):
    """Base of every error a caller is meant to see and act on."""

    code = "error"
    status = 400

    def __init__(self, message: str, fields: dict[str, Any] | None = None,
                 details: dict[str, Any] | None = None) -> None:
        # args are what nameko serialises; keep them JSON-safe and in this order.
        super().__init__(message, fields or {}, details or {})
        self.message = message
        self.fields = fields or {}
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "fields": self.fields}
        if self.details:
            body["details"] = self.details
        return body

    def __str__(self) -> str:
        return self.message


@deserialize_to_instance
class Invalid(DomainError):
    """The input breaks a rule; ``fields`` maps each offending field to its messages."""

    code = "invalid"
    status = 422


@deserialize_to_instance
class BadRequest(DomainError):
    """The request cannot be read at all (malformed JSON, wrong content type)."""

    code = "bad_request"
    status = 400


@deserialize_to_instance
class NotFound(DomainError):
    code = "not_found"
    status = 404


@deserialize_to_instance
class Conflict(DomainError):
    """The request is valid but clashes with the current state (duplicate, taken slot, spent points)."""

    code = "conflict"
    status = 409


@deserialize_to_instance
class Gone(DomainError):
    """What the request names existed but is over for good (an expired link): nothing to retry."""

    code = "gone"
    status = 410


@deserialize_to_instance
class PreconditionFailed(DomainError):
    """The caller changed what it read at an older version (``If-Match``); read it again, then change it."""

    code = "precondition_failed"
    status = 412


@deserialize_to_instance
class Forbidden(DomainError):
    code = "forbidden"
    status = 403


@deserialize_to_instance
class Unauthenticated(DomainError):
    code = "unauthenticated"
    status = 401


@deserialize_to_instance
class TooLarge(DomainError):
    code = "too_large"
    status = 413


@deserialize_to_instance
class RateLimited(DomainError):
    code = "rate_limited"
    status = 429


@deserialize_to_instance
class Unavailable(DomainError):
    """A dependency (another service, the broker) did not answer in time; safe to retry."""

    code = "unavailable"
    status = 503
