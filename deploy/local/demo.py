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


CATEGORIES = [("cleaning", "CLN-01", 380_00), ("exam", "EXM-01", 150_00), ("treatment", "TRT-02", 1_200_00),
              ("whitening", "WHT-01", 2_800_00), ("implant", "IMP-01", 9_800_00), ("orthodontics", "ORT-03", 6_500_00)]


def demo_visits(member_count: int, seed: int = 7) -> list[tuple[int, dict[str, Any]]]:
    """Paid visits of about half the demo members: (member index, bill); a few are big enough for a tier."""
    rng = random.Random(seed)
    visits = []
    for index in range(0, member_count, 2):
        for number in range(rng.randint(1, 3)):
            category, code, amount = rng.choice(CATEGORIES)
            method = rng.choice(["card", "mobile", "cash", "insurance"])
            visits.append((index, {
                "bill_id": f"DEMO-{index:03d}-{number}", "branch": BRANCHES[index % len(BRANCHES)],
                "currency": "CNY", "items": [{"category": category, "code": code, "amount_minor": amount}],
                "payments": [{"method": method, "amount_minor": amount}],
            }))
    return visits
