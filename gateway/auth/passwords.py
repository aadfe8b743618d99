"""Staff passwords: Argon2id hashes, a minimum strength, and hashing off the event loop.

Strength follows NIST SP 800-63B rather than composition rules: at least 12 characters (a passphrase
is welcome), at most 256, not one of the passwords every attacker tries first, not built from the
user name, and not a run of one or two characters. Hashing costs ~64 MiB and tens of milliseconds by
design; it runs in a real thread (``eventlet.tpool``) so that other requests keep being served.
"""

from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from eventlet import tpool

from services.kit.errors import Invalid

MIN_LENGTH = 12
MAX_LENGTH = 256

# The most common passwords of 12+ characters in public breach corpora (lower-cased; a password is
# refused when, lower-cased and stripped of trailing digits and punctuation, it is one of these).
COMMON = frozenset("""
password password1 passw0rd qwertyuiop qwertyuiopasdfghjkl asdfghjkl zxcvbnm qwerty123456
123456789012 1234567890123 111111111111 000000000000 abcdefghijkl abc123456789 iloveyou1234
changeme welcome letmein administrator admin careloop careloop123 dental clinic hospital
qazwsxedcrfv 1qaz2wsx3edc 1q2w3e4r5t6y zaq12wsxcde3 football baseball sunshine princess
woaini1314 woaiwojia aini1314520 5201314 a123456789 qwe123456789 monkey dragon master
""".split())


def _shape_only(password: str) -> bool:
    return len(set(password)) <= 2


def check_strength(password: Any, username: str = "", display_name: str = "") -> str:
    """The password if strong enough; otherwise ``Invalid`` saying why (never repeating it)."""
    if not isinstance(password, str):
        raise Invalid("The password must be text.", {"password": ["Not a string."]})
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters; a few words make a good password.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    lowered = password.lower()
    stem = lowered.rstrip("0123456789!@#$%^&*.?_- ")
    if lowered in COMMON or stem in COMMON:
        problems.append("This password is among the first ones attackers try; choose another.")
    for part in (username, *display_name.split()):
        if part and len(part) >= 3 and part.lower() in lowered:
            problems.append("The password must not contain your user name or name.")
            break
    if password and _shape_only(password):
        problems.append("Use more than two different characters.")
    if problems:
        raise Invalid("The password is too weak. " + problems[0], {"password": problems})
    return password


class Passwords:
    """Hash and verify with Argon2id; parameters from configuration (defaults: RFC 9106's second
    recommended set, 64 MiB, 3 passes, 4 lanes)."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        config = config or {}
        self.hasher = PasswordHasher(
            time_cost=int(config.get("ARGON2_TIME_COST", 3)),
            memory_cost=int(config.get("ARGON2_MEMORY_KIB", 65536)),
            parallelism=int(config.get("ARGON2_PARALLELISM", 4)),
        )
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return tpool.execute(self.hasher.hash, password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return bool(tpool.execute(self.hasher.verify, password_hash, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)

    def burn(self, password: str) -> None:
        """Spend the time a verification costs (unknown user names answer no faster than known ones)."""
        if self._dummy is None:
            self._dummy = self.hash("careloop-dummy-password-for-timing")
        self.verify(self._dummy, password)
