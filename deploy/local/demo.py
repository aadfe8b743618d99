"""Demo members for ``make run``: fifty people of the demo group, the same every time."""

from __future__ import annotations

import random
from typing import Any

SURNAMES = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun"]
GIVEN = ["Wei", "Fang", "Min", "Jing", "Lei", "Yan", "Jun", "Hui", "Tao", "Ling", "Qiang", "Xiu", "Hao", "Na"]
FOREIGN = [("Anna", "Schmidt", "en"), ("Lucia", "Garcia", "es"), ("Diego", "Martinez", "es"),
           ("Emily", "Brown", "en"), ("Kenji", "Watanabe", "en"), ("Mei", "Lam", "zh-Hant")]
BRANCHES = ["SH01", "SH02", "HZ01"]
PREFIXES = ["138", "139", "136", "158", "186", "188"]


def demo_members(count: int = 50, seed: int = 2026) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    members = []
    for number in range(count):
        if number % 9 == 8:
            first, last, language = FOREIGN[(number // 9) % len(FOREIGN)]
            name = f"{first} {last}"
        else:
            name = f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}{rng.choice(GIVEN).lower()}"
            language = rng.choice(["zh-Hans", "zh-Hans", "zh-Hans", "zh-Hant"])
        year = rng.randint(1950, 2015)
        members.append({
            "full_name": name,
            "phone": f"{rng.choice(PREFIXES)}{rng.randint(0, 99999999):08d}",
            "birth_date": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "gender": rng.choice(["female", "male", "female", "male", "undisclosed"]),
            "preferred_language": language,
            "home_branch": BRANCHES[number % len(BRANCHES)],
            "consents": {"sms": rng.random() < 0.85, "email": rng.random() < 0.4,
                         "wechat": rng.random() < 0.6, "line": False, "marketing": rng.random() < 0.5},
            "source": "desk",
        })
    return members
