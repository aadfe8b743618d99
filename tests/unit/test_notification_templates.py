"""Every journey renders in every language and channel; the member's language with a fallback; dates,
times and money formatted for the language in the group's zone."""

from __future__ import annotations

import pytest

from services.kit.config import group_from_config
from services.kit.errors import Invalid
from services.notifications.rules.journeys import JOURNEYS
from services.notifications.rules.sending import CHANNELS
from services.notifications.templates import LANGUAGES, Renderer, preview

RENDERER = Renderer(group_from_config({}))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("journey", sorted(JOURNEYS))
def test_every_journey_renders_in_every_language_and_channel(journey, language):
    for channel in CHANNELS:
        rendered = RENDERER.render(journey, channel, language, JOURNEYS[journey].sample, member_name="Anna",
                                   home_branch="SH01", link="https://app.example/x")
        assert rendered.language == language
        assert rendered.subject and rendered.text and rendered.body
        assert "{{" not in rendered.text + rendered.body and "None" not in rendered.text
        assert (rendered.html is not None) is (channel == "email")


def test_a_language_without_templates_falls_back_to_the_groups_then_english():
    assert RENDERER.language_for("welcome", "fr") == "zh-Hans"  # the demo group's default language
    assert RENDERER.language_for("welcome", None) == "zh-Hans"
    assert RENDERER.language_for("welcome", "es") == "es"


@pytest.mark.parametrize(("language", "when", "money"), [
    ("en", "Tuesday, December 1, 2026 10:30", "CN¥50.00"),
    ("zh-Hans", "2026年12月1日星期二 10:30", "¥50.00"),
    ("zh-Hant", "2026年12月1日 星期二 上午10:30", "CN¥50.00"),
    ("es", "martes, 1 de diciembre de 2026 10:30", "50,00\xa0CNY"),  # a no-break space, as Babel writes it
])
def test_dates_times_and_money_follow_the_language_in_the_groups_zone(language, when, money):
    reminder = RENDERER.render("appointment_reminder", "email", language, JOURNEYS["appointment_reminder"].sample)
    assert when in reminder.body  # 02:30 UTC is 10:30 in Shanghai
    birthday = RENDERER.render("birthday", "inbox", language, JOURNEYS["birthday"].sample)
    assert money in birthday.body


def test_marketing_sms_carries_the_opt_out_hint_and_other_channels_do_not():
    sample = JOURNEYS["festival"].sample
    assert "Reply STOP" in RENDERER.render("festival", "sms", "en", sample).text
    assert "Reply STOP" not in RENDERER.render("festival", "line", "en", sample).text
    assert "拒收请回复R" in RENDERER.render("festival", "sms", "zh-Hans", sample).text


def test_email_html_escapes_what_it_is_given():
    rendered = RENDERER.render("welcome", "email", "en", {"home_branch": "SH01"}, member_name="<script>x</script>")
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html


def test_unknown_journey_or_channel_is_invalid():
    with pytest.raises(Invalid):
        RENDERER.render("carrier_pigeon", "sms", "en", {})
    with pytest.raises(Invalid):
        RENDERER.render("welcome", "fax", "en", {})


def test_preview_for_a_member_uses_their_name_language_and_branch():
    member = {"full_name": "Ana García", "preferred_language": "es", "home_branch": "HZ01"}
    shown = preview(RENDERER, {"journey": "recall", "channel": "sms", "context": {"recall_type": "implant_review"}},
                    member, "https://app.example")
    assert shown.language == "es" and shown.text.startswith("Ana García, su revisión del implante")
    assert (shown.journey, shown.channel) == ("recall", "sms")
    assert "+8657187001800" in shown.text  # Hangzhou's phone
    sample = preview(RENDERER, {"journey": "welcome", "channel": "email", "language": "zh-Hant"}, None)
    assert sample.subject == "歡迎加入Smile Dental Group" and sample.html
