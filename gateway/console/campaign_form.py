"""The campaign form: a campaign's terms as a person types them, to and from the terms that
``points.create_campaign`` / ``update_campaign`` take. Pure (no request, no RPC).

Every term of ``CampaignTermsSchema`` has a box: dates as the browser's date boxes send them, the multiplier
as typed (``1.5``; points reads it, at most four decimals), bonus points as a whole number, the minimum spend
in the currency's major units (to minor units without a float), days of the month as ``1, 18``, and the
filters (tiers, branches, categories, segments, visit kinds, weekdays) as ticked boxes — none ticked: every
one. Points checks the result with the programme file's own campaign rule and names the field it refuses
(``multiplier``, ``ends_on``...): ``field_errors`` puts that message on its box.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gateway.console.programme_form import parse_box, shown

TEXTS = ("code", "name", "starts_on", "ends_on", "days_of_month", "multiplier", "bonus_points", "min_spend")
LISTS = ("tiers", "branches", "categories", "segments", "kinds", "weekdays")
FIELDS = TEXTS + LISTS
ONE_X = 10_000  # basis points: the programme's 1x
BOX_OF = {"multiplier_bp": "multiplier", "min_spend_minor": "min_spend"}  # the rule's names for two boxes


def typed_from(form: Any) -> dict[str, Any]:
    """What the posted form holds, per box (lists for the ticked boxes), stripped."""
    typed: dict[str, Any] = {name: form.get(name, "").strip() for name in TEXTS}
    typed.update({name: [value for value in form.getlist(name) if value] for name in LISTS})
    return typed


def typed_of(campaign: dict[str, Any]) -> dict[str, Any]:
    """A campaign as the form shows it (the API's answer: ``multiplier_bp``, minor units, ISO dates)."""
    bp = campaign.get("multiplier_bp") or ONE_X
    return {"code": campaign["code"], "name": campaign["name"], "starts_on": campaign.get("starts_on") or "",
            "ends_on": campaign.get("ends_on") or "",
            "days_of_month": ", ".join(str(day) for day in campaign.get("days_of_month") or ()),
            "multiplier": "" if bp == ONE_X else format(Decimal(bp).scaleb(-4).normalize(), "f"),
            "bonus_points": str(campaign["bonus_points"]) if campaign.get("bonus_points") else "",
            "min_spend": shown(campaign.get("min_spend_minor") or None, "money"),
            **{name: [str(value) for value in campaign.get(name) or ()] for name in LISTS}}


def terms_from(typed: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The terms the form describes, and the boxes that could not be read (box -> message id). An empty box
    is left out: the term takes its default (no dates, 1x, no bonus, no minimum)."""
    terms: dict[str, Any] = {"code": typed["code"], "name": typed["name"]}
    problems: dict[str, str] = {}
    for name in ("starts_on", "ends_on", "multiplier"):
        if typed[name]:
            terms[name] = typed[name]  # points reads dates and multipliers and names what it cannot
    if typed["days_of_month"]:
        try:
            terms["days_of_month"] = [int(part) for part in typed["days_of_month"].replace(" ", "").split(",") if part]
        except ValueError:
            problems["days_of_month"] = "days_list"
    for box, term, kind in (("bonus_points", "bonus_points", "count"), ("min_spend", "min_spend_minor", "money")):
        try:
            value = parse_box(typed[box], kind)
        except ValueError as wrong:
            problems[box] = str(wrong)
        else:
            if value is not None:
                terms[term] = value
    for name in LISTS:
        if typed[name]:
            terms[name] = [int(value) if name == "weekdays" and value.isdigit() else value for value in typed[name]]
    return terms, problems


def field_errors(fields: dict[str, Any] | None) -> tuple[dict[str, list[str]], list[str]]:
    """Points' field errors on the boxes they name (box -> messages), and the rest (about the campaign as a
    whole: "a campaign needs a multiplier above 1 or bonus points")."""
    on_boxes: dict[str, list[str]] = {}
    rest: list[str] = []
    for key, messages in (fields or {}).items():
        texts = [messages] if isinstance(messages, str) else [str(text) for text in messages]
        box = BOX_OF.get(str(key), str(key))
        if box in FIELDS:
            on_boxes.setdefault(box, []).extend(texts)
        else:
            rest.extend(texts)
    return on_boxes, rest
