"""Members' one-time sign-in codes on the gateway's store (SQLite and PostgreSQL): a code works once and only
until it expires, only its hash is kept, asking is limited per phone and per address, and wrong codes lock the
phone (the staff sign-in's lockout, under subjects of their own) — even against the right code."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from gateway.auth import lockout
from gateway.member import codes
from gateway.models import MemberSession, MemberSignInCode
from services.kit.clock import utcnow
from services.kit.errors import RateLimited
from tests.harness import store_for

PHONE, OTHER_PHONE, ADDRESS = "+8613800001111", "+8613800002222", "10.0.0.9"
MEMBER = str(uuid.uuid4())
POLICY = codes.CodePolicy.from_config({})
LOCKOUT = lockout.Policy.from_config({})


@pytest.fixture
def store(backend, databases):
    store = store_for(databases.fresh(backend, "gateway"))
    yield store
    store.dispose()


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_a_code_signs_in_once_and_is_kept_only_as_a_hash(store):
    now = utcnow()
    issued = codes.issue(store, POLICY, PHONE, MEMBER, ADDRESS, now)
    checked = codes.check(store, POLICY, LOCKOUT, issued.challenge_id, issued.code, ADDRESS, now + timedelta(seconds=30))
    assert checked.member_id == MEMBER and checked.session_id
    assert codes.session_member(store, checked.session_id, now + timedelta(minutes=1)) == MEMBER
    again = codes.check(store, POLICY, LOCKOUT, issued.challenge_id, issued.code, ADDRESS, now + timedelta(seconds=40))
    assert (again.session_id, again.refused) == (None, "expired")  # reuse: refused, no second session
    with store.transaction() as session:
        row = session.get(MemberSignInCode, uuid.UUID(issued.challenge_id))
        assert issued.code not in (row.code_hash, row.phone_hash) and PHONE not in row.phone_hash
        assert row.used_at is not None
        assert len(session.scalars(select(MemberSession.id)).all()) == 1
    codes.end_session(store, checked.session_id, now + timedelta(minutes=2))
    assert codes.session_member(store, checked.session_id, now + timedelta(minutes=3)) is None


def test_a_code_older_than_five_minutes_is_refused_even_when_right(store):
    now = utcnow()
    issued = codes.issue(store, POLICY, PHONE, MEMBER, ADDRESS, now)
    late = codes.check(store, POLICY, LOCKOUT, issued.challenge_id, issued.code, ADDRESS,
                       now + timedelta(minutes=5, seconds=1))
    assert (late.session_id, late.refused) == (None, "expired")
    with store.transaction() as session:
        assert session.scalars(select(MemberSession.id)).all() == []


def test_five_wrong_codes_lock_the_phone_even_against_the_right_code(store):
    now = utcnow()
    issued = codes.issue(store, POLICY, PHONE, MEMBER, ADDRESS, now)
    outcomes = [codes.check(store, POLICY, LOCKOUT, issued.challenge_id, wrong(issued.code), f"10.0.1.{n}",
                            now + timedelta(seconds=n)).refused for n in range(5)]
    assert outcomes == ["wrong"] * 4 + ["locked"]  # five addresses: it is the phone that locks
    fresh = codes.check(store, POLICY, LOCKOUT, issued.challenge_id, issued.code, ADDRESS, now + timedelta(seconds=10))
    assert (fresh.session_id, fresh.refused) == (None, "locked") and fresh.retry_after > 0
    with pytest.raises(RateLimited):  # no new code for a locked phone either
        codes.issue(store, POLICY, PHONE, MEMBER, ADDRESS, now + timedelta(seconds=11))
    # another phone from the same address is not locked by this one's mistakes
    other = codes.issue(store, POLICY, OTHER_PHONE, MEMBER, ADDRESS, now + timedelta(seconds=12))
    assert codes.check(store, POLICY, LOCKOUT, other.challenge_id, other.code, ADDRESS,
                       now + timedelta(seconds=13)).member_id == MEMBER
    # after the lock, the phone signs in again
    later = now + LOCKOUT.duration + timedelta(seconds=20)
    retry = codes.issue(store, POLICY, PHONE, MEMBER, ADDRESS, later)
    assert codes.check(store, POLICY, LOCKOUT, retry.challenge_id, retry.code, ADDRESS, later).member_id == MEMBER


def test_a_phone_that_is_no_member_gets_a_challenge_that_nothing_opens(store):
    now = utcnow()
    issued = codes.issue(store, POLICY, OTHER_PHONE, None, ADDRESS, now)  # the code is never sent
    checked = codes.check(store, POLICY, LOCKOUT, issued.challenge_id, issued.code, ADDRESS, now)
    assert (checked.session_id, checked.refused) == (None, "wrong")
    assert codes.check(store, POLICY, LOCKOUT, "not-a-challenge", "123456", ADDRESS, now).refused == "expired"


def test_asking_is_limited_per_phone_and_per_address(store):
    now = utcnow()
    for n in range(POLICY.per_phone):
        codes.issue(store, POLICY, PHONE, MEMBER, f"10.0.2.{n}", now + timedelta(seconds=n))
    with pytest.raises(RateLimited) as limited:
        codes.issue(store, POLICY, PHONE, MEMBER, "10.0.2.99", now + timedelta(seconds=5))
    assert 0 < limited.value.details["retry_after"] <= POLICY.window.total_seconds()
    for n in range(POLICY.per_address - 1):  # 10.0.2.0 asked once above
        codes.issue(store, POLICY, f"+86138000030{n:02d}", None, "10.0.2.0", now + timedelta(seconds=10 + n))
    with pytest.raises(RateLimited):
        codes.issue(store, POLICY, "+8613800004444", None, "10.0.2.0", now + timedelta(seconds=30))
    # the window passes: the phone may ask again
    codes.issue(store, POLICY, PHONE, MEMBER, "10.0.2.50", now + POLICY.window + timedelta(seconds=5))


def test_housekeeping_forgets_old_codes_and_ended_sessions_only(store):
    now = utcnow()
    old = codes.issue(store, POLICY, PHONE, MEMBER, ADDRESS, now - timedelta(days=3))
    recent = codes.issue(store, POLICY, OTHER_PHONE, MEMBER, ADDRESS, now)
    opened = codes.check(store, POLICY, LOCKOUT, recent.challenge_id, recent.code, ADDRESS, now)
    codes.purge(store, POLICY, now)
    with store.transaction() as session:
        assert session.get(MemberSignInCode, uuid.UUID(old.challenge_id)) is None
        assert session.get(MemberSignInCode, uuid.UUID(recent.challenge_id)) is not None
    assert codes.session_member(store, opened.session_id, now) == MEMBER
    codes.purge(store, POLICY, now + POLICY.session + timedelta(days=2))
    with store.transaction() as session:
        assert session.scalars(select(MemberSession.id)).all() == []
