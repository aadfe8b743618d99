"""Members for the export benchmarks, written with PostgreSQL COPY in chunks (bounded memory): each with the
personal fields the export reads and decrypts (name, phone, email, birth date, ID document), encrypted under
this process's keys as the service would store them.

Encrypting a million values a field would make the fill slower than the export it prepares, so each field's
ciphertexts come from a pool of ``POOL`` values encrypted once (a value decrypts at the same cost whoever holds
it; the blind indexes, which the export never reads, are left empty). Deterministic for a seed.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg2

from services.kit.crypto import keyring
from tests.perf.members_data import BRANCHES, TIERS, Copier, _code, _weighted

POOL = 4096
COLUMNS = ("id", "card_number", "referral_code", "full_name", "phone", "email", "birth_date", "birth_mmdd", "gender",
           "document_type", "document_number", "preferred_language", "consent_sms", "consent_email", "consent_wechat",
           "consent_line", "consent_marketing", "consents_updated_at", "home_branch", "status", "tier", "source",
           "enrolled_at", "updated_at")


def _pools(rng: random.Random) -> dict[str, list[str]]:
    ring = keyring()
    births = [date(1950, 1, 1) + timedelta(days=rng.randint(0, 60 * 365)) for _ in range(POOL)]
    plain = {
        "full_name": [rng.choice("王李张刘陈杨黄赵") + rng.choice("伟芳娜敏静丽强磊洋艳") * rng.randint(1, 2)
                      for _ in range(POOL)],
        "phone": [f"+86138{rng.randint(0, 99_999_999):08d}" for _ in range(POOL)],
        "email": [f"member{number}@example.cn" for number in range(POOL)],
        "birth_date": [born.isoformat() for born in births],
        "document_number": [f"31010{rng.randint(10**12, 10**13 - 1)}" for _ in range(POOL)],
    }
    return {name: [ring.encrypt(value, f"members.{name}") for value in values] for name, values in plain.items()}


def fill_members(url: str, count: int, seed: int = 19) -> int:
    """Write ``count`` members into the members database at ``url`` (a ``postgresql://`` URL); returns the count."""
    rng = random.Random(seed)
    pools = _pools(rng)
    green = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(None)  # COPY does not run under the kit's green wait callback
    connection = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        members = Copier(connection, "members", COLUMNS)
        start = datetime(2021, 1, 1, tzinfo=UTC)
        for number in range(count):
            at = number % POOL
            enrolled_at = (start + timedelta(seconds=number * 7 + rng.randint(0, 6))).isoformat()
            document = at % 3 == 0
            members.add(uuid.UUID(int=rng.getrandbits(128), version=4), f"88{number:010d}", _code(number),
                        pools["full_name"][at], pools["phone"][at], pools["email"][at] if at % 2 else None,
                        pools["birth_date"][at], None, rng.choice(("female", "male", "undisclosed")),
                        "cn_resident_id" if document else None, pools["document_number"][at] if document else None,
                        "zh-Hans", "t", "f", "f", "f", "f", enrolled_at, rng.choice(BRANCHES), "active",
                        _weighted(rng, TIERS), "import", enrolled_at, enrolled_at)
        members.flush()
        connection.commit()
        return members.written
    finally:
        connection.close()
        psycopg2.extensions.set_wait_callback(green)

