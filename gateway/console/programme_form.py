"""The programme settings form: the tier thresholds as a person types them, to and from the programme
document that ``members.set_programme`` / ``preview_programme`` take. Pure (no request, no RPC).

The form edits the thresholds of the programme in force and nothing else of it: every other part of
the document (names, benefits, review and segment rules) goes back as it came. Money is typed in the
currency's major units (``5000`` or ``5000.50``) and becomes minor units without a float; an empty box
means the path does not apply to that tier. The members service checks the result with the schema and
rules the programme file is checked with; its field errors (``tiers.2.thresholds.spend_minor``) are
put back on the boxes they are about.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

PATHS = (("spend_minor", "money"), ("single_top_up_minor", "money"), ("points_12m", "count"), ("visits_12m", "count"))
MAX_MONEY = Decimal("100000000")  # 100 million in major units: a typo, not a threshold
MAX_COUNT = 10_000_000


@dataclass(frozen=True)
class Box:
    """One threshold box of the form: its input name, the tier and path it sets, and its text."""

    name: str
    tier: str
    path: str
    kind: str  # "money" or "count"
    value: str


def box_name(code: str, path: str) -> str:
    return f"{code}.{path}"


def shown(value: int | None, kind: str) -> str:
    """A stored threshold as the box shows it (major units for money, no trailing zeros)."""
    if value is None:
        return ""
    if kind == "money":
        return format(Decimal(value).scaleb(-2).normalize(), "f")
    return str(value)


def boxes(document: dict[str, Any], typed: dict[str, str] | None = None) -> list[list[Box]]:
    """The boxes per tier above the entry tier (lowest first), with what was typed, else the document's."""
    found = []
    for tier in document["tiers"][1:]:
        row = []
        for path, kind in PATHS:
            name = box_name(tier["code"], path)
            value = typed[name] if typed is not None and name in typed else shown(tier["thresholds"].get(path), kind)
            row.append(Box(name, tier["code"], path, kind, value))
        found.append(row)
    return found


def parse_box(text: str, kind: str) -> int | None:
    """A box as typed: None when empty, else minor units (``money``) or a whole number (``count``); ``ValueError``
    with the message id of what is wrong."""
    text = text.strip().replace(",", "")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError("not_a_number") from None
    if value < 0:
        raise ValueError("not_negative")
    if kind == "money":
        if value != value.quantize(Decimal("0.01")) or value > MAX_MONEY:
            raise ValueError("money_two_decimals")
        return int(value * 100)
    if value != value.to_integral_value() or value > MAX_COUNT:
        raise ValueError("whole_number")
    return int(value)


def with_thresholds(document: dict[str, Any], typed: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``document`` with the thresholds typed, and the boxes that could not be read (name -> message id)."""
    changed = copy.deepcopy(document)
    problems: dict[str, str] = {}
    for tier in changed["tiers"][1:]:
        for path, kind in PATHS:
            name = box_name(tier["code"], path)
            try:
                tier["thresholds"][path] = parse_box(typed.get(name, ""), kind)
            except ValueError as wrong:
                problems[name] = str(wrong)
    return changed, problems


def field_errors(document: dict[str, Any], fields: dict[str, Any]) -> tuple[dict[str, list[str]], list[str]]:
    """The members service's field errors put on the form's boxes (name -> messages), and the rest
    (messages about the programme as a whole, or a part the form does not edit)."""
    codes = [tier["code"] for tier in document["tiers"]]
    on_boxes: dict[str, list[str]] = {}
    rest: list[str] = []
    for key, texts in _flat(fields or {}):
        parts = str(key).split(".")
        # "programme." prefixes the schema's errors of a change; the rules' errors name tiers.<i>...
        if parts and parts[0] == "programme":
            parts = parts[1:]
        if len(parts) >= 3 and parts[0] == "tiers" and parts[1].isdigit() and parts[2] == "thresholds" \
                and int(parts[1]) < len(codes):
            code = codes[int(parts[1])]
            targets = [box_name(code, parts[3])] if len(parts) > 3 else [box_name(code, path) for path, _ in PATHS]
            for target in targets:
                on_boxes.setdefault(target, []).extend(texts)
        else:
            rest.extend(f"{key}: {text}" for text in texts)
    return on_boxes, rest


def _flat(fields: dict[Any, Any], prefix: str = "") -> list[tuple[str, list[str]]]:
    """Field errors as (dotted path, messages): the rules name paths (``tiers.2.thresholds``), marshmallow
    nests them (``{"programme": {"tiers": {1: {...}}}}``)."""
    found: list[tuple[str, list[str]]] = []
    for key, value in fields.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and not (prefix and str(key).isdigit() and _leaf(value)):
            found += _flat(value, path)
        else:
            found.append((path, _texts(value)))
    return found


def _leaf(value: dict[Any, Any]) -> bool:
    """A dict of list positions to messages (``{"0": ["Not a valid integer."]}``): one field's messages."""
    return all(isinstance(item, list | str) for item in value.values())


def _texts(messages: Any) -> list[str]:
    """Field messages as a flat list of strings (marshmallow nests dicts and lists)."""
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, dict):
        return [text for value in messages.values() for text in _texts(value)]
    if isinstance(messages, list | tuple):
        return [text for value in messages for text in _texts(value)]
    return [str(messages)]
