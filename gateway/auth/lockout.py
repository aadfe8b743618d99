"""Lockout after repeated failed sign-ins, per account name and per address.

Failures are counted in a window (``LOCKOUT_WINDOW_SECONDS``, 15 min by default); reaching the
threshold locks for ``LOCKOUT_SECONDS`` (15 min): per account name after ``LOCKOUT_ACCOUNT_FAILURES``
(5), per address after ``LOCKOUT_ADDRESS_FAILURES`` (20, several people may share a clinic's address).
A locked sign-in is refused even with the right password (429 with ``Retry-After``). Names are counted
whether or not such an account exists, so the answer never tells which names are real. Both are kept
in the gateway's database (every replica sees them) under a keyed hash, never in the clear. A
successful sign-in clears the account's count; a group admin can unlock an account early.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.models import LoginThrottle
from services.kit.clock import as_utc
from services.kit.crypto import blind_index
from services.kit.db import dialect_insert
from services.kit.errors import RateLimited

ACCOUNT = "account"
ADDRESS = "address"


def account_subject(username: str) -> str:
    return blind_index(username.strip().lower(), "gateway.login_account")


def address_subject(address: str) -> str:
    return blind_index(address, "gateway.login_address")


@dataclass(frozen=True)
class Policy:
    window: timedelta
    duration: timedelta
    account_failures: int
    address_failures: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Policy:
        return cls(window=timedelta(seconds=float(config.get("LOCKOUT_WINDOW_SECONDS", 900))),
                   duration=timedelta(seconds=float(config.get("LOCKOUT_SECONDS", 900))),
                   account_failures=int(config.get("LOCKOUT_ACCOUNT_FAILURES", 5)),
                   address_failures=int(config.get("LOCKOUT_ADDRESS_FAILURES", 20)))

    def threshold(self, scope: str) -> int:
        return self.account_failures if scope == ACCOUNT else self.address_failures


def _row(session: Session, scope: str, subject: str, now: datetime, lock: bool) -> LoginThrottle:
    dialect = session.get_bind().dialect.name
    session.execute(dialect_insert(session, LoginThrottle).values(scope=scope, subject=subject, failures=0, window_started_at=now)
                    .on_conflict_do_nothing(index_elements=["scope", "subject"]))
    query = select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.subject == subject)
    if lock and dialect == "postgresql":
        query = query.with_for_update()
    return session.scalars(query).one()


def check(session: Session, subjects: dict[str, str], now: datetime) -> None:
    """Refuse (429) while the account name or the address is locked."""
    rows = session.scalars(select(LoginThrottle).where(
        LoginThrottle.subject.in_(list(subjects.values())))).all()
    wait = 0.0
    for row in rows:
        if subjects.get(row.scope) == row.subject and row.locked_until and as_utc(row.locked_until) > now:
            wait = max(wait, (as_utc(row.locked_until) - now).total_seconds())
    if wait:
        minutes = max(1, math.ceil(wait / 60))
        raise RateLimited(f"Too many failed sign-ins; try again in {minutes} minute(s) or ask a group admin "
                          "to unlock the account.", details={"retry_after": math.ceil(wait)})


def failed(session: Session, policy: Policy, subjects: dict[str, str], now: datetime) -> list[str]:
    """Count a failure against each subject; returns the scopes this failure locked."""
    locked = []
    for scope, subject in subjects.items():
        row = _row(session, scope, subject, now, lock=True)
        if as_utc(row.window_started_at) + policy.window <= now:
            row.failures, row.window_started_at = 0, now
        row.failures += 1
        if row.failures >= policy.threshold(scope) and not (row.locked_until and as_utc(row.locked_until) > now):
            row.locked_until = now + policy.duration
            row.failures, row.window_started_at = 0, now
            locked.append(scope)
    return locked


def succeeded(session: Session, username: str) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.scope == ACCOUNT,
                                                LoginThrottle.subject == account_subject(username)))


def forget(session: Session, scope: str, subject: str) -> None:
    """Clear one subject's count (a member's phone after a good code, as ``succeeded`` does for a name)."""
    session.execute(delete(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.subject == subject))


def unlock(session: Session, username: str) -> bool:
    result = session.execute(delete(LoginThrottle).where(LoginThrottle.scope == ACCOUNT,
                                                         LoginThrottle.subject == account_subject(username)))
    return bool(result.rowcount)


def locked_until(session: Session, username: str, now: datetime) -> datetime | None:
    row = session.scalars(select(LoginThrottle).where(LoginThrottle.scope == ACCOUNT,
                                                      LoginThrottle.subject == account_subject(username))).first()
    if row is None or row.locked_until is None or as_utc(row.locked_until) <= now:
        return None
    return as_utc(row.locked_until)


def purge(session: Session, policy: Policy, now: datetime) -> None:
    """Forget counts whose window and lock have both passed."""
    stale = now - policy.window - policy.duration
    session.execute(delete(LoginThrottle).where(LoginThrottle.window_started_at < stale,
                                                (LoginThrottle.locked_until.is_(None))
                                                | (LoginThrottle.locked_until < now)))
