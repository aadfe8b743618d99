"""Members' sign-in on the member page: one-time codes and the sessions they open, on the gateway's store.

- A code is asked for with a phone number. A challenge row is made whether or not the phone is a member's
  (then no code is sent and none can match), so the answer and the stored rows never tell who is a member.
  Only a keyed hash of the code is kept (bound to its challenge), with the phone and the address as keyed
  hashes for the limits; it works once, until it expires (``MEMBER_CODE_SECONDS``, 5 minutes).
- Asking is limited per phone (``MEMBER_CODES_PER_PHONE``, 3) and per address (``MEMBER_CODES_PER_ADDRESS``,
  10) in ``MEMBER_CODE_WINDOW_SECONDS`` (15 minutes), counted from the rows themselves (every replica sees
  them; the phone's advisory lock makes two requests at once count as two).
- A wrong, used or expired code is a failed sign-in of the phone and of the address in the staff sign-in's
  lockout (``gateway.auth.lockout``: 5 per phone, 20 per address in 15 minutes lock for 15 minutes), under
  subjects of their own, so a member's mistakes never lock a staff account or the clinic's address for
  staff. A challenge also dies after ``MEMBER_CODE_ATTEMPTS`` (5) wrong tries.
- A good code opens a ``MemberSession`` (``MEMBER_SESSION_SECONDS``, 12 hours); sign-out ends it.
"""

from __future__ import annotations

import hmac
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from gateway.auth import lockout
from gateway.models import MemberSession, MemberSignInCode
from services.kit.clock import as_utc
from services.kit.crypto import blind_index
from services.kit.db import Store
from services.kit.errors import RateLimited
from services.kit.locks import serialise

KEEP = timedelta(days=1)  # old codes and ended sessions are forgotten a day after they stop mattering


@dataclass(frozen=True)
class CodePolicy:
    lifetime: timedelta
    window: timedelta
    per_phone: int
    per_address: int
    attempts: int
    session: timedelta

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CodePolicy:
        return cls(lifetime=timedelta(seconds=float(config.get("MEMBER_CODE_SECONDS", 300))),
                   window=timedelta(seconds=float(config.get("MEMBER_CODE_WINDOW_SECONDS", 900))),
                   per_phone=int(config.get("MEMBER_CODES_PER_PHONE", 3)),
                   per_address=int(config.get("MEMBER_CODES_PER_ADDRESS", 10)),
                   attempts=int(config.get("MEMBER_CODE_ATTEMPTS", 5)),
                   session=timedelta(seconds=float(config.get("MEMBER_SESSION_SECONDS", 12 * 3600))))


@dataclass(frozen=True)
class Issued:
    challenge_id: str
    code: str  # to send; never stored


@dataclass(frozen=True)
class Checked:
    """What a code came to: a member's new session, or a refusal (``locked`` with the seconds to wait)."""

    session_id: str | None = None
    member_id: str | None = None
    refused: str | None = None  # "wrong", "expired", "locked"
    retry_after: int = 0


def phone_subject(phone: str) -> str:
    return blind_index(phone, "gateway.member_phone")


def address_subject(address: str) -> str:
    return blind_index(address, "gateway.member_address")


def _code_hash(challenge_id: str, code: str) -> str:
    return blind_index(f"{challenge_id}:{code}", "gateway.member_code")


def _subjects(phone_hash: str, address: str) -> dict[str, str]:
    return {lockout.ACCOUNT: phone_hash, lockout.ADDRESS: address_subject(address)}


def _wait(error: RateLimited) -> int:
    return int(error.details.get("retry_after", 60)) if error.details else 60


