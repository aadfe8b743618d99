"""Staff accounts and their sessions: create and change people, sign in, refresh, sign out.

A person has one role and the branches they work at. Signing in gives a short-lived access token and
a refresh token (``gateway.auth.tokens``); a session ends on sign-out, when its refresh token is reused,
when it reaches its absolute lifetime, or when a group admin (or the person, by changing their
password) ends it. Changing a person's role, branches or status ends their sessions, so that the new
rights apply at once (within the gateway's cache time on other replicas).

Passwords are verified outside any database transaction: Argon2 takes tens of milliseconds and the
SQLite gate must not be held that long.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.auth import lockout, security_events
from gateway.auth.passwords import Passwords, check_strength
from gateway.auth.tokens import TokenKeys, hash_refresh_token, new_refresh_token
from gateway.models import RefreshToken, StaffSession, StaffUser
from services.kit.caller import ALL_BRANCHES
from services.kit.clock import as_utc, isoformat, utcnow
from services.kit.config import Group
from services.kit.db import Store, fetch
from services.kit.errors import Conflict, Forbidden, Invalid, Unauthenticated
from services.kit.paging import keyset_page
from services.kit.telemetry import counter

STAFF_ROLES = ("group_admin", "branch_manager", "front_desk", "clinician", "customer_service", "auditor")
STATUSES = ("active", "disabled")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")

LOGINS = counter("careloop_gateway_logins_total", "Staff sign-in attempts by outcome", ("outcome",))
LOCKOUTS = counter("careloop_gateway_lockouts_total", "Sign-in lockouts started", ("scope",))
SESSIONS_ENDED = counter("careloop_gateway_sessions_ended_total", "Staff sessions ended", ("reason",))


@dataclass(frozen=True)
class Lifetimes:
    access: int
    refresh: int
    session: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Lifetimes:
        return cls(access=int(config.get("ACCESS_TOKEN_SECONDS", 900)),
                   refresh=int(config.get("REFRESH_TOKEN_SECONDS", 8 * 3600)),
                   session=int(config.get("SESSION_MAX_SECONDS", 24 * 3600)))


def normalise_username(username: Any) -> str:
    if not isinstance(username, str):
        raise Invalid("The user name must be text.", {"username": ["Not a string."]})
    return username.strip().lower()


def check_branches(branches: list[str], group: Group) -> str:
    codes = [b.strip() for b in branches if b and b.strip()]
    if not codes:
        raise Invalid("Name at least one branch, or * for all.", {"branches": ["At least one branch."]})
    if ALL_BRANCHES in codes:
        if len(codes) > 1:
            raise Invalid("* already means every branch.", {"branches": ["Use * alone."]})
        return ALL_BRANCHES
    unknown = [code for code in codes if code not in group.branches]
    if unknown:
        raise Invalid(f"Unknown branch {unknown[0]!r}.", {"branches": [f"Unknown branch {c!r}." for c in unknown]})
    return ",".join(dict.fromkeys(codes))


@dataclass(frozen=True)
class Account:
    """A staff account as answered (``StaffSchema``): the stored user, read through this object, and until
    when sign-in is locked, if it is."""

    user: StaffUser
    locked_until: datetime | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "user":
            raise AttributeError(name)
        return getattr(self.user, name)


def _get(session: Session, user_id: str, lock: bool = False) -> StaffUser:
    return fetch(session, StaffUser, user_id, "staff account", lock=lock)


def _end_sessions(session: Session, user_id: uuid.UUID, reason: str, now: datetime,
                  keep: str | None = None) -> list[str]:
    query = select(StaffSession.id).where(StaffSession.user_id == user_id, StaffSession.revoked_at.is_(None),
                                          StaffSession.expires_at > now)
    ended = [str(sid) for sid in session.scalars(query) if str(sid) != keep]
    if ended:
        session.execute(update(StaffSession).where(StaffSession.id.in_([uuid.UUID(s) for s in ended]))
                        .values(revoked_at=now, revoked_reason=reason))
        SESSIONS_ENDED.labels(reason).inc(len(ended))
    return ended


class Accounts:
    """Everything done to staff accounts, on the gateway's store. ``on_sessions_ended`` lets the
    authenticator forget cached sessions at once."""

    def __init__(self, store: Store, passwords: Passwords, keys: TokenKeys | None, lifetimes: Lifetimes,
                 policy: lockout.Policy, group: Group, on_sessions_ended: Any = None) -> None:
        self.store = store
        self.passwords = passwords
        self.keys = keys
        self.lifetimes = lifetimes
        self.policy = policy
        self.group = group
        self.on_sessions_ended = on_sessions_ended or (lambda session_ids: None)

    # -- people -------------------------------------------------------------------------------

    def create(self, data: dict[str, Any], actor: str | None) -> Account:
        username = normalise_username(data["username"])
        if not USERNAME.match(username):
            raise Invalid("A user name is 3-64 characters: letters, digits, dot, dash, underscore.",
                          {"username": ["3-64 of a-z 0-9 . _ -, starting with a letter or digit."]})
        if data["role"] not in STAFF_ROLES:
            raise Invalid(f"Unknown staff role {data['role']!r}.", {"role": [f"One of {', '.join(STAFF_ROLES)}."]})
        branches = check_branches(data["branches"], self.group)
        check_strength(data["password"], username, data["display_name"])
        password_hash = self.passwords.hash(data["password"])
        now = utcnow()
        user = StaffUser(id=uuid.uuid4(), username=username, display_name=data["display_name"].strip(),
                         role=data["role"], branches=branches, password_hash=password_hash, status="active",
                         password_change_required=bool(data.get("password_change_required", False)),
                         created_at=now, updated_at=now, password_changed_at=now, created_by=actor)
        try:
            with self.store.transaction() as session:
                if session.scalars(select(StaffUser.id).where(StaffUser.username == username)).first():
                    raise Conflict(f"The user name {username!r} is taken.", {"username": ["Taken."]})
                session.add(user)
                security_events.record(session, "staff_created", actor=actor, target=f"user:{user.id}",
                                       role=user.role, branches=branches)
        except IntegrityError:
            raise Conflict(f"The user name {username!r} is taken.", {"username": ["Taken."]}) from None
        return Account(user)

    def get(self, user_id: str) -> Account:
        with self.store.transaction() as session:
            user = _get(session, user_id)
            return Account(user, lockout.locked_until(session, user.username, utcnow()))

    def find(self, criteria: dict[str, Any]) -> dict[str, Any]:
        query = select(StaffUser)
        if criteria.get("role"):
            query = query.where(StaffUser.role == criteria["role"])
        if criteria.get("status"):
            query = query.where(StaffUser.status == criteria["status"])
        if criteria.get("branch"):
            branch = criteria["branch"]
            # branches are a short comma list: match a whole code, or staff of every branch
            padded = literal(",") + StaffUser.branches + literal(",")
            query = query.where(padded.contains(f",{branch},") | (StaffUser.branches == ALL_BRANCHES))
        if criteria.get("q"):
            needle = criteria["q"].strip().lower()
            query = query.where(func.lower(StaffUser.username).contains(needle)
                                | func.lower(StaffUser.display_name).contains(needle))
        with self.store.transaction() as session:
            rows, cursor = keyset_page(session, query, StaffUser.created_at, StaffUser.id, criteria["limit"],
                                       criteria.get("cursor"))
            return {"items": [Account(row) for row in rows], "next_cursor": cursor}

    def change(self, user_id: str, changes: dict[str, Any], actor: str | None) -> Account:
        now = utcnow()
        ended: list[str] = []
        with self.store.transaction() as session:
            user = _get(session, user_id, lock=True)
            changed = []
            if "display_name" in changes and changes["display_name"].strip() != user.display_name:
                user.display_name = changes["display_name"].strip()
                changed.append("display_name")
            if "role" in changes and changes["role"] != user.role:
                if changes["role"] not in STAFF_ROLES:
                    raise Invalid(f"Unknown staff role {changes['role']!r}.", {"role": ["Unknown role."]})
                self._keep_an_admin(session, user, "change the role of")
                user.role = changes["role"]
                changed.append("role")
            if "branches" in changes:
                branches = check_branches(changes["branches"], self.group)
                if branches != user.branches:
                    user.branches = branches
                    changed.append("branches")
            if "status" in changes and changes["status"] != user.status:
                if changes["status"] == "disabled":
                    self._keep_an_admin(session, user, "disable")
                user.status = changes["status"]
                changed.append("status")
            if changed:
                user.updated_at = now
                if {"role", "branches", "status"} & set(changed):
                    ended = _end_sessions(session, user.id, "account_changed", now)
                security_events.record(session, "staff_updated", actor=actor, target=f"user:{user.id}",
                                       changed=changed, sessions_ended=len(ended))
            result = Account(user, lockout.locked_until(session, user.username, now))
        self.on_sessions_ended(ended)
        return result

    def _keep_an_admin(self, session: Session, user: StaffUser, action: str) -> None:
        if user.role != "group_admin" or user.status != "active":
            return
        others = session.scalar(select(func.count(StaffUser.id)).where(
            StaffUser.role == "group_admin", StaffUser.status == "active", StaffUser.id != user.id))
        if not others:
            raise Conflict(f"You cannot {action} the last active group admin; make someone else group admin first.")

    def reset_password(self, user_id: str, password: str, actor: str | None) -> Account:
        """A group admin sets a temporary password; the person must choose their own at next sign-in."""
        with self.store.transaction() as session:
            user = _get(session, user_id)
            username, display_name = user.username, user.display_name
        check_strength(password, username, display_name)
        user, ended = self._set_password(user_id, self.passwords.hash(password), required=True,
                                         event="password_reset", actor=actor, count="sessions_ended")
        self.on_sessions_ended(ended)
        return Account(user)

    def unlock(self, user_id: str, actor: str | None) -> Account:
        with self.store.transaction() as session:
            user = _get(session, user_id)
            lockout.unlock(session, user.username)
            security_events.record(session, "account_unlocked", actor=actor, target=f"user:{user.id}")
            return Account(user)

    def end_sessions(self, user_id: str, actor: str | None, reason: str = "revoked") -> dict[str, Any]:
        with self.store.transaction() as session:
            user = _get(session, user_id)
            ended = _end_sessions(session, user.id, reason, utcnow())
            security_events.record(session, "sessions_revoked", actor=actor, target=f"user:{user.id}",
                                   sessions_ended=len(ended))
        self.on_sessions_ended(ended)
        return {"user_id": str(user.id), "sessions_ended": len(ended)}

    # -- signing in ----------------------------------------------------------------------------

    def sign_in(self, username: Any, password: Any, address: str) -> Account:
        username = normalise_username(username)
        if not isinstance(password, str):
            raise Invalid("The password must be text.", {"password": ["Not a string."]})
        now = utcnow()
        subjects = {lockout.ACCOUNT: lockout.account_subject(username), lockout.ADDRESS: lockout.address_subject(address)}
        with self.store.transaction() as session:
            try:
                lockout.check(session, subjects, now)
            except Exception:
                LOGINS.labels("locked").inc()
                raise
            user = session.scalars(select(StaffUser).where(StaffUser.username == username)).first()
            found = (str(user.id), user.password_hash, user.status) if user else None
        if found is None:
            self.passwords.burn(password)
            ok = False
        else:
            ok = self.passwords.verify(found[1], password)
        if not ok:
            self._failed(username, found[0] if found else None, address, subjects)
            raise Unauthenticated("The user name or password is wrong.")
        user_id, password_hash, status = found
        if status != "active":
            LOGINS.labels("disabled").inc()
            with self.store.transaction() as session:
                security_events.record(session, "login_failed", target=f"user:{user_id}", address=address,
                                       reason="disabled")
            raise Forbidden("This account is disabled; ask a group admin.")
        new_hash = self.passwords.hash(password) if self.passwords.needs_rehash(password_hash) else None
        with self.store.transaction() as session:
            user = _get(session, user_id, lock=True)
            if new_hash:
                user.password_hash = new_hash
            user.last_login_at = now
            lockout.succeeded(session, username)
            grant = self._open_session(session, user, now)
            security_events.record(session, "login_succeeded", actor=f"user:{user.id}", target=f"user:{user.id}",
                                   address=address, session_id=grant["session_id"])
            grant["user"] = Account(user)
        LOGINS.labels("ok").inc()
        return grant

    def _failed(self, username: str, user_id: str | None, address: str, subjects: dict[str, str]) -> None:
        LOGINS.labels("failed").inc()
        now = utcnow()
        with self.store.transaction() as session:
            locked = lockout.failed(session, self.policy, subjects, now)
            security_events.record(session, "login_failed", target=f"user:{user_id}" if user_id else None,
                                   address=address, reason="wrong_credentials")
            for scope in locked:
                LOCKOUTS.labels(scope).inc()
                security_events.record(session, f"{scope}_locked", target=f"user:{user_id}" if user_id else None,
                                       address=address, until=isoformat(now + self.policy.duration))

    def _open_session(self, session: Session, user: StaffUser, now: datetime) -> dict[str, Any]:
        staff_session = StaffSession(id=uuid.uuid4(), user_id=user.id, created_at=now,
                                     expires_at=now + timedelta(seconds=self.lifetimes.session))
        session.add(staff_session)
        session.flush()
        return self._grant(session, user, staff_session, now)

    def _grant(self, session: Session, user: StaffUser, staff_session: StaffSession, now: datetime) -> dict[str, Any]:
        refresh, refresh_hash = new_refresh_token()
        refresh_expires = min(now + timedelta(seconds=self.lifetimes.refresh), as_utc(staff_session.expires_at))
        session.add(RefreshToken(session_id=staff_session.id, token_hash=refresh_hash, created_at=now,
                                 expires_at=refresh_expires))
        access_lifetime = min(self.lifetimes.access, int((as_utc(staff_session.expires_at) - now).total_seconds()))
        access, _expires = self.keys.issue_access(str(user.id), str(staff_session.id), user.role,
                                                  tuple(b for b in user.branches.split(",") if b), now,
                                                  max(access_lifetime, 1))
        return {"access_token": access, "token_type": "Bearer", "expires_in": max(access_lifetime, 1),
                "refresh_token": refresh, "refresh_expires_in": int((refresh_expires - now).total_seconds()),
                "session_id": str(staff_session.id), "password_change_required": user.password_change_required}

    def refresh(self, refresh_token: Any, address: str) -> dict[str, Any]:
        if not isinstance(refresh_token, str) or not refresh_token:
            raise Unauthenticated("The refresh token is not valid; sign in again.")
        now = utcnow()
        reused_session: str | None = None
        with self.store.transaction() as session:
            query = select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
            if self.store.is_postgresql:
                query = query.with_for_update()
            token = session.scalars(query).first()
            if token is not None and token.used_at is not None:
                # a used refresh token came back: someone holds a copy; end the whole session
                staff_session = session.get(StaffSession, token.session_id)
                if staff_session is not None and staff_session.revoked_at is None:
                    staff_session.revoked_at, staff_session.revoked_reason = now, "refresh_reused"
                    SESSIONS_ENDED.labels("refresh_reused").inc()
                reused_session = str(token.session_id)
                security_events.record(session, "refresh_token_reused", address=address,
                                       target=f"user:{staff_session.user_id}" if staff_session else None,
                                       session_id=reused_session)
                grant = None
            else:
                grant = self._use_refresh(session, token, now)
        if reused_session is not None:
            self.on_sessions_ended([reused_session])
            raise Unauthenticated("This refresh token was already used; the session has been ended. Sign in again.")
        if grant is None:
            raise Unauthenticated("The refresh token is not valid or has expired; sign in again.")
        return grant

    def _use_refresh(self, session: Session, token: RefreshToken | None, now: datetime) -> dict[str, Any] | None:
        if token is None or as_utc(token.expires_at) <= now:
            return None
        staff_session = session.get(StaffSession, token.session_id)
        if staff_session is None or staff_session.revoked_at is not None or as_utc(staff_session.expires_at) <= now:
            return None
        user = session.get(StaffUser, staff_session.user_id)
        if user is None or user.status != "active":
            return None
        token.used_at = now
        staff_session.refreshed_at = now
        grant = self._grant(session, user, staff_session, now)
        grant["user"] = Account(user)
        return grant

    def sign_out(self, user_id: str, session_id: str) -> None:
        now = utcnow()
        with self.store.transaction() as session:
            staff_session = session.get(StaffSession, uuid.UUID(session_id))
            if staff_session is not None and staff_session.revoked_at is None:
                staff_session.revoked_at, staff_session.revoked_reason = now, "logout"
                SESSIONS_ENDED.labels("logout").inc()
            security_events.record(session, "logout", actor=f"user:{user_id}", target=f"user:{user_id}",
                                   session_id=session_id)
        self.on_sessions_ended([session_id])

    def change_own_password(self, user_id: str, session_id: str, current: Any, new: Any) -> Account:
        with self.store.transaction() as session:
            user = _get(session, user_id)
            password_hash, username, display_name = user.password_hash, user.username, user.display_name
        if not isinstance(current, str) or not self.passwords.verify(password_hash, current):
            raise Invalid("The current password is wrong.", {"current_password": ["Wrong password."]})
        check_strength(new, username, display_name)
        if new == current:
            raise Invalid("Choose a password different from the current one.", {"new_password": ["Unchanged."]})
        user, ended = self._set_password(user_id, self.passwords.hash(new), required=False, event="password_changed",
                                         actor=f"user:{user_id}", count="other_sessions_ended", keep=session_id)
        self.on_sessions_ended([*ended, session_id])  # the current one's cached rights change too
        return Account(user)

    def _set_password(self, user_id: str, password_hash: str, *, required: bool, event: str, actor: str | None,
                      count: str, keep: str | None = None) -> tuple[StaffUser, list[str]]:
        """Store a new hash (hashed before, outside the transaction), end the person's sessions but ``keep``,
        and log ``event`` with how many ended under ``count``."""
        now = utcnow()
        with self.store.transaction() as session:
            user = _get(session, user_id, lock=True)
            user.password_hash, user.password_changed_at, user.updated_at = password_hash, now, now
            user.password_change_required = required
            ended = _end_sessions(session, user.id, event, now, keep=keep)
            security_events.record(session, event, actor=actor, target=f"user:{user.id}", **{count: len(ended)})
        return user, ended

    def count_active_admins(self) -> int:
        with self.store.transaction() as session:
            return int(session.scalar(select(func.count(StaffUser.id)).where(
                StaffUser.role == "group_admin", StaffUser.status == "active")) or 0)
