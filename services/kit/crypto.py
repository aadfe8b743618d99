"""Field encryption at rest and blind indexes, with keys from the environment and rotation.

- ``Encrypted("members.phone")`` is a column type: AES-256-GCM per value, the column's name bound in
  as associated data (a value copied to another column does not decrypt), and the id of the key
  stored with each value (``v1.<key id>.<nonce+ciphertext>``) so that keys can rotate.
- ``blind_index(value, "members.phone")`` is a keyed HMAC of a normalised value: equality lookups
  (find by phone, by ID number) without storing the value in the clear.
- ``rotate_column`` re-encrypts, in batches, every value not under the active key.

Keys: ``CARELOOP_DATA_KEYS`` = ``id1=<base64 32 bytes>,id2=...`` (all keys still readable),
``CARELOOP_DATA_KEY_ID`` = the key new values use (default: the last listed), ``CARELOOP_INDEX_KEY`` =
base64 32 bytes for blind indexes (changing it means recomputing the indexes). ``generate_env()``
prints a fresh set.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, Text, select, update
from sqlalchemy.types import TypeDecorator

FORMAT = "v1"


class KeysMissing(RuntimeError):
    """Keys missing or malformed: the service refuses to store personal data unprotected."""


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]
    active: str
    index_key: bytes

    @classmethod
    def from_env(cls, env: Any = os.environ) -> Keyring:
        raw = env.get("CARELOOP_DATA_KEYS")
        index = env.get("CARELOOP_INDEX_KEY")
        if not raw or not index:
            raise KeysMissing("CARELOOP_DATA_KEYS and CARELOOP_INDEX_KEY must be set (see services/kit/crypto.py; "
                            "`python -m services.kit.crypto generate` makes a set)")
        keys: dict[str, bytes] = {}
        for item in raw.split(","):
            key_id, _, encoded = item.strip().partition("=")
            key = base64.b64decode(encoded)
            if not key_id or len(key) != 32 or "." in key_id:
                raise KeysMissing(f"data key {key_id!r} must be an id without dots and 32 bytes in base64")
            keys[key_id] = key
        active = env.get("CARELOOP_DATA_KEY_ID") or list(keys)[-1]
        if active not in keys:
            raise KeysMissing(f"CARELOOP_DATA_KEY_ID {active!r} is not among CARELOOP_DATA_KEYS")
        index_key = base64.b64decode(index)
        if len(index_key) < 32:
            raise KeysMissing("CARELOOP_INDEX_KEY must be at least 32 bytes in base64")
        return cls(keys=keys, active=active, index_key=index_key)

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = _cipher(self.keys[self.active]).encrypt(nonce, plaintext.encode(), context.encode())
        return f"{FORMAT}.{self.active}.{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, context: str) -> str:
        version, key_id, encoded = token.split(".", 2)
        if version != FORMAT or key_id not in self.keys:
            raise KeysMissing(f"cannot decrypt a value under key {key_id!r}: key not configured")
        blob = base64.b64decode(encoded)
        return _cipher(self.keys[key_id]).decrypt(blob[:12], blob[12:], context.encode()).decode()

    def blind_index(self, value: str, context: str) -> str:
        digest = hmac.new(self.index_key, f"{context}\x00{value}".encode(), hashlib.sha256)
        return digest.hexdigest()[:40]


@functools.lru_cache(maxsize=16)
def _cipher(key: bytes) -> AESGCM:
    """One AES-GCM object per key (thread-safe; building it costs a key schedule on every value)."""
    return AESGCM(key)


_keyring: Keyring | None = None


def keyring() -> Keyring:
    global _keyring
    if _keyring is None:
        _keyring = Keyring.from_env()
    return _keyring


def reload_keyring() -> Keyring:
    """Re-read the keys from the environment (after a rotation changed them)."""
    global _keyring
    _keyring = None
    return keyring()


def key_id_of(token: str) -> str:
    return token.split(".", 2)[1]


def blind_index(value: str | None, context: str) -> str | None:
    return None if value is None else keyring().blind_index(value, context)


class Encrypted(TypeDecorator):
    """A text column stored encrypted; reads give the plaintext back."""

    impl = Text
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else keyring().encrypt(str(value), self.context)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else keyring().decrypt(value, self.context)


def encrypted_columns(table: Table) -> list[tuple[str, str]]:
    return [(column.name, column.type.context) for column in table.columns if isinstance(column.type, Encrypted)]


def rotate_column(store: Any, table: Table, batch: int = 500) -> int:
    """Re-encrypt every value of ``table``'s encrypted columns that is not under the active key."""
    ring = keyring()
    columns = encrypted_columns(table)
    (pk,) = table.primary_key.columns
    rotated = 0
    last = None
    while True:
        raw_columns = [table.c[name].cast(Text).label(name) for name, _ in columns]
        query = select(pk, *raw_columns).order_by(pk).limit(batch)
        if last is not None:
            query = query.where(pk > last)
        with store.transaction() as session:
            rows = session.execute(query).all()
            for row in rows:
                changes = {}
                for name, context in columns:
                    token = getattr(row, name)
                    if token is not None and key_id_of(token) != ring.active:
                        changes[name] = ring.encrypt(ring.decrypt(token, context), context)
                if changes:
                    # compare-and-set: a value the service rewrote meanwhile is left to it, not overwritten
                    unchanged = [table.c[name].cast(Text) == _raw(getattr(row, name)) for name in changes]
                    result = session.execute(update(table).where(pk == row[0], *unchanged).values(
                        {table.c[name]: _raw(value) for name, value in changes.items()}))
                    rotated += result.rowcount or 0
        if len(rows) < batch:
            return rotated
        last = rows[-1][0]


def _raw(token: str) -> Any:
    from sqlalchemy import literal

    return literal(token, Text)


def generate_env() -> str:
    key_id = "k" + secrets.token_hex(3)
    return (f"CARELOOP_DATA_KEYS={key_id}={base64.b64encode(os.urandom(32)).decode()}\n"
            f"CARELOOP_DATA_KEY_ID={key_id}\n"
            f"CARELOOP_INDEX_KEY={base64.b64encode(os.urandom(32)).decode()}\n")


if __name__ == "__main__":  # pragma: no cover - operator command
    import sys

    if sys.argv[1:] == ["generate"]:
        print(generate_env(), end="")
    else:
        print("usage: python -m services.kit.crypto generate", file=sys.stderr)
        sys.exit(2)
