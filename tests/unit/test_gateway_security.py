"""The gateway's security rules without a broker or database: passwords, tokens, limits, signatures."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import jwt
import pytest

from gateway import idempotency
from gateway.auth import passwords, webhooks
from gateway.auth.tokens import TokenKeys, TokenKeysMissing, hash_refresh_token, looks_like_jwt, new_refresh_token
from gateway.ratelimit import ClientAddress, Limit, Limiter
from services.kit.errors import Invalid, RateLimited

KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()


@pytest.mark.parametrize(("password", "why"), [
    ("short1!", "at least 12"),
    ("password1234", "first ones attackers try"),
    ("Qwertyuiop!!", "first ones attackers try"),
    ("aaaaaaaaaaaaaaaa", "more than two different"),
    ("ababababababab", "more than two different"),
    ("wang.li-is-my-name", "user name"),
    ("x" * 257 + "yz", "at most 256"),
])
def test_weak_passwords_are_refused_with_a_reason_that_does_not_repeat_them(password, why):
    with pytest.raises(Invalid) as refused:
        passwords.check_strength(password, username="wang.li", display_name="Wang Li")
    assert any(why in message for message in refused.value.fields["password"])
    assert password not in str(refused.value.to_dict())


@pytest.mark.parametrize("password", ["correct horse battery staple", "Tooth-Fairy-2031-Jingan", "长城牙科诊所的春天来了呀"])
def test_passphrases_and_long_passwords_pass(password):
    assert passwords.check_strength(password, username="wang.li", display_name="Wang Li") == password


def test_argon2_hash_verifies_only_the_right_password_and_is_argon2id():
    hasher = passwords.Passwords({"ARGON2_MEMORY_KIB": 8192, "ARGON2_TIME_COST": 1, "ARGON2_PARALLELISM": 1})
    stored = hasher.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$") and "correct" not in stored
    assert hasher.verify(stored, "correct horse battery staple")
    assert not hasher.verify(stored, "correct horse battery stapler")
    assert not hasher.verify("not a hash", "anything")
    stronger = passwords.Passwords({"ARGON2_MEMORY_KIB": 16384, "ARGON2_TIME_COST": 2, "ARGON2_PARALLELISM": 1})
    assert stronger.needs_rehash(stored)


def test_access_tokens_carry_the_signing_key_id_and_survive_a_key_rotation():
    now = datetime.now(UTC)
    old = TokenKeys.from_config({"TOKEN_KEYS": f"k1={KEY_A}"})
    token, _ = old.issue_access("u1", "s1", "front_desk", ("SH01",), now, 900)
    assert jwt.get_unverified_header(token)["kid"] == "k1" and looks_like_jwt(token)
    rotated = TokenKeys.from_config({"TOKEN_KEYS": f"k1={KEY_A},k2={KEY_B}", "TOKEN_KEY_ID": "k2"})
    claims = rotated.read_access(token)
    assert claims is not None and (claims.user_id, claims.session_id, claims.branches) == ("u1", "s1", ("SH01",))
    fresh, _ = rotated.issue_access("u1", "s2", "front_desk", ("SH01",), now, 900)
    assert jwt.get_unverified_header(fresh)["kid"] == "k2"
    retired = TokenKeys.from_config({"TOKEN_KEYS": f"k2={KEY_B}"})
    assert retired.read_access(token) is None and retired.read_access(fresh) is not None


def test_expired_forged_and_unsigned_tokens_are_refused():
    keys = TokenKeys.from_config({"TOKEN_KEYS": f"k1={KEY_A}"})
    expired, _ = keys.issue_access("u1", "s1", "auditor", ("*",), datetime(2020, 1, 1, tzinfo=UTC), 900)
    assert keys.read_access(expired) is None
    claims = {"iss": "careloop-gateway", "aud": "careloop-api", "sub": "u1", "sid": "s1", "iat": int(time.time()),
              "exp": int(time.time()) + 900, "typ": "access", "role": "group_admin"}
    forged = jwt.encode(claims, b"z" * 32, algorithm="HS256", headers={"kid": "k1"})
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    assert keys.read_access(forged) is None and keys.read_access(unsigned) is None
    assert keys.read_access("eyJ.garbage.here") is None


@pytest.mark.parametrize("config", [{}, {"TOKEN_KEYS": "k1=c2hvcnQ="}, {"TOKEN_KEYS": f"k1={KEY_A}", "TOKEN_KEY_ID": "k9"}])
def test_missing_or_weak_token_keys_stop_the_gateway(config):
    with pytest.raises(TokenKeysMissing):
        TokenKeys.from_config(config, env={})


def test_refresh_tokens_are_random_and_kept_as_hashes():
    token, stored = new_refresh_token()
    other, _ = new_refresh_token()
    assert token != other and token.startswith("clr_") and len(token) > 40
    assert stored == hash_refresh_token(token) and token not in stored


def test_rate_limit_allows_the_burst_then_refuses_with_retry_after():
    limiter = Limiter("credential", Limit.parse("2/s burst 3"))
    for _ in range(3):
        limiter.hit("k", now=100.0)
    with pytest.raises(RateLimited) as refused:
        limiter.hit("k", now=100.0)
    assert refused.value.details["retry_after"] >= 1
    limiter.hit("other", now=100.0)  # another credential is not affected
    limiter.hit("k", now=100.6)  # half a second later one more request fits
    with pytest.raises(RateLimited):
        limiter.hit("k", now=100.6)


@pytest.mark.parametrize(("text", "rate", "burst"), [("50/s burst 200", 50, 200), ("10/min burst 10", 10 / 60, 10),
                                                    ("5/s", 5, 5)])
def test_limits_read_from_configuration(text, rate, burst):
    limit = Limit.parse(text)
    assert (limit.rate, limit.burst) == (pytest.approx(rate), burst)
    assert Limit.parse("off") is None


def test_client_address_trusts_forwarded_for_only_from_a_trusted_proxy():
    resolver = ClientAddress("10.0.0.0/8")
    environ = {"REMOTE_ADDR": "10.1.2.3", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.9, 10.9.9.9"}
    assert resolver.of(environ) == "203.0.113.9"
    assert resolver.of({**environ, "REMOTE_ADDR": "198.51.100.7"}) == "198.51.100.7"
    assert ClientAddress(()).of(environ) == "10.1.2.3"


def test_webhook_signature_covers_timestamp_and_body():
    signature = webhooks.sign("whsec_x", 1700000000, b'{"a":1}')
    assert signature.startswith("v1=") and len(signature) == 67
    assert signature != webhooks.sign("whsec_x", 1700000001, b'{"a":1}')
    assert signature != webhooks.sign("whsec_x", 1700000000, b'{"a":2}')
    assert signature != webhooks.sign("whsec_y", 1700000000, b'{"a":1}')


def test_idempotency_keys_are_namespaced_per_credential_and_bounded():
    assert idempotency.service_key("key:abc", "bill-1") == "key:abc:bill-1"
    long = idempotency.service_key("webhook:" + "h" * 64, "k" * 128)
    assert len(long) <= 128 and long != idempotency.service_key("webhook:" + "h" * 64, "k" * 127 + "j")
    for bad in ("", "   ", "x" * 129, "naïve", "tab\there"):
        with pytest.raises(Invalid):
            idempotency.check_key(bad)
