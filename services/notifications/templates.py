"""Message templates: Jinja2 per journey (and channel, where one needs its own words), in four languages.

Files live in ``templates/<language>/<journey>.j2`` with blocks ``subject``, ``text`` (the short form:
SMS, LINE, WeChat) and ``body`` (the long form: e-mail, inbox; defaults to ``text``). A channel that
needs other words has ``<journey>.<channel>.j2`` beside it. Words shared by templates (tier and festival
names, preparation notes, advice per treatment) are in ``templates/labels.yml``.

The member's language is used when a template exists in it, else the group's default language, else
English. Dates, times and money are formatted for that language with Babel, times in the group's zone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_currency, format_decimal, get_currency_precision
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, pass_context

from services.kit.config import (
    LANGUAGES,  # noqa: F401 - one list for the group
    Group,
)
from services.kit.errors import Invalid
from services.notifications.events import CHANNELS
from services.notifications.rules.alerts import JOURNEY as STAFF_ALERT
from services.notifications.rules.composed import pick_texts, render_text
from services.notifications.rules.journeys import COMPOSED, JOURNEYS, link_for, parse_time

SIGN_IN_CODE = "sign_in_code"  # a member's one-time code (``sign_in.py``)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
LOCALES = {"en": "en", "zh-Hans": "zh_Hans_CN", "zh-Hant": "zh_Hant", "es": "es"}
FALLBACK_LANGUAGE = "en"


@dataclass(frozen=True)
class Rendered:
    journey: str
    channel: str
    language: str
    subject: str
    text: str
    body: str
    html: str | None


def _as_datetime(value: Any) -> datetime:
    return parse_time(value) if isinstance(value, str) else value


def _as_date(value: Any) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    return value.date() if isinstance(value, datetime) else value


@pass_context
def _datetime_filter(context: Any, value: Any, form: str = "medium") -> str:
    return format_datetime(_as_datetime(value), form, tzinfo=context["_zone"], locale=context["_locale"])


@pass_context
def _when_filter(context: Any, value: Any) -> str:
    """The full local date and the short time: "Tuesday, December 1, 2026 10:30 AM"."""
    moment = _as_datetime(value).astimezone(context["_zone"])
    return (f"{format_date(moment.date(), 'full', locale=context['_locale'])} "
            f"{format_time(moment, 'short', locale=context['_locale'])}")


@pass_context
def _date_filter(context: Any, value: Any, form: str = "long") -> str:
    if isinstance(value, (str, date)) and not isinstance(value, datetime):
        return format_date(_as_date(value), form, locale=context["_locale"])
    return format_date(_as_datetime(value).astimezone(context["_zone"]).date(), form, locale=context["_locale"])


@pass_context
def _time_filter(context: Any, value: Any, form: str = "short") -> str:
    return format_time(_as_datetime(value), form, tzinfo=context["_zone"], locale=context["_locale"])


@pass_context
def _money_filter(context: Any, amount_minor: int, currency: str | None = None) -> str:
    currency = currency or context["_currency"]
    amount = Decimal(int(amount_minor)).scaleb(-get_currency_precision(currency))
    return format_currency(amount, currency, locale=context["_locale"])


@pass_context
def _number_filter(context: Any, value: int) -> str:
    return format_decimal(value, locale=context["_locale"])


@pass_context
def _percent_off_filter(context: Any, rate_bp: int) -> str:
    return format_decimal(Decimal(int(rate_bp)) / 100, locale=context["_locale"]) + "%"


@pass_context
def _label(context: Any, kind: str, key: Any) -> str:
    """A shared word of the message's language (``label("tiers", "gold")``), its default, or the key."""
    table = context["words"].get(kind) or {}
    return str(table.get(key) or table.get("default") or key or "")


@functools.lru_cache(maxsize=1)
def labels() -> dict[str, dict[str, Any]]:
    with open(TEMPLATE_DIR / "labels.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _environment(autoescape: bool) -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), undefined=StrictUndefined, autoescape=autoescape,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.filters.update({"datetime": _datetime_filter, "date": _date_filter, "time": _time_filter, "when": _when_filter,
                        "money": _money_filter, "number": _number_filter, "percent_off": _percent_off_filter})
    env.globals["label"] = _label
    return env


