"""Festival dates resolved per year with the lunar calendar, and the season-tip days."""

from __future__ import annotations

from datetime import date

import pytest

from services.notifications.rules.festivals import festival_dates, festivals_on, season_on
from services.notifications.settings import DEFAULT_SEASONS


@pytest.mark.parametrize(("year", "mid_autumn"), [(2026, date(2026, 9, 25)), (2027, date(2027, 9, 15))])
def test_mid_autumn_is_resolved_per_year(year, mid_autumn):
    assert festival_dates(year)["mid_autumn"] == mid_autumn


@pytest.mark.parametrize(("year", "expected"), [
    (2026, {"new_year": date(2026, 1, 1), "spring_festival": date(2026, 2, 17), "lantern": date(2026, 3, 3),
            "dragon_boat": date(2026, 6, 19), "mid_autumn": date(2026, 9, 25), "double_ninth": date(2026, 10, 18)}),
    (2027, {"new_year": date(2027, 1, 1), "spring_festival": date(2027, 2, 6), "lantern": date(2027, 2, 20),
            "dragon_boat": date(2027, 6, 9), "mid_autumn": date(2027, 9, 15), "double_ninth": date(2027, 10, 8)}),
    (2028, {"new_year": date(2028, 1, 1), "spring_festival": date(2028, 1, 26), "lantern": date(2028, 2, 9),
            "dragon_boat": date(2028, 5, 28), "mid_autumn": date(2028, 10, 3), "double_ninth": date(2028, 10, 26)}),
])
def test_every_festival_of_a_year(year, expected):
    assert festival_dates(year) == expected


def test_festivals_on_a_day_only_those_enabled():
    assert festivals_on(date(2027, 9, 15)) == ["mid_autumn"]
    assert festivals_on(date(2027, 9, 16)) == []
    assert festivals_on(date(2027, 9, 15), enabled=("spring_festival",)) == []


def test_season_tips_go_out_on_their_day():
    assert season_on(date(2027, 3, 1), DEFAULT_SEASONS) == "spring"
    assert season_on(date(2027, 12, 1), DEFAULT_SEASONS) == "winter"
    assert season_on(date(2027, 12, 2), DEFAULT_SEASONS) is None
