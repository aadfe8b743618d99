"""marshmallow helpers: every contract refuses unknown fields, and a failed load is an ``Invalid``."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import marshmallow
from marshmallow import RAISE, ValidationError, fields, missing

from services.kit.errors import Invalid


class Schema(marshmallow.Schema):
    class Meta:
        unknown = RAISE

    @classmethod
    def shared(cls, **options: Any) -> Any:
        """One instance of this schema with these options, built once per process and reused by every worker:
        ``MemberSchema.shared(reveal_phone=True).dump(member)``. Building a schema copies and binds each of its
        fields (about 0.2 ms for a member's schema, more than reading the member), and an instance keeps no
        state between loads and dumps, so a hot path need not pay it per call. Options must be hashable."""
        return _shared(cls, tuple(sorted(options.items())))


@functools.cache
def _shared(cls: type[Schema], options: tuple[tuple[str, Any], ...]) -> Schema:
    return cls(**dict(options))


def load(schema: marshmallow.Schema, data: Any, partial: bool = False) -> Any:
    """Validate ``data`` against ``schema``; on failure raise ``Invalid`` with per-field messages."""
    if not isinstance(data, dict):
        raise Invalid("The request body must be a JSON object.", {"_schema": ["Expected an object."]})
    where = _nul_in(data)
    if where is not None:  # PostgreSQL refuses NUL in text outright: a 500 later, an answer now
        raise Invalid(f"Invalid input. {where}: must not contain NUL characters.",
                      {where: ["Must not contain NUL characters."]})
    try:
        return schema.load(data, partial=partial)
    except ValidationError as error:
        messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
        raise Invalid(summarise(messages), messages) from None


def _nul_in(value: Any, path: str = "") -> str | None:
    """The path of the first string (key or value) in ``value`` holding a NUL character, or None."""
    if isinstance(value, str):
        return (path or "_schema") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return path or "_schema"
            found = _nul_in(item, where)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for item in value:
            found = _nul_in(item, path)
            if found is not None:
                return found
    return None


def summarise(messages: dict[str, Any]) -> str:
    first_field = next(iter(messages), "_schema")
    first = messages[first_field]
    while isinstance(first, (list, dict)) and first:
        first = first[0] if isinstance(first, list) else next(iter(first.values()))
    where = "" if first_field == "_schema" else f"{first_field}: "
    more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
    return f"Invalid input. {where}{first}{more}"


def StrictInteger(**kwargs: Any) -> fields.Integer:  # noqa: N802 - reads like a field class
    """An integer that refuses floats and numeric strings (money and points are whole numbers)."""
    return fields.Integer(strict=True, **kwargs)


def encode_cursor(values: dict[str, Any]) -> str:
    """An opaque page cursor (the sort key of the last row seen)."""
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(value, dict):
            raise ValueError
        return value
    except ValueError:
        raise Invalid("The page cursor is not valid; start again from the first page.",
                      {"cursor": ["Not a valid cursor."]}) from None


def page_limit(limit: Any, default: int = 20, maximum: int = 100) -> int:
    if limit is None:
        return default
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise Invalid(f"limit must be a whole number from 1 to {maximum}.",
                      {"limit": [f"Must be between 1 and {maximum}."]})
    return limit


class MoneySchema(Schema):
    """Money on the API: ``{"amount": <integer minor units>, "currency": "CNY"}``; never a float."""

    amount = fields.Integer(strict=True, required=True, metadata={"description": "Integer minor units (fen, cents)."})
    currency = fields.String(required=True, validate=marshmallow.validate.Regexp(r"^[A-Z]{3}$"),
                             metadata={"description": "ISO 4217 code; must be the group's currency."})


def money(amount_minor: int, currency: str) -> dict[str, Any]:
    return {"amount": int(amount_minor), "currency": currency}


@functools.cache
def page_of(item: type[marshmallow.Schema], name: str | None = None) -> type[Schema]:
    """The schema of one page of ``item``s: ``{"items": [...], "next_cursor": "..." or null}``.

    ``VisitPageSchema = page_of(VisitSchema)``; the class is named after the item (``VisitPageSchema``) so
    that the OpenAPI document names it as before (or ``name``), and asking twice gives the same class.
    """
    name = name or item.__name__.removesuffix("Schema") + "PageSchema"
    return type(name, (Schema,), {
        "items": fields.List(fields.Nested(item), required=True),
        "next_cursor": fields.String(allow_none=True, metadata={
            "description": "Pass as `cursor` for the next page; null on the last page."}),
        "__module__": item.__module__,
        "__doc__": f"One page of {item.__name__.removesuffix('Schema')} items.",
    })


class UtcTime(fields.DateTime):
    """An aware UTC instant on the wire (ISO 8601 with ``Z``); a naive datetime is refused both ways."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValidationError("Must be an aware datetime.")
        text = value.astimezone(dt.UTC).isoformat()
        return text.removesuffix("+00:00") + "Z"

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dt.datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        if moment.tzinfo is None:
            raise ValidationError("Must carry a time zone (UTC, ending in Z).")
        return moment.astimezone(dt.UTC)


F = TypeVar("F", bound=fields.Field)


def computed(field: F, of: Callable[[Any], Any]) -> F:
    """``field`` (its type is what the OpenAPI document shows) dumping ``of(obj)``, worked out from the whole
    object, instead of an attribute: ``overdue = computed(fields.Boolean(), lambda task: ...)``."""
    field.get_value = lambda obj, attr, accessor=None, default=missing: of(obj)  # type: ignore[method-assign]
    return field


class With:
    """``obj`` with values it does not hold itself (a visit with its bill lines loaded in one query, a key
    with its secret shown once): ``Schema().dump(With(row, lines=...))``."""

    def __init__(self, obj: Any, **values: Any) -> None:
        self.obj, self.values = obj, values

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__["values"]
        return values[name] if name in values else getattr(self.__dict__["obj"], name)


@functools.cache
def list_of(item: type[marshmallow.Schema]) -> type[Schema]:
    """``{"items": [...]}``, every one at once (no pages): ``SlotListSchema = list_of(SlotSchema)``."""
    name = item.__name__.removesuffix("Schema") + "ListSchema"
    return type(name, (Schema,), {"items": fields.List(fields.Nested(item)), "__module__": item.__module__,
                                  "__qualname__": name})