def issue(store: Store, policy: CodePolicy, phone: str, member_id: str | None, address: str,
          now: datetime) -> Issued:
    """A challenge for ``phone`` (E.164) from ``address``; ``RateLimited`` past a limit or while locked."""
    phone_hash, address_hash = phone_subject(phone), address_subject(address)
    challenge_id = str(uuid.uuid4())
    code = f"{secrets.randbelow(10**6):06d}"
    since = now - policy.window
    with store.transaction() as session:
        serialise(session, "gateway.member_code", phone_hash)
        lockout.check(session, _subjects(phone_hash, address), now)
        for column, value, limit in ((MemberSignInCode.phone_hash, phone_hash, policy.per_phone),
                                     (MemberSignInCode.address_hash, address_hash, policy.per_address)):
            first = session.execute(select(func.count(), func.min(MemberSignInCode.created_at))
                                    .where(column == value, MemberSignInCode.created_at > since)).one()
            if first[0] >= limit:
                wait = (as_utc(first[1]) + policy.window - now).total_seconds()
                raise RateLimited(f"Too many codes asked for; try again in {max(1, math.ceil(wait / 60))} minute(s).",
                                  details={"retry_after": max(1, math.ceil(wait))})
        session.add(MemberSignInCode(id=uuid.UUID(challenge_id), member_id=member_id, phone_hash=phone_hash,
                                     address_hash=address_hash, code_hash=_code_hash(challenge_id, code), attempts=0,
                                     created_at=now, expires_at=now + policy.lifetime))
    return Issued(challenge_id, code)


def check(store: Store, policy: CodePolicy, lockout_policy: lockout.Policy, challenge_id: str, code: str,
          address: str, now: datetime) -> Checked:
    """Sign in with ``code`` for the challenge: a new member session, or why not (a failure is counted)."""
    try:
        challenge = uuid.UUID(challenge_id)
    except ValueError:
        return Checked(refused="expired")
    with store.transaction() as session:
        row = session.scalars(select(MemberSignInCode).where(MemberSignInCode.id == challenge)
                              .with_for_update()).first()
        if row is None:
            return Checked(refused="expired")
        subjects = _subjects(row.phone_hash, address)
        try:
            lockout.check(session, subjects, now)
        except RateLimited as locked:
            return Checked(refused="locked", retry_after=_wait(locked))
        good = hmac.compare_digest(row.code_hash, _code_hash(challenge_id, code.strip()))
        usable = row.used_at is None and as_utc(row.expires_at) > now and row.attempts < policy.attempts
        if good and usable and row.member_id is not None:
            row.used_at = now
            lockout.forget(session, lockout.ACCOUNT, row.phone_hash)
            member_session = MemberSession(id=uuid.uuid4(), member_id=row.member_id, created_at=now,
                                           expires_at=now + policy.session)
            session.add(member_session)
            return Checked(session_id=str(member_session.id), member_id=row.member_id)
        row.attempts += 1
        locked = lockout.failed(session, lockout_policy, subjects, now)
        if locked:
            return Checked(refused="locked", retry_after=math.ceil(lockout_policy.duration.total_seconds()))
        return Checked(refused="wrong" if usable else "expired")


def session_member(store: Store, session_id: str, now: datetime) -> str | None:
    """The member of an open member session; None once it ended or expired."""
    try:
        sid = uuid.UUID(session_id)
    except ValueError:
        return None
    with store.transaction() as session:
        row = session.get(MemberSession, sid)
        if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= now:
            return None
        return row.member_id


def end_session(store: Store, session_id: str, now: datetime) -> None:
    with store.transaction() as session:
        session.execute(update(MemberSession).where(MemberSession.id == uuid.UUID(session_id),
                                                    MemberSession.revoked_at.is_(None)).values(revoked_at=now))


def purge(store: Store, policy: CodePolicy, now: datetime) -> None:
    """Forget codes past their rate-limit window and sessions past their end (the gateway's housekeeping)."""
    with store.transaction() as session:
        session.execute(delete(MemberSignInCode).where(MemberSignInCode.created_at < now - policy.window - KEEP))
        session.execute(delete(MemberSession).where(MemberSession.expires_at < now - KEEP))
