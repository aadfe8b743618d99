"""The gateway's own tables on SQLite and PostgreSQL: lockout counts, idempotent replies, staff queries,
webhook receipts, sessions — the parts whose SQL differs between the two."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from gateway.auth import lockout
from gateway.auth.passwords import Passwords
from gateway.auth.staff import Accounts, Lifetimes
from gateway.auth.tokens import TokenKeys
from gateway.auth.webhooks import WebhookVerifier, create_integration, signed_headers
from gateway.idempotency import IdempotencyStore, Replayed, Stored
from services.kit.clock import utcnow
from services.kit.config import group_from_config
from services.kit.errors import Conflict, Invalid, RateLimited, Unauthenticated
from tests.harness import store_for

PASSWORD = "correct horse battery staple"


@pytest.fixture
def store(backend, databases):
    store = store_for(databases.fresh(backend, "gateway"))
    yield store
    store.dispose()


@pytest.fixture
def accounts(store):
    cheap = Passwords({"ARGON2_MEMORY_KIB": 8192, "ARGON2_TIME_COST": 1, "ARGON2_PARALLELISM": 1})
    keys = TokenKeys.from_config({"TOKEN_KEYS": "k1=" + "a" * 44})
    return Accounts(store, cheap, keys, Lifetimes.from_config({}), lockout.Policy.from_config({}),
                    group_from_config({}))


def test_lockout_counts_and_locks_per_account_and_address(store):
    policy = lockout.Policy.from_config({"LOCKOUT_ACCOUNT_FAILURES": 3, "LOCKOUT_ADDRESS_FAILURES": 5})
    now = utcnow()
    subjects = {lockout.ACCOUNT: lockout.account_subject("li.wei"), lockout.ADDRESS: lockout.address_subject("10.0.0.7")}
    for number in range(2):
        with store.transaction() as session:
            assert lockout.failed(session, policy, subjects, now + timedelta(seconds=number)) == []
    with store.transaction() as session:
        assert lockout.failed(session, policy, subjects, now + timedelta(seconds=3)) == [lockout.ACCOUNT]
    with store.transaction() as session, pytest.raises(RateLimited):
        lockout.check(session, subjects, now + timedelta(seconds=4))
    with store.transaction() as session:
        assert lockout.unlock(session, "li.wei")
        lockout.check(session, subjects, now + timedelta(seconds=5))  # the address is not locked yet
    with store.transaction() as session:  # the window passes: counting starts over
        other = {lockout.ADDRESS: subjects[lockout.ADDRESS]}
        assert lockout.failed(session, policy, other, now + timedelta(hours=1)) == []


def test_idempotent_replies_claim_replay_refuse_and_release(store):
    replies = IdempotencyStore(store, stale_after=60, retention=timedelta(hours=24))
    assert replies.claim("key:a", "k1", "print-1") is None
    with pytest.raises(Conflict):  # still running
        replies.claim("key:a", "k1", "print-1")
    with pytest.raises(Invalid):
        replies.claim("key:a", "k1", "print-2")
    replies.complete("key:a", "k1", 201, '{"id": "m1"}')
    assert replies.claim("key:a", "k1", "print-1") == Stored(201, '{"id": "m1"}')
    assert replies.answered("key:a", "k1", "print-1") == Stored(201, '{"id": "m1"}')
    assert replies.claim("key:b", "k1", "print-9") is None  # another credential, its own keys
    replies.release("key:b", "k1")
    assert replies.claim("key:b", "k1", "print-8") is None


def test_staff_find_by_branch_matches_whole_codes_and_all_branch_staff(accounts):
    made = {}
    for username, branches in (("sh-one", ["SH01"]), ("sh-both", ["SH01", "SH02"]), ("hz-one", ["HZ01"]),
                               ("everywhere", ["*"])):
        made[username] = accounts.create({"username": username, "display_name": username.title(),
                                          "role": "front_desk", "branches": branches, "password": PASSWORD}, None)
    found = accounts.find({"branch": "SH01", "limit": 10})
    assert {user.username for user in found["items"]} == {"sh-one", "sh-both", "everywhere"}
    assert [u.username for u in accounts.find({"q": "EVERY", "limit": 10})["items"]] == ["everywhere"]


def test_sign_in_refresh_and_a_reused_refresh_token_ends_the_session(accounts):
    accounts.create({"username": "wu.lei", "display_name": "Wu Lei", "role": "clinician", "branches": ["SH01"],
                     "password": PASSWORD}, None)
    grant = accounts.sign_in("Wu.Lei", PASSWORD, "10.0.0.1")
    renewed = accounts.refresh(grant["refresh_token"], "10.0.0.1")
    assert renewed["session_id"] == grant["session_id"]
    with pytest.raises(Unauthenticated):
        accounts.refresh(grant["refresh_token"], "10.0.0.1")  # reused: the session ends
    with pytest.raises(Unauthenticated):
        accounts.refresh(renewed["refresh_token"], "10.0.0.1")
    with pytest.raises(Unauthenticated):
        accounts.sign_in("wu.lei", "not the right one at all", "10.0.0.1")


def test_webhook_receipts_refuse_the_same_signature_twice(store):
    _view, secret = create_integration(store, "his", "HIS", "integration", "*", None, None)
    verifier = WebhookVerifier(store, cache_seconds=0)
    body = b'{"a": 1}'
    headers = signed_headers("his", secret, body)
    principal, receipt = verifier.verify(headers, body, "10.0.0.1")
    assert principal.identity.subject == "webhook:his"
    assert verifier.verify(headers, body, "10.0.0.1")[1] == receipt  # verifying writes nothing
    assert verifier.remember(receipt) is True
    assert verifier.remember(receipt) is False
    verifier.purge()


def test_a_signed_request_claims_its_key_and_keeps_its_receipt_in_one_commit(store):
    """The receipt goes in the claim's transaction (every HIS bill: one commit, not two); a replay claims nothing,
    and gets only the answer already stored for the same request under the key."""
    _view, secret = create_integration(store, "his", "HIS", "integration", "*", None, None)
    verifier = WebhookVerifier(store, cache_seconds=0)
    replies = IdempotencyStore(store, stale_after=60, retention=timedelta(hours=24))
    body = b'{"bill_id": "B1"}'
    _principal, receipt = verifier.verify(signed_headers("his", secret, body), body, "10.0.0.1")
    commits = []
    count = commits.append  # one bound method: listened and removed as the same object
    event.listen(store.engine, "commit", count)
    try:
        assert replies.claim("webhook:his", "k1", "print-1", receipt.write) is None
    finally:
        event.remove(store.engine, "commit", count)
    assert len(commits) == 1
    assert verifier.remember(receipt) is False  # kept by the claim
    with pytest.raises(Replayed):  # the same bytes while the first still runs: no answer to give
        replies.claim("webhook:his", "k1", "print-1", receipt.write)
    with pytest.raises(Replayed):  # the same signature under another key may not act
        replies.claim("webhook:his", "k2", "print-1", receipt.write)
    assert replies.claim("webhook:his", "k2", "print-1") is None  # nothing was claimed for k2
    replies.complete("webhook:his", "k1", 200, '{"id": "v1"}')
    assert replies.claim("webhook:his", "k1", "print-1", receipt.write) == Stored(200, '{"id": "v1"}')
    with pytest.raises(Replayed):  # a replay with another body under the key: not the answered request
        replies.claim("webhook:his", "k1", "print-2", receipt.write)
