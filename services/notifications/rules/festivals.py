"""Festival and season dates, resolved per year. No I/O.

Lunar festivals move every year: they are computed with ``lunardate`` (the Chinese lunisolar calendar),
never by hand. A lunar festival of Gregorian year Y is lunar month/day of lunar year Y, which always
falls inside Y (the lunar year starts in January or February).
"""

from __future__ import annotations

import functools
from datetime import date

from lunardate import LunarDate

LUNAR = {
    "spring_festival": (1, 1),  # 春节
    "lantern": (1, 15),  # 元宵节
    "dragon_boat": (5, 5),  # 端午节
    "mid_autumn": (8, 15),  # 中秋节
    "double_ninth": (9, 9),  # 重阳节
}
SOLAR = {"new_year": (1, 1)}  # 元旦
FESTIVALS = (*SOLAR, *LUNAR)


@functools.lru_cache(maxsize=64)
def festival_dates(year: int) -> dict[str, date]:
    """Every festival of Gregorian ``year`` and its date."""
    dates = {code: date(year, month, day) for code, (month, day) in SOLAR.items()}
    for code, (month, day) in LUNAR.items():
        dates[code] = LunarDate(year, month, day).to_solar_date()  # never a leap month: festivals are not
    return dict(sorted(dates.items(), key=lambda item: item[1]))


def festivals_on(day: date, enabled: tuple[str, ...] = FESTIVALS) -> list[str]:
    """The festivals (among ``enabled``) that fall on ``day``."""
    return [code for code, when in festival_dates(day.year).items() if when == day and code in enabled]


def season_on(day: date, seasons: dict[str, str]) -> str | None:
    """The season whose tip goes out on ``day`` (``seasons`` maps local ``MM-DD`` to a season)."""
    return seasons.get(day.strftime("%m-%d"))
