"""The console's words and cookies, without a browser: every message in every language, every message a
template names exists, and the cookie and CSRF tokens hold only for what they were made for."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from gateway.auth.tokens import TokenKeys
from gateway.console import cookies
from gateway.console.i18n import MESSAGES, Translator, choose_language
from gateway.console.imports import COUNTS as IMPORT_COUNTS
from gateway.console.pages import KPI_FIGURES
from services.interfaces.models import IMPORT_STATES
from services.interfaces.schemas import IMPORT_KINDS
from services.kit.config import LANGUAGES

TEMPLATES = Path(__file__).resolve().parents[2] / "gateway" / "console" / "templates"
KEYS = TokenKeys({"k1": base64.b64decode(base64.b64encode(b"x" * 32))}, "k1")


def test_every_message_has_every_language_and_no_language_is_left_in_english():
    for message_id, texts in MESSAGES.items():
        assert set(texts) == set(LANGUAGES), message_id
        assert all(text.strip() for text in texts.values()), message_id


def test_every_message_the_templates_name_is_in_the_catalogue():
    named = set()
    for template in TEMPLATES.glob("*.html"):
        named |= set(re.findall(r"""\bt\(["']([a-z_.]+)["']""", template.read_text()))
    named.discard("kpi.")  # the KPI table names its figures' messages: kpi.<figure>
    named |= {f"kpi.{name}" for name in KPI_FIGURES}
    for prefix, codes in (("import_kind.", IMPORT_KINDS), ("import_state.", IMPORT_STATES),  # the imports pages
                          ("import_count.", IMPORT_COUNTS)):
        named.discard(prefix)
        named |= {prefix + code for code in codes}
    assert named and named <= set(MESSAGES), sorted(named - set(MESSAGES))


def test_money_and_rates_are_written_in_the_locale_from_integers():
    assert Translator("en").money(128050) == "CN¥1,280.50"
    assert Translator("zh-Hans").money(128050) == "¥1,280.50"
    assert Translator("es").basis_points(8126) == "81,3%"


def test_the_language_is_the_remembered_one_else_the_browser_s():
    assert choose_language("es", [("zh-CN", 1)]) == "es"
    assert choose_language(None, [("zh-TW", 1)]) == "zh-Hant"
    assert choose_language(None, [("fr", 1)]) == "en"


def test_a_session_cookie_and_a_csrf_token_hold_only_for_their_session():
    sid = "3f2b8c1e-9d4a-4e6f-8a2b-1c3d5e7f9a0b"
    value = cookies.session_cookie(KEYS, sid)
    assert cookies.read_session_cookie(KEYS, value) == sid
    assert cookies.read_session_cookie(KEYS, value.replace(sid, "3f2b8c1e-9d4a-4e6f-8a2b-1c3d5e7f9a0c")) is None
    token = cookies.csrf_token(KEYS, sid)
    assert cookies.csrf_valid(KEYS, sid, token)
    assert not cookies.csrf_valid(KEYS, "another-session", token)
    assert not cookies.csrf_valid(KEYS, sid, None)


def test_every_code_the_console_shows_has_its_words_in_every_language():
    from gateway.console.i18n import WORDS
    from services.records.events import ITEM_CATEGORIES, VISIT_KINDS
    from services.records.rules.followups import OUTCOMES, QUEUES, STATES, TASK_STATUSES
    from services.records.rules.lifecycle import APPOINTMENT_STATUSES, VISIT_STATUSES

    shown = {*ITEM_CATEGORIES, *VISIT_KINDS, *OUTCOMES, *QUEUES, *STATES, *TASK_STATUSES, *APPOINTMENT_STATUSES,
             *VISIT_STATUSES, "active", "frozen", "closed", "merged"}
    assert shown <= set(WORDS), sorted(shown - set(WORDS))
    assert all(set(texts) == set(LANGUAGES) for texts in WORDS.values())
    assert Translator("zh-Hant").word("no_answer") == "無人接聽" and Translator("en").word("unknown") == "unknown"


def test_the_member_page_s_cookie_and_the_console_s_are_never_read_as_each_other():
    from gateway.member.http import SESSION_PURPOSE

    sid = "3f2b8c1e-9d4a-4e6f-8a2b-1c3d5e7f9a0b"
    member = cookies.session_cookie(KEYS, sid, SESSION_PURPOSE)
    assert cookies.read_session_cookie(KEYS, member, SESSION_PURPOSE) == sid
    assert cookies.read_session_cookie(KEYS, member) is None
    assert cookies.read_session_cookie(KEYS, cookies.session_cookie(KEYS, sid), SESSION_PURPOSE) is None


def test_the_member_page_s_words_are_in_every_language_with_the_same_placeholders():
    member_ids = [message_id for message_id in MESSAGES if message_id.startswith("m.")]
    assert len(member_ids) > 20
    for message_id in member_ids:
        placeholders = {language: set(re.findall(r"\{(\w+)\}", text)) for language, text in MESSAGES[message_id].items()}
        assert len({frozenset(found) for found in placeholders.values()}) == 1, (message_id, placeholders)
    assert "3" in Translator("es")("m.code_sent", minutes=3)
