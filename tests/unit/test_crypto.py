"""Field encryption: round trip, binding to the column, rotation, and blind indexes."""

import base64
import os

import pytest

from services.kit.crypto import Keyring, KeysMissing, key_id_of


def ring(keys, active=None):
    env = {"CARELOOP_DATA_KEYS": ",".join(f"{k}={base64.b64encode(v).decode()}" for k, v in keys.items()),
           "CARELOOP_INDEX_KEY": base64.b64encode(b"i" * 32).decode()}
    if active:
        env["CARELOOP_DATA_KEY_ID"] = active
    return Keyring.from_env(env)


def test_round_trip_and_no_plaintext_in_token():
    keys = ring({"a": os.urandom(32)})
    token = keys.encrypt("+8613800138000", "members.phone")
    assert "13800138000" not in token
    assert keys.decrypt(token, "members.phone") == "+8613800138000"


def test_same_value_encrypts_differently_each_time():
    keys = ring({"a": os.urandom(32)})
    assert keys.encrypt("x", "c") != keys.encrypt("x", "c")


def test_value_moved_to_another_column_does_not_decrypt():
    from cryptography.exceptions import InvalidTag

    keys = ring({"a": os.urandom(32)})
    token = keys.encrypt("penicillin", "records.allergy")
    with pytest.raises(InvalidTag):
        keys.decrypt(token, "records.notes")


def test_rotation_keeps_old_values_readable_and_writes_with_the_new_key():
    old, new = os.urandom(32), os.urandom(32)
    before = ring({"k1": old})
    token = before.encrypt("secret", "c")
    after = ring({"k1": old, "k2": new})
    assert after.active == "k2"
    assert after.decrypt(token, "c") == "secret"
    assert key_id_of(after.encrypt("secret", "c")) == "k2"


def test_unknown_key_id_is_a_clear_error():
    token = ring({"k1": os.urandom(32)}).encrypt("secret", "c")
    with pytest.raises(KeysMissing):
        ring({"k9": os.urandom(32)}).decrypt(token, "c")


def test_missing_or_short_keys_refuse_to_start():
    with pytest.raises(KeysMissing):
        Keyring.from_env({})
    with pytest.raises(KeysMissing):
        Keyring.from_env({"CARELOOP_DATA_KEYS": "a=" + base64.b64encode(b"short").decode(),
                          "CARELOOP_INDEX_KEY": base64.b64encode(b"i" * 32).decode()})


def test_blind_index_is_stable_and_separated_by_context():
    keys = ring({"a": os.urandom(32)})
    assert keys.blind_index("+8613800138000", "members.phone") == keys.blind_index("+8613800138000", "members.phone")
    assert keys.blind_index("+8613800138000", "members.phone") != keys.blind_index("+8613800138000", "members.name")
