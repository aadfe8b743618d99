"""What each placeholder in a gateway path may be: checked before any RPC, stated in the OpenAPI document.

Every ``<name>`` in a route's path has one entry in ``PATH_TYPES``, or a type of the route's own
(``path_types=``); a route whose placeholder has neither is refused when the gateway is built. A value that does not have the shape is answered at once — 404 (no
such thing can exist), or 422 where the route's convention is a rule broken (a year, a segment) — with the
standard error body, and no service is asked. Before this, a feedback id such as ``1' OR 1=1`` reached a
service that found nothing and answered an empty list.

The shapes are those of the values the services make: UUIDs (``uuid.uuid4()`` primary keys of members,
records, notifications, points and the gateway's staff), coupon codes (``points.coupons``: 10 letters and
digits without 0/O/1/I/L, dashes allowed as a desk may type them, any case), benefit codes (members'
programme: lower-case, digits, ``_``), wallet payment ids (points: the posting's number), API key ids
(``gateway.auth``: 12 letters and digits), webhook integration ids (``gateway.auth.webhooks.SLUG``).
Patterns are ASCII-only on purpose: Python's ``int`` and ``uuid.UUID`` accept Unicode digits and spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from services.kit.errors import Invalid, NotFound

PLACEHOLDER = re.compile(r"<(?:[a-z]+:)?([a-zA-Z_]+)>")


def path_params(url: str) -> list[str]:
    """The placeholder names of a route's path, in order."""
    return PLACEHOLDER.findall(url)


@dataclass(frozen=True)
class PathType:
    """The shape of one kind of path value."""

    what: str  # what it names, for the error message: "member", "coupon"
    pattern: str  # matched against the whole value (ASCII)
    hint: str  # what a good value looks like, for the error message
    example: str  # a value of this shape (the OpenAPI document shows it)
    status: int = 404  # what a value of another shape gets: 404 (names nothing) or 422 (breaks a rule)
    format: str | None = None  # OpenAPI format, where there is one ("uuid")
    enum: tuple[str, ...] | None = None  # the only values there are, where they are few
    max_length: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.pattern, re.ASCII))

    def check(self, name: str, value: str) -> None:
        """Raise the route's error unless ``value`` has this shape."""
        if len(value) <= self.max_length and self._compiled.fullmatch(value):  # type: ignore[attr-defined]
            return
        if self.status == 422:
            raise Invalid(f"The {name.replace('_', ' ')} in the path is not valid: {self.hint}.",
                          {name: [f"Not valid: {self.hint}."]})
        # the value itself is not echoed: it may hold anything (control characters, a megabyte)
        raise NotFound(f"No such {self.what}: {self.hint}.")

    def openapi(self) -> dict[str, Any]:
        """The parameter's schema in the OpenAPI document."""
        if self.enum is not None:
            return {"type": "string", "enum": list(self.enum), "example": self.example}
        if self.format is not None:
            return {"type": "string", "format": self.format, "pattern": f"^{self.pattern}$", "example": self.example}
        return {"type": "string", "pattern": f"^{self.pattern}$", "minLength": 1, "maxLength": self.max_length,
                "example": self.example}


UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
COUPON_CHARACTER = "[A-HJKMNP-Za-hjkmnp-z2-9]"  # points.coupons.CODE_ALPHABET, either case


UUID_EXAMPLE = "3f2b8c1e-9d4a-4e6f-8a2b-1c3d5e7f9a0b"


def uuid_of(what: str) -> PathType:
    return PathType(what, UUID_PATTERN, f"{what} ids are UUIDs such as {UUID_EXAMPLE}", UUID_EXAMPLE, format="uuid",
                    max_length=36)


def one_of(what: str, values: tuple[str, ...], status: int = 404) -> PathType:
    return PathType(what, "|".join(re.escape(v) for v in values), f"one of {', '.join(values)}", values[0],
                    status=status, enum=values, max_length=max(len(v) for v in values))


PATH_TYPES: dict[str, PathType] = {
    "member_id": uuid_of("member"),
    "visit_id": uuid_of("visit"),
    "appointment_id": uuid_of("appointment"),
    "feedback_id": uuid_of("feedback"),
    "task_id": uuid_of("follow-up task"),
    "entry_id": uuid_of("waitlist entry"),
    "offer_id": uuid_of("waitlist offer"),
    "recall_id": uuid_of("recall"),
    "merge_id": uuid_of("merge"),
    "family_id": uuid_of("family"),
    "subscription_id": uuid_of("webhook subscription"),
    "webhook_delivery_id": uuid_of("webhook delivery"),
    "delivery_id": uuid_of("notification"),
    "message_id": uuid_of("inbox message"),
    "redemption_id": uuid_of("redemption"),
    "reward_id": uuid_of("reward"),
    "user_id": uuid_of("staff account"),
    "review_id": uuid_of("identity review"),
    "import_id": uuid_of("import"),
    "payment_id": PathType("stored-value payment", r"[1-9][0-9]{0,17}", "payment ids are whole numbers", "1042",
                           max_length=18),
    "code": PathType("coupon", f"(?:{COUPON_CHARACTER}-?){{9}}{COUPON_CHARACTER}",
                     "coupon codes are 10 letters and digits (no 0, O, 1, I or L), dashes allowed", "K7MP-QR4X-T9",
                     max_length=19),
    "benefit": PathType("benefit", r"[a-z][a-z0-9_]{0,39}", "benefit codes are lower-case letters, digits and _",
                        "free_cleaning", max_length=40),
    "segment": one_of("segment", ("A", "B", "C"), status=422),
    "year": PathType("year", r"[0-9]{4}", "a year is four digits, e.g. 2027", "2027", status=422, max_length=4),
    "service": one_of("service", ("interfaces", "members", "notifications", "points", "records")),
    "key_id": PathType("API key", r"[A-Za-z0-9]{12}", "API key ids are 12 letters and digits", "Q3vX9kLm2PzA",
                       max_length=12),
    "integration_id": PathType("webhook integration", r"[a-z0-9][a-z0-9-]{1,63}",
                               "integration ids are lower-case letters, digits and -", "his-jingan", max_length=64),
    "journey_id": uuid_of("journey"),
    "campaign_code": PathType("campaign", r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}",
                              "campaign codes are 1 to 32 letters, digits, _ and -", "double-points-nov",
                              max_length=32),  # points.campaigns.CODE
}
"""Placeholder name -> its shape. The same name means the same kind of value on every route."""


def types_of(url: str, own: dict[str, PathType] | None = None) -> dict[str, PathType]:
    """The type of each placeholder of ``url`` (``own``: types only this route has, e.g. a fixed set of
    files); ``ValueError`` for a placeholder with none."""
    own = own or {}
    found = {}
    for name in path_params(url):
        path_type = own.get(name) or PATH_TYPES.get(name)
        if path_type is None:
            raise ValueError(f"{url}: declare the type of <{name}> in gateway.paths.PATH_TYPES")
        found[name] = path_type
    return found


def check_path(types: dict[str, PathType], values: dict[str, Any]) -> None:
    """Refuse the first path value that does not have its declared shape (``NotFound`` or ``Invalid``)."""
    for name, path_type in types.items():
        path_type.check(name, str(values.get(name, "")))
