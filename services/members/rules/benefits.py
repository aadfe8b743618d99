"""Benefits: benefit years, quota balances and discounted prices. No I/O.

**Rounding of discounts** (documented for finance): a line's discount is ``amount_minor x rate_bp /
10000`` rounded half up to a whole minor unit (1.5 fen -> 2 fen, 1.49 -> 1), per line; the bill's
discount is the sum of its lines'. A line gets the better of its category's tier rate and the
birthday-month rate, never both (discounts do not stack). Quotas (a free cleaning) are used explicitly
with ``use_quota``, never applied by pricing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.members.rules.programme import MAX_BP, Programme
from services.members.rules.tiers import anniversary, last_anniversary


@dataclass(frozen=True)
class BenefitYear:
    label: int  # the calendar year in which this benefit year starts
    starts_on: date
    ends_on: date  # inclusive


def benefit_year(programme: Programme, enrolled_on: date, on: date) -> BenefitYear:
    """The benefit year that ``on`` falls in: the calendar year, or the membership year from the anniversary."""
    if programme.benefit_year == "calendar":
        return BenefitYear(on.year, date(on.year, 1, 1), date(on.year, 12, 31))
    start = last_anniversary(enrolled_on, on)
    return BenefitYear(start.year, start, anniversary(enrolled_on, start.year + 1) - timedelta(days=1))


def quota_lines(allowed: dict[str, int], used: dict[str, int], year: BenefitYear) -> list[dict[str, Any]]:
    """Each quota the tier gives or the member used this benefit year (``remaining`` never below 0)."""
    lines = []
    for benefit in sorted(set(allowed) | {b for b, n in used.items() if n > 0}):
        grant, spent = allowed.get(benefit, 0), used.get(benefit, 0)
        lines.append({"benefit": benefit, "allowed": grant, "used": spent, "remaining": max(grant - spent, 0),
                      "benefit_year": year.label})
    return lines


def discount_minor(amount_minor: int, rate_bp: int) -> int:
    """The discount on ``amount_minor`` at ``rate_bp`` basis points, rounded half up to a minor unit."""
    return (amount_minor * rate_bp + MAX_BP // 2) // MAX_BP


def price(programme: Programme, tier: str, items: list[dict[str, Any]], birthday_month: bool,
          entitled: bool = True) -> dict[str, Any]:
    """A bill's lines with the member's discounts applied (none when the member is not ``entitled``)."""
    granted = programme.benefits_of(tier)
    rates: dict[str, int] = granted["discounts"]  # type: ignore[assignment]
    birthday_bp: int = granted["birthday_month_discount_bp"] if birthday_month else 0  # type: ignore[assignment]
    lines = []
    for item in items:
        tier_bp = rates.get(item["category"], 0) if entitled else 0
        extra_bp = birthday_bp if entitled else 0
        rate, basis = (tier_bp, "tier") if tier_bp >= extra_bp else (extra_bp, "birthday_month")
        off = discount_minor(item["amount_minor"], rate)
        lines.append({**item, "discount_bp": rate, "discount_minor": off,
                      "net_minor": item["amount_minor"] - off, "basis": basis if rate else None})
    total = sum(item["amount_minor"] for item in items)
    off_total = sum(line["discount_minor"] for line in lines)
    return {"lines": lines, "amount_minor": total, "discount_minor": off_total, "net_minor": total - off_total}
