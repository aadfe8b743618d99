"""A synthetic membership for the members benchmarks, written with PostgreSQL COPY in chunks (bounded memory).

Deterministic for a seed. ``day`` is the night being benchmarked: enrolments spread over the 5 years
before it (so about 1/365 of the members have their review that day), visits over the 2 years before it.
"""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.members.rules.tiers import next_anniversary

BRANCHES = ("SH01", "SH02", "HZ01")
TIERS = (("standard", 70), ("silver", 20), ("gold", 8), ("diamond", 2))
VISIT_COUNTS = ((0, 20), (1, 30), (2, 15), (3, 10), (5, 8), (7, 7), (12, 8), (25, 2))
KINDS = (("return", 85), ("first", 10), ("emergency", 3), ("free_clinic", 2))
CHUNK = 50_000
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def _weighted(rng: random.Random, table: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([value for value, _ in table], weights=[weight for _, weight in table])[0]


def _code(number: int) -> str:
    letters = []
    for _ in range(8):
        number, digit = divmod(number, len(ALPHABET))
        letters.append(ALPHABET[digit])
    return "".join(letters)


class Copier:
    """Rows buffered per table and sent with COPY every ``CHUNK`` rows."""

    def __init__(self, connection: Any, table: str, columns: tuple[str, ...]) -> None:
        self.connection, self.table, self.columns = connection, table, columns
        self.buffer = io.StringIO()
        self.pending = 0
        self.written = 0

    def add(self, *values: Any) -> None:
        self.buffer.write("\t".join(r"\N" if v is None else str(v) for v in values) + "\n")
        self.pending += 1
        if self.pending >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.buffer.seek(0)
        with self.connection.cursor() as cursor:
            cursor.copy_expert(f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN", self.buffer)
        self.written += self.pending
        self.buffer, self.pending = io.StringIO(), 0


def _members(rng: random.Random, count: int, day: date) -> Iterator[tuple[Any, ...]]:
    for number in range(count):
        member_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        enrolled_on = day - timedelta(days=rng.randint(1, 5 * 365))
        enrolled_at = datetime.combine(enrolled_on, time(2, 0), UTC) + timedelta(seconds=rng.randint(0, 36_000))
        roll = rng.random()
        status = "active" if roll < 0.97 else ("frozen" if roll < 0.99 else "closed")
        yield member_id, number, enrolled_on, enrolled_at, status, _weighted(rng, TIERS), rng.choice(BRANCHES)


def generate(connection: Any, count: int, day: date, seed: int = 5) -> dict[str, int]:
    """Write ``count`` members and their activity; returns rows written per table."""
    rng = random.Random(seed)
    members = Copier(connection, "members", (
        "id", "card_number", "referral_code", "gender", "preferred_language", "consent_sms", "consent_email",
        "consent_wechat", "consent_line", "consent_marketing", "consents_updated_at", "home_branch", "status", "tier",
        "source", "enrolled_at", "updated_at", "tier_since", "tier_review_on", "tier_pending", "tier_pending_on"))
    visits = Copier(connection, "member_visits", (
        "visit_id", "member_id", "branch", "kind", "day", "completed_at", "completed", "qualifying_minor",
        "refunded_minor", "fully_refunded"))
    points = Copier(connection, "member_points", ("posting_id", "member_id", "day", "points", "rule"))
    top_ups = Copier(connection, "member_top_ups", ("topup_id", "member_id", "day", "amount_minor"))
    summary = Copier(connection, "member_activity", (
        "member_id", "visits_total", "spend_total_minor", "first_visit_on", "last_visit_on", "first_paid_visit_on",
        "updated_at"))
    now = datetime.combine(day, time(0, 0), UTC).isoformat()
    serial = 0
    for member_id, number, enrolled_on, enrolled_at, status, tier, branch in _members(rng, count, day):
        review_on = next_anniversary(enrolled_on, day - timedelta(days=1)) if status != "closed" else None
        pending = pending_on = None
        if tier != "standard" and rng.random() < 0.002:
            pending, pending_on = {"silver": "standard", "gold": "silver", "diamond": "gold"}[tier], day
        members.add(member_id, f"88{number:010d}", _code(number), "undisclosed", "zh-Hans", "t", "f", "f", "f", "f",
                    enrolled_at.isoformat(), branch, status, tier, "import", enrolled_at.isoformat(),
                    enrolled_at.isoformat(), enrolled_at.isoformat(), review_on, pending, pending_on)
        days = sorted(day - timedelta(days=rng.randint(1, 730)) for _ in range(_weighted(rng, VISIT_COUNTS)))
        spend_total = 0
        first_paid = None
        for visit_day in days:
            serial += 1
            paid = int(rng.lognormvariate(10.5, 1.0))  # about 360 CNY median, a long tail of implants
            refunded = paid // 2 if rng.random() < 0.02 else 0
            visits.add(f"v{serial}", member_id, branch, _weighted(rng, KINDS), visit_day,
                       datetime.combine(visit_day, time(3, 0), UTC).isoformat(), "t", paid, refunded, "f")
            points.add(f"p{serial}", member_id, visit_day, paid // 100, "spend")
            spend_total += paid - refunded
            first_paid = first_paid or visit_day
        if days:
            summary.add(member_id, len(days), spend_total, days[0], days[-1], first_paid, now)
        if rng.random() < 0.05:
            serial += 1
            top_ups.add(f"t{serial}", member_id, day - timedelta(days=rng.randint(1, 730)),
                        rng.choice((100_000, 300_000, 1_000_000, 3_000_000)))
    written = {}
    for copier in (members, visits, points, top_ups, summary):
        copier.flush()
        written[copier.table] = copier.written
    return written
