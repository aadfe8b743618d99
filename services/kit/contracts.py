"""Event contracts, declared once by the producing service and used by both ends.

A producer declares each event it publishes in its own ``events.py``::

    EVENTS = Contracts("records")

    @EVENTS.event("visit_completed")
    class VisitCompleted(Event):
        \"\"\"A visit was completed with its bill: points earn, members count the spend.\"\"\"
        visit_id = fields.UUID(required=True)
        completed_at = UtcTime(required=True)
        referral_source = fields.String(required=True, allow_none=True)
        sample = {"visit_id": uuid.UUID(int=1), "completed_at": datetime(2026, 3, 5, 2, tzinfo=UTC), ...}

- **Producer side**: ``EVENTS.wire("visit_completed", payload)`` checks the payload, given in domain values
  (``UUID``, aware ``datetime``, ``date``, ``int``), against the contract *before* it is written: a missing
  field, a null where none is allowed, a value of the wrong type or one the field's validator refuses, or a
  field the contract does not declare is a ``ContractBroken`` raised in the producer's transaction (a bug
  caught where it was made, not a dead letter in a consumer). It answers the JSON form the outbox stores.
  ``EVENTS.wire_many("member_enrolled", payloads)`` makes the same checks over a batch's payloads in one pass
  (``kit.outbox_batch``): one dump of the list, each field's validators run once per distinct value.
  Every field is ``required``: a field that may be absent is declared ``allow_none`` and sent as null.
- **Consumer side**: ``load_event(VisitCompleted, body)`` answers the payload in domain values plus the
  envelope (``event_id``, ``occurred_at``). Fields the consumer's copy of the contract does not know are
  ignored (a producer may add fields; it never removes or renames one); a body that does not match is an
  ``Invalid`` (parked at once by the kit's handlers: no retry can fix it). A body is loaded field by field by
  each field's own ``deserialize`` (``_fast_load``: a batch's repeated branch, language or time loaded once, a
  ``members_imported`` of 500 members 21 → 6 us a member), and by the schema whenever that path stands aside (a
  hook, a kind of field it does not know, anything refused: the refusal is always the schema's own).
- ``python -m services.kit.contracts`` prints every declared event (the producers listed in ``PRODUCERS``)
  as markdown, with its consumers found on the services' event handlers; ``--write`` puts that into
  docs/events.md (a test fails when the page is stale).

Each contract carries a ``sample``: the contract tests load every producer's sample through every consumer.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib
import inspect
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import marshmallow
from marshmallow import EXCLUDE, RAISE, ValidationError, fields

from services.kit.errors import Invalid
from services.kit.schemas import UtcTime, summarise

ENVELOPE = ("event_id", "occurred_at")

#: the modules that declare events, in the order docs/events.md lists them
PRODUCERS = ("services.members.events", "services.points.events", "services.records.events",
             "services.notifications.events", "services.interfaces.events")
#: the modules whose service classes consume events
CONSUMERS = ("services.members.service", "services.points.service", "services.records.service",
             "services.notifications.service", "services.interfaces.service")


class ContractBroken(TypeError):
    """A producer tried to emit an event that does not match its own contract (a programming error)."""


class Event(marshmallow.Schema):
    """Base of every event contract: its docstring says what happened and who acts on it."""

    #: the event as its producer would emit it, in domain values (required: the contract tests use it)
    sample: ClassVar[dict[str, Any]] = {}
    #: set by ``Contracts.event``
    producer: ClassVar[str] = ""
    event_type: ClassVar[str] = ""

    class Meta:
        unknown = RAISE


# what a domain value must be for each field class, checked before dumping: marshmallow's dump coerces
# ("5" dumps as 5 through Integer), which would hide exactly the mistakes a contract is for
_PYTHON_TYPES: tuple[tuple[type[fields.Field], tuple[type, ...]], ...] = (
    (fields.Boolean, (bool,)),
    (fields.Integer, (int,)),
    (fields.Decimal, (decimal.Decimal,)),
    (fields.Float, (int, float)),
    (fields.Date, (dt.date,)),  # before DateTime: marshmallow's Date is a DateTime
    (fields.DateTime, (dt.datetime,)),
    (fields.UUID, (uuid.UUID,)),  # before String: marshmallow's UUID is a String
    (fields.String, (str,)),
    (fields.List, (list, tuple)),
    (fields.Nested, (dict,)),
    (fields.Dict, (dict,)),
)


_ACCEPTS = "careloop_accepts"


def _accepts(field: fields.Field) -> tuple[type[fields.Field] | None, tuple[type, ...]]:
    """(the ``_PYTHON_TYPES`` kind of ``field``, the Python types it accepts), found once per field (a contract's
    fields live as long as its schema): emitting an event checked each field against the whole table every time."""
    found = field.__dict__.get(_ACCEPTS)
    if found is None:
        found = (None, ())
        if not (isinstance(field, fields.Raw) and type(field) is fields.Raw):
            found = next(((kind, accepted) for kind, accepted in _PYTHON_TYPES if isinstance(field, kind)), found)
        setattr(field, _ACCEPTS, found)
    return found


def _type_errors(field: fields.Field, value: Any, path: str) -> Iterator[str]:
    if value is None:
        if not field.allow_none:
            yield f"{path}: null, but the contract does not allow null"
        return
    kind, accepted = _accepts(field)
    if kind is not None:
        wrong = not isinstance(value, accepted)
        wrong |= kind is fields.Integer and isinstance(value, bool)
        wrong |= kind is fields.Date and isinstance(value, dt.datetime)
        wrong |= kind is fields.UUID and isinstance(value, str)  # a str may pass for a UUID: say which
        if wrong:
            yield f"{path}: {type(value).__name__} {value!r:.60}, the contract wants {accepted[0].__name__}"
            return
    if isinstance(field, fields.List):
        for index, item in enumerate(value):
            yield from _type_errors(field.inner, item, f"{path}[{index}]")
    elif isinstance(field, fields.Nested):
        yield from _payload_errors(field.schema, value, f"{path}.")


def _payload_errors(schema: marshmallow.Schema, payload: dict[str, Any], prefix: str = "") -> Iterator[str]:
    declared = schema.fields
    for name in sorted(set(payload) - set(declared)):
        yield f"{prefix}{name}: not in the contract (declare it first)"
    for name, field in declared.items():
        if field.dump_only:
            continue
        if name not in payload:
            yield f"{prefix}{name}: missing"
            continue
        yield from _type_errors(field, payload[name], f"{prefix}{name}")


def _strict_integers(declared: Any) -> None:
    """Money and points are whole numbers: a consumer refuses ``10.5`` or ``"10"`` instead of reading 10."""
    for field in declared:
        if isinstance(field, fields.Integer):
            field.strict = True
        elif isinstance(field, fields.List):
            _strict_integers([field.inner])
        elif isinstance(field, fields.Nested) and isinstance(field.nested, type):
            _strict_integers(field.nested._declared_fields.values())


class Contracts:
    """The events one service publishes: ``EVENTS = Contracts("members")`` in its ``events.py``."""

    def __init__(self, producer: str) -> None:
        self.producer = producer
        self.events: dict[str, type[Event]] = {}
        self._schemas: dict[str, Event] = {}

    def event(self, event_type: str) -> Callable[[type[Event]], type[Event]]:
        """Declare ``event_type`` with the decorated ``Event`` subclass as its contract."""

        def declare(contract: type[Event]) -> type[Event]:
            if event_type in self.events:
                raise ValueError(f"{self.producer}.{event_type} is declared twice")
            if not (contract.__doc__ or "").strip():
                raise ValueError(f"{self.producer}.{event_type}: say in a docstring what happened")
            if not contract.sample:
                raise ValueError(f"{self.producer}.{event_type}: give a sample (the contract tests use it)")
            for name, field in contract._declared_fields.items():
                if field.required is False and field.load_default is marshmallow.missing:
                    raise ValueError(f"{self.producer}.{event_type}.{name}: declare every field required "
                                     "(allow_none=True for one that may be null)")
            _strict_integers(contract._declared_fields.values())
            contract.producer, contract.event_type = self.producer, event_type
            self.events[event_type] = contract
            self._schemas[event_type] = contract()
            return contract

        return declare

    def __contains__(self, event_type: str) -> bool:
        return event_type in self.events

    def __getitem__(self, event_type: str) -> type[Event]:
        try:
            return self.events[event_type]
        except KeyError:
            raise ContractBroken(f"{self.producer} declares no event {event_type!r}") from None

    def wire(self, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` (domain values) checked against its contract and dumped to its JSON form."""
        return self._wire(event_type, [payload], numbered=False)[0]

    def wire_many(self, event_type: str, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``wire`` for many payloads of one event type (a batch's events, ``kit.outbox_batch``): the same checks,
        made in one pass over the list; one payload that breaks the contract fails them all, its position named."""
        return self._wire(event_type, payloads, numbered=True)

    def _wire(self, event_type: str, payloads: list[dict[str, Any]], numbered: bool) -> list[dict[str, Any]]:
        self[event_type]
        schema = self._schemas[event_type]
        errors: list[str] = []
        for position, payload in enumerate(payloads):
            where = f"payload {position}: " if numbered else ""
            if not isinstance(payload, dict):
                errors.append(f"{where}the payload must be a dict")
                continue
            errors += [where + error for error in _payload_errors(schema, payload)]
        bodies: list[dict[str, Any]] = []
        if not errors:
            try:
                bodies = schema.dump(payloads, many=True)
            except (ValidationError, AttributeError, TypeError, ValueError):
                errors += _dump_errors(schema, payloads, numbered)
            else:  # the field validators (ranges, choices, patterns) on what goes out
                errors += [(f"payload {position}: " if numbered else "") + f"{messages}"
                           for position, messages in _load_errors(schema, bodies).items()]
        if errors:
            raise ContractBroken(f"{self.producer}.{event_type} does not match its contract: " + "; ".join(errors))
        return bodies


def _dump_errors(schema: Event, payloads: list[dict[str, Any]], numbered: bool) -> list[str]:
    """Which payloads did not dump, and why (only when the batch's dump failed)."""
    errors = []
    for position, payload in enumerate(payloads):
        try:
            schema.dump(payload)
        except (ValidationError, AttributeError, TypeError, ValueError) as error:
            detail = error.messages if isinstance(error, ValidationError) else error
            errors.append((f"payload {position}: " if numbered else "") + f"{detail}")
    return errors


_JSON_SCALARS = (str, int, float, bool, type(None))


def _load_errors(schema: Event, bodies: list[dict[str, Any]]) -> dict[int, Any]:
    """What loading each dumped body would refuse: position -> marshmallow's messages.

    A contract without hooks (no ``validates``, ``validates_schema``, ``pre_load``/``post_load``: none has one
    today) is what its fields accept, field by field, plus no key it does not declare: so each field is loaded
    on its own, and a field's value met before in the list (a batch's branch, language, time: a JSON scalar,
    whose load depends on nothing else) is not loaded again. A contract with hooks is loaded whole."""
    if any(schema._hooks.values()):
        try:
            schema.load(bodies, many=True)
        except ValidationError as error:
            return dict(error.messages) if isinstance(error.messages, dict) else {0: error.messages}
        return {}
    declared = [(field.data_key or name, field) for name, field in schema.load_fields.items()]
    errors: dict[int, dict[str, Any]] = {}
    fast_met: dict[tuple[int, type, Any], Any] = {}
    for key, field in declared:
        met: dict[tuple[type, Any], Any] = {}
        for position, body in enumerate(bodies):
            raw = body.get(key, marshmallow.missing)
            seen = (type(raw), raw) if isinstance(raw, _JSON_SCALARS) else None
            if seen is not None and seen in met:
                messages = met[seen]
            else:
                try:
                    try:
                        _fast_value(field, raw, fast_met)  # a batch's nested members: their repeated values once
                    except _StandAside:  # the field itself says what is wrong, if anything is
                        field.deserialize(raw, key, body)
                    messages = None
                except ValidationError as error:
                    messages = error.messages
                if seen is not None:
                    met[seen] = messages
            if messages:
                errors.setdefault(position, {})[key] = messages
    names = {key for key, _field in declared}
    for position, body in enumerate(bodies):
        for key in sorted(set(body) - names):
            errors.setdefault(position, {})[key] = ["Unknown field."]
    return errors


def load_event(contract: type[Event], body: Any) -> dict[str, Any]:
    """A received event in domain values (with ``event_id`` and ``occurred_at``), or ``Invalid``."""
    if not isinstance(body, dict):
        raise Invalid("An event body must be a JSON object.", {"_schema": ["Expected an object."]})
    envelope = {name: body.get(name) for name in ENVELOPE}
    if not isinstance(envelope["event_id"], str) or not envelope["event_id"]:
        raise Invalid("The event has no event_id.", {"event_id": ["Missing."]})
    try:
        payload = {k: v for k, v in body.items() if k not in ENVELOPE}
        try:
            data = _fast_load(_loader(contract), payload, {}, top=True)
        except _StandAside:  # anything the plain path does not know, or a body that does not match: the schema
            data = _loader(contract).load(payload)
        envelope["occurred_at"] = (UtcTime().deserialize(envelope["occurred_at"])
                                   if envelope["occurred_at"] is not None else None)
    except ValidationError as error:
        messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
        raise Invalid(f"{contract.producer}.{contract.event_type}: {summarise(messages)}", messages) from None
    return {**data, **envelope}


_LOADERS: dict[type[Event], Event] = {}


class _StandAside(Exception):
    """The plain load cannot answer for this body: the contract's schema loads it (and says what is wrong)."""


#: the field classes whose load depends on the value alone (no other field, no context, no hook)
_SCALARS = frozenset({fields.String, fields.UUID, fields.Integer, fields.Boolean, fields.Date, fields.DateTime,
                      UtcTime, fields.Float, fields.Decimal})
_PLAN = "careloop_plan"
_NO_PLAN: list[tuple[str, str, fields.Field]] = []  # kept on a schema the plain load stands aside for


def _plan(schema: marshmallow.Schema) -> list[tuple[str, str, fields.Field]] | None:
    """(key in the body, key in the answer, field) of each field ``schema`` loads, or None when the schema has a
    hook, or a field renamed (``attribute``) or of a kind the plain load does not know; found once per schema and
    kept on it, as ``_accepts`` keeps a field's kind on the field."""
    plan = schema.__dict__.get(_PLAN)
    if plan is None:
        plan = [] if not any(schema._hooks.values()) else _NO_PLAN
        for name, field in schema.load_fields.items():
            if plan is _NO_PLAN or field.attribute is not None or not _plain(field):
                plan = _NO_PLAN
                break
            plan.append((field.data_key or name, name, field))
        setattr(schema, _PLAN, plan)
    return None if plan is _NO_PLAN else plan


def _plain(field: fields.Field) -> bool:
    if type(field) in _SCALARS:
        return True
    if type(field) is fields.List:
        return _plain(field.inner)
    return type(field) is fields.Nested and _plan(field.schema) is not None


def _fast_load(schema: marshmallow.Schema, body: Any, met: dict[tuple[int, type, Any], Any],
               top: bool = False) -> dict[str, Any]:
    """What ``schema.load(body)`` answers, for a body it accepts, without marshmallow's per-value machinery: each
    field's own ``deserialize`` (its validators included), and a JSON scalar met before in the same event by the same
    field (a batch's branch, language, time) not loaded again (``met``). It stands aside (``_StandAside``) for
    whatever it does not answer exactly as the schema would — a hook, a renamed or unknown kind of field, a missing
    key, a key the schema does not declare below the top (nested schemas refuse or drop them by their own
    ``unknown``), a value refused — and ``load_event`` then asks the schema, so every refusal is the schema's own.
    The top level drops undeclared keys (``_loader``'s ``unknown=EXCLUDE``). Held equal to the schema's load over
    every contract's sample and a batch (tests/unit/test_kit_contracts.py)."""
    plan = _plan(schema)
    if plan is None or not isinstance(body, dict):
        raise _StandAside
    if not top and len(body) != len(plan):
        raise _StandAside
    loaded: dict[str, Any] = {}
    for key, name, field in plan:
        if key not in body:
            raise _StandAside
        loaded[name] = _fast_value(field, body[key], met)
    return loaded


def _fast_value(field: fields.Field, raw: Any, met: dict[tuple[int, type, Any], Any]) -> Any:
    if raw is None:
        if field.allow_none:
            return None
        raise _StandAside
    try:
        if type(field) in _SCALARS:
            if not isinstance(raw, _JSON_SCALARS):
                raise _StandAside
            seen = (id(field), type(raw), raw)
            if seen not in met:
                met[seen] = field.deserialize(raw)
            return met[seen]
        if type(field) is fields.List:
            if not isinstance(raw, list):
                raise _StandAside
            value: Any = [_fast_value(field.inner, item, met) for item in raw]
        elif field.many:  # a Nested of many
            if not isinstance(raw, list):
                raise _StandAside
            value = [_fast_load(field.schema, item, met) for item in raw]
        else:
            value = _fast_load(field.schema, raw, met)
        field._validate(value)  # the list's or nested object's own validators, as ``Field.deserialize`` runs them
        return value
    except ValidationError:
        raise _StandAside from None


def _loader(contract: type[Event]) -> Event:
    if contract not in _LOADERS:
        _LOADERS[contract] = contract(unknown=EXCLUDE)
    return _LOADERS[contract]


# --- the documentation ------------------------------------------------------------------------------


def declared() -> list[Contracts]:
    """Every producer's contracts (importing ``PRODUCERS``)."""
    found = []
    for module_name in PRODUCERS:
        module = importlib.import_module(module_name)
        found.extend(value for value in vars(module).values() if isinstance(value, Contracts))
    return found


def handlers() -> Iterator[tuple[str, str, str, type[Event] | None]]:
    """(``service.handler``, producer, event type, the contract it reads) for every service's event handler."""
    from nameko.events import EventHandler

    for module_name in CONSUMERS:
        module = importlib.import_module(module_name)
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and cls.__module__ == module.__name__ and hasattr(cls, "name")):
                continue
            for method_name, method in inspect.getmembers(cls, inspect.isfunction):
                for entrypoint in getattr(method, "nameko_entrypoints", ()):
                    if isinstance(entrypoint, EventHandler):
                        yield (f"{cls.name}.{method_name}", entrypoint.source_service, entrypoint.event_type,
                               getattr(method, "contract", None))


def consumers() -> dict[tuple[str, str], list[str]]:
    """(producer, event type) -> ["service.handler", ...], read off the services' event handlers."""
    found: dict[tuple[str, str], list[str]] = {}
    for handler, producer, event_type, _contract in handlers():
        found.setdefault((producer, event_type), []).append(handler)
    return found


def _describe(field: fields.Field) -> str:
    if isinstance(field, fields.List):
        return f"list of {_describe(field.inner)}"
    if isinstance(field, fields.Nested):
        inner = ", ".join(f"`{name}` {_describe(f)}" for name, f in field.schema.fields.items())
        return f"object ({inner})"
    kind = {UtcTime: "UTC time", fields.UUID: "uuid", fields.Date: "date", fields.Boolean: "bool",
            fields.Integer: "integer", fields.String: "string", fields.Dict: "object"}
    name = next((label for cls, label in kind.items() if isinstance(field, cls)), type(field).__name__)
    choices = next((v.choices for v in field.validators if isinstance(v, marshmallow.validate.OneOf)), None)
    if choices:
        name += " (" + "/".join(f"`{choice}`" for choice in choices) + ")"
    return name + (" or null" if field.allow_none else "")


def render() -> str:
    """docs/events.md's generated part: every event, its fields, its consumers."""
    handlers = consumers()
    lines = []
    for contracts in declared():
        lines += [f"### {contracts.producer}", ""]
        if not contracts.events:
            lines += ["None yet.", ""]
        for event_type, contract in contracts.events.items():
            schema = contract()
            doc = " ".join(inspect.getdoc(contract).split())
            by = ", ".join(f"`{h}`" for h in handlers.get((contracts.producer, event_type), [])) or "none"
            lines += [f"#### `{event_type}`", "", doc, "", f"Consumers: {by}.", "",
                      "| field | type | meaning |", "| --- | --- | --- |"]
            for name, field in schema.fields.items():
                meaning = " ".join(str(field.metadata.get("description", "")).split())
                lines.append(f"| `{name}` | {_describe(field)} | {meaning} |")
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"
BEGIN = "<!-- BEGIN generated by `python -m services.kit.contracts --write`; edit the events.py files, not this -->"
END = "<!-- END generated -->"


def documented(page: str) -> str:
    """The generated part of ``page`` (docs/events.md), between its markers."""
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    return page[start:end].strip("\n") + "\n"


def write_docs(path: Path = DOCS) -> bool:
    """Put ``render()`` between the markers of ``path``; True if that changed it."""
    page = path.read_text(encoding="utf-8")
    fresh = page[:page.index(BEGIN) + len(BEGIN)] + "\n\n" + render() + "\n" + page[page.index(END):]
    if fresh == page:
        return False
    path.write_text(fresh, encoding="utf-8")
    return True


if __name__ == "__main__":  # run as a script this module is a second copy: use the imported one
    import sys

    from services.kit import contracts

    if sys.argv[1:] == ["--write"]:
        print(f"{contracts.DOCS}: {'updated' if contracts.write_docs() else 'already current'}")
    else:
        print(contracts.render(), end="")