class Renderer:
    """Renders a journey's message for one channel and language; one per process (templates are cached)."""

    def __init__(self, group: Group) -> None:
        self.group = group
        self.text_env = _environment(autoescape=False)
        self.html_env = _environment(autoescape=True)

    def language_for(self, journey: str, wanted: str | None) -> str:
        for language in (wanted, self.group.default_language, FALLBACK_LANGUAGE):
            if language in LANGUAGES and (TEMPLATE_DIR / language / f"{journey}.j2").exists():
                return language
        raise Invalid(f"No template for {journey}.", {"journey": [f"No template for {journey}."]})

    def render(self, journey: str, channel: str, language: str | None, context: dict[str, Any],
               member_name: str | None = None, home_branch: str | None = None, link: str | None = None) -> Rendered:
        # staff alerts (the group's language and English) and members' sign-in codes are no journeys
        if journey not in JOURNEYS and journey not in (STAFF_ALERT, SIGN_IN_CODE):
            raise Invalid(f"Unknown journey {journey!r}.", {"journey": ["Unknown journey."]})
        if channel not in CHANNELS:
            raise Invalid(f"Unknown channel {channel!r}.", {"channel": ["Unknown channel."]})
        if journey == COMPOSED:  # a manager's words, stored with the journey's version (``rules.composed``)
            language, texts = pick_texts(context["texts"], language, self.group.default_language)
            facts = {key: value for key, value in context.items() if key != "texts"}
            variables = {**self._variables(language, facts, member_name, home_branch, link), "channel": channel}
            subject = _squash(render_text(texts["subject"], variables))
            text = body = render_text(texts["text"], variables).strip()
        else:
            language = self.language_for(journey, language)
            template = self._template(journey, channel, language)
            variables = self._variables(language, context, member_name, home_branch, link)
            variables["channel"] = channel
            blocks = template.blocks
            render_context = template.new_context(variables)
            subject = _squash("".join(blocks["subject"](render_context)))
            text = "".join(blocks["text"](render_context)).strip()
            body = "".join(blocks["body"](render_context)).strip() if "body" in blocks else text
        html = None
        if channel == "email":
            layout = self.html_env.get_template("_email.html.j2")
            html = layout.render(subject=subject, paragraphs=[p for p in body.split("\n\n") if p.strip()],
                                 group_name=self.group.name, link=link, language=language)
        return Rendered(journey=journey, channel=channel, language=language, subject=subject, text=text, body=body,
                        html=html)

    def _template(self, journey: str, channel: str, language: str) -> Any:
        try:
            return self.text_env.get_template(f"{language}/{journey}.{channel}.j2")
        except TemplateNotFound:
            return self.text_env.get_template(f"{language}/{journey}.j2")

    def _variables(self, language: str, context: dict[str, Any], member_name: str | None, home_branch: str | None,
                   link: str | None) -> dict[str, Any]:
        words = labels()[language]
        branch_code = context.get("branch") or context.get("home_branch") or home_branch
        branch = self.group.branches.get(branch_code) if branch_code else None
        return {
            **context,
            "member": {"name": member_name or words["member_fallback"], "named": bool(member_name)},
            "group": {"name": self.group.name},
            "branch": ({"code": branch.code, "name": branch.name, "address": branch.address, "phone": branch.phone}
                       if branch else None),
            "words": words,
            "link": link,
            "_locale": LOCALES[language],
            "_zone": self.group.zone,
            "_currency": self.group.currency,
        }


def _squash(text: str) -> str:
    return " ".join(text.split())


SAMPLE_NAMES = {"en": "Anna Smith", "zh-Hans": "李娜", "zh-Hant": "陳美玲", "es": "Ana García"}


def preview(renderer: Renderer, request: dict[str, Any], member: dict[str, Any] | None,
            app_url: str = "") -> Rendered:
    """A journey's message as it would go out: for a member (their name, language, branch) or a sample."""
    journey = request["journey"]
    context = {**JOURNEYS[journey].sample, **(request.get("context") or {})}
    language = request.get("language") or (member or {}).get("preferred_language")
    resolved = renderer.language_for(journey, language)
    name = member.get("full_name") if member else SAMPLE_NAMES.get(resolved)
    return renderer.render(journey, request["channel"], resolved, context, member_name=name,
                           home_branch=(member or {}).get("home_branch"), link=link_for(journey, context, app_url))
