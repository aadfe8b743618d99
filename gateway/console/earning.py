"""The console's earning rules page (issue 21 item 2): a group admin reads the points earning rules in force and
changes them; the next bill earns by the change.

One box per rule (a map, such as the tier multipliers, a box per key; the kinds that earn, a checkbox each). The
page sends points (``set_earning_rules``, as ``PUT /v1/programme/earning``) the rules a version stored already
and those whose boxes were changed, so a rule nobody touched keeps following the programme file. Points checks
them with the programme file's own parsing; its field errors (``tier_multipliers.gold``) go back on the boxes of
those names. The form carries the version it was drawn from (``expected_version``: a change made meanwhile is a
409, not overwritten), an idempotency key made when it was drawn (a double click saves once) and the CSRF token.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from gateway.console.http import page, render
from gateway.console.pages import _form_key, _key
from services.kit.errors import Conflict, Invalid
from services.points.rules.programme import SATISFACTION
from services.records.events import VISIT_KINDS

WHOLE = re.compile(r"-?[0-9]{1,12}")
NUMBERS = ("spend_points_per_unit", "visit_points", "activity_points", "referral_enrolment_points",
           "referral_first_paid_visit_points", "interaction_daily_cap")
MAPS = ("tier_multipliers", "review_points", "interaction_points")
KINDS = ("visit_kinds", "activity_kinds")


@dataclass(frozen=True)
class Box:
    """One box of the form: its input name (the body's field path, as points names it in a 422) and text."""

    name: str
    key: str  # the map's key (a tier, a satisfaction, an interaction kind); empty for a single number
    value: str


def _shown(field: str, value: Any) -> str:
    """A rule in force as its box shows it: a multiplier as 1.5, points as a whole number."""
    if field == "tier_multipliers":
        return format(Decimal(value).scaleb(-4).normalize(), "f")
    return str(value)


def _typed(text: str) -> Any:
    """What a box sends: a whole number as a number, anything else as typed (points' parsing says what is wrong
    with it, on its box)."""
    text = text.strip()
    return int(text) if WHOLE.fullmatch(text) else text


def _keys(field: str, rules: dict[str, Any]) -> list[str]:
    return list(SATISFACTION) if field == "review_points" else list(rules[field])


def boxes(rules: dict[str, Any], typed: dict[str, str] | None) -> dict[str, list[Box]]:
    """The boxes per rule, with what was typed, else the rule in force."""
    def box(name: str, key: str, value: Any) -> Box:
        return Box(name, key, typed[name] if typed is not None and name in typed else _shown(name.split(".")[0], value))

    found = {field: [box(field, "", rules[field])] for field in NUMBERS}
    for field in MAPS:
        found[field] = [box(f"{field}.{key}", key, rules[field].get(key, 0)) for key in _keys(field, rules)]
    return found


def change(rules: dict[str, Any], stored: list[str], posted: Any) -> dict[str, Any]:
    """The body for points: the rules stored already and those whose boxes differ from the rules in force."""
    drawn = boxes(rules, None)
    body: dict[str, Any] = {}
    for field in (*NUMBERS, *MAPS):
        typed = {box.key: posted.get(box.name, "") for box in drawn[field]}
        if field in stored or any(typed[box.key].strip() != box.value for box in drawn[field]):
            if field in NUMBERS:
                body[field] = _typed(typed[""])
            elif field == "tier_multipliers":
                body[field] = {key: text.strip() for key, text in typed.items()}
            else:
                body[field] = {key: _typed(text) for key, text in typed.items()}
    for field in KINDS:
        chosen = [kind for kind in VISIT_KINDS if kind in posted.getlist(field)]
        if field in stored or set(chosen) != set(rules[field]):
            body[field] = chosen
    return body


class ConsoleEarning:
    """The earning rules page: read by ``points-rules:read`` (branch managers too: the boxes shown disabled), changed
    by ``points-rules:write`` (group admins, as ``PUT /v1/programme/earning``). Composed
    into the gateway beside ``EarningRoutes``, whose points upstream (``earning``) it uses."""

    @page("GET", "/console/settings/earning", "points-rules:read")
    def console_earning(self, request: Request) -> Response:
        saved = request.args.get("saved")
        return self._earning(request, self.earning.get_earning_rules(), typed=None, key=uuid.uuid4().hex,
                             saved=int(saved) if saved and saved.isdigit() else None)

    @page("POST", "/console/settings/earning", "points-rules:write")
    def console_earning_save(self, request: Request) -> Response:
        current = self.earning.get_earning_rules()
        version = request.form.get("expected_version", "")
        body = {**change(current["rules"], current["stored"], request.form),
                "expected_version": int(version) if version.isdigit() else version}
        try:
            stored = self.earning.set_earning_rules(body, idempotency_key=_key(request))
        except (Invalid, Conflict) as refused:
            fields = getattr(refused, "fields", None) or {}
            names = {box.name for group in boxes(current["rules"], None).values() for box in group} | set(KINDS)
            return self._earning(request, current, typed=request.form.to_dict(flat=False), key=_form_key(request),
                                 status=refused.status, problem=str(refused),
                                 errors={name: list(fields[name]) for name in fields if name in names},
                                 others=[f"{name}: {' '.join(fields[name])}" for name in fields if name not in names],
                                 expected=version)
        return redirect(f"/console/settings/earning?saved={stored['version']}", 303)

    def _earning(self, request: Request, current: dict[str, Any], *, typed: dict[str, list[str]] | None, key: str,
                 status: int = 200, **context: Any) -> Response:
        for name in ("problem", "saved"):
            context.setdefault(name, None)
        context.setdefault("errors", {})
        context.setdefault("others", [])
        context.setdefault("expected", current["version"])
        rules = current["rules"]
        chosen = {field: typed.get(field, []) if typed is not None else rules[field] for field in KINDS}
        flat = {name: values[-1] for name, values in typed.items()} if typed is not None else None
        t = request.t
        return render(request, "earning.html", status, current=current, rules=rules, key=key,
                      boxes=boxes(rules, flat), chosen=chosen, kinds=VISIT_KINDS,
                      labels={"tier_multipliers": {code: t.tier(code) for code in rules["tier_multipliers"]},
                              "review_points": {s: t(f"earning_satisfaction.{s}") for s in SATISFACTION},
                              "interaction_points": {kind: kind for kind in rules["interaction_points"]}},
                      **context)
