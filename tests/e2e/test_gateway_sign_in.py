"""Staff sign-in over HTTP: tokens, refresh rotation, sign-out, revocation, lockout, passwords."""

from __future__ import annotations

import io
import sys

import pytest

from gateway.auth import credentials
from tests.e2e.conftest import STRONG_PASSWORD


def test_sign_in_gives_a_token_that_works_and_says_who_it_is(suite):
    user = suite.create_staff("front_desk", ("SH01",))
    grant = suite.login(user["username"])
    assert grant.status_code == 200, grant.text
    body = grant.json()
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 900
    assert body["refresh_token"].startswith("clr_") and body["user"]["id"] == user["id"]
    me = suite.as_token(body["access_token"], "GET", "/v1/auth/me").json()
    assert (me["kind"], me["subject"], me["role"], me["branches"]) == ("staff", user["id"], "front_desk", ["SH01"])
    assert "members:enrol" in me["permissions"] and "staff:manage" not in me["permissions"]
    assert suite.as_token(body["access_token"], "GET", "/v1/members?q=li").status_code == 200
    assert suite.as_token(body["access_token"], "GET", "/v1/staff").status_code == 403


def test_wrong_password_and_unknown_user_get_the_same_answer(suite):
    user = suite.create_staff("clinician")
    wrong = suite.login(user["username"], "not the password at all")
    unknown = suite.login("nobody-here", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(suite):
    user = suite.create_staff("customer_service")
    first = suite.login(user["username"]).json()
    second = suite.http.post(suite.base_url + "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    renewed = second.json()
    assert renewed["refresh_token"] != first["refresh_token"] and renewed["session_id"] == first["session_id"]
    assert suite.as_token(renewed["access_token"], "GET", "/v1/auth/me").status_code == 200
    # the first refresh token comes back: a copy exists somewhere; the whole session ends
    reused = suite.http.post(suite.base_url + "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert suite.as_token(renewed["access_token"], "GET", "/v1/auth/me").status_code == 401
    after = suite.http.post(suite.base_url + "/v1/auth/refresh", json={"refresh_token": renewed["refresh_token"]})
    assert after.status_code == 401
    events = suite.call("GET", "/v1/security-events", params={"kind": "refresh_token_reused"}).json()["items"]
    assert [e["target"] for e in events] == [f"user:{user['id']}"]


def test_logout_ends_the_session_and_its_tokens(suite):
    user = suite.create_staff("auditor")
    grant = suite.login(user["username"]).json()
    other = suite.login(user["username"]).json()
    out = suite.as_token(grant["access_token"], "POST", "/v1/auth/logout")
    assert out.status_code == 200 and out.json() == {"signed_out": True}
    assert suite.as_token(grant["access_token"], "GET", "/v1/auth/me").status_code == 401
    assert suite.http.post(suite.base_url + "/v1/auth/refresh",
                           json={"refresh_token": grant["refresh_token"]}).status_code == 401
    assert suite.as_token(other["access_token"], "GET", "/v1/auth/me").status_code == 200  # another device


def test_an_api_key_cannot_sign_out(suite):
    response = suite.call("POST", "/v1/auth/logout", role="integration")
    assert response.status_code == 403


def test_admin_revokes_all_sessions_and_a_role_change_ends_them_too(suite):
    user = suite.create_staff("branch_manager", ("SH01",))
    token = suite.login(user["username"]).json()["access_token"]
    ended = suite.call("POST", f"/v1/staff/{user['id']}/sessions/revoke")
    assert ended.status_code == 200 and ended.json()["sessions_ended"] == 1
    assert suite.as_token(token, "GET", "/v1/auth/me").status_code == 401
    token = suite.login(user["username"]).json()["access_token"]
    changed = suite.call("PATCH", f"/v1/staff/{user['id']}", json={"role": "front_desk"})
    assert changed.status_code == 200 and changed.json()["role"] == "front_desk"
    assert suite.as_token(token, "GET", "/v1/auth/me").status_code == 401
    again = suite.login(user["username"]).json()
    assert again["user"]["role"] == "front_desk"


def test_disabled_staff_cannot_sign_in(suite):
    user = suite.create_staff("clinician")
    assert suite.call("PATCH", f"/v1/staff/{user['id']}", json={"status": "disabled"}).status_code == 200
    refused = suite.login(user["username"])
    assert refused.status_code == 403 and "disabled" in refused.json()["error"]["message"]


def test_the_last_group_admin_cannot_be_disabled(suite):
    admin = suite.create_staff("group_admin")
    response = suite.call("PATCH", f"/v1/staff/{admin['id']}", json={"status": "disabled"})
    assert response.status_code == 409
    second = suite.create_staff("group_admin")
    assert suite.call("PATCH", f"/v1/staff/{admin['id']}", json={"status": "disabled"}).status_code == 200
    assert suite.call("PATCH", f"/v1/staff/{second['id']}", json={"role": "auditor"}).status_code == 409


def test_account_locks_after_five_failures_even_for_the_right_password_until_unlocked(suite):
    user = suite.create_staff("front_desk")
    for _ in range(5):
        assert suite.login(user["username"], "wrong password number x").status_code == 401
    locked = suite.login(user["username"])
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert suite.call("GET", f"/v1/staff/{user['id']}").json()["locked_until"]
    assert suite.call("POST", f"/v1/staff/{user['id']}/unlock").status_code == 200
    assert suite.login(user["username"]).status_code == 200
    kinds = [e["kind"] for e in suite.call("GET", "/v1/security-events", params={"target": f"user:{user['id']}"})
             .json()["items"]]
    assert "account_locked" in kinds and "account_unlocked" in kinds and kinds.count("login_failed") == 5


def test_unknown_names_lock_like_real_ones(suite):
    for _ in range(5):
        assert suite.login("ghost-account", "wrong password number x").status_code == 401
    assert suite.login("ghost-account", "wrong password number x").status_code == 429


def test_an_address_locks_after_many_failures_across_accounts(start_suite):
    suite = start_suite(LOCKOUT_ADDRESS_FAILURES=6)
    user = suite.create_staff("clinician")
    for number in range(6):
        assert suite.login(f"someone-{number}", "wrong password number x").status_code == 401
    refused = suite.login(user["username"])  # the right password, from the locked address
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_sign_in_attempts_are_rate_limited_per_address(start_suite):
    suite = start_suite(RATE_LIMIT_LOGIN="3/min burst 3")
    statuses = [suite.login("anyone", "wrong password number x").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_password_change_required_opens_only_the_own_routes_until_changed(suite):
    user = suite.create_staff("front_desk", change_required=True)
    grant = suite.login(user["username"]).json()
    assert grant["password_change_required"] is True
    token = grant["access_token"]
    refused = suite.as_token(token, "GET", "/v1/members?q=li")
    assert refused.status_code == 403 and refused.json()["error"]["details"]["password_change_required"]
    weak = suite.as_token(token, "POST", "/v1/auth/password",
                          json={"current_password": STRONG_PASSWORD, "new_password": "short"})
    assert weak.status_code == 422 and "new_password" not in weak.text.replace('"new_password"', "")
    changed = suite.as_token(token, "POST", "/v1/auth/password",
                             json={"current_password": STRONG_PASSWORD, "new_password": "a brand new passphrase"})
    assert changed.status_code == 200 and changed.json()["password_change_required"] is False
    assert suite.as_token(token, "GET", "/v1/members?q=li").status_code == 200
    assert suite.login(user["username"]).status_code == 401
    assert suite.login(user["username"], "a brand new passphrase").status_code == 200


def test_admin_reset_sets_a_temporary_password_and_ends_sessions(suite):
    user = suite.create_staff("clinician")
    token = suite.login(user["username"]).json()["access_token"]
    reset = suite.call("POST", f"/v1/staff/{user['id']}/password", json={"password": "temporary pass phrase"})
    assert reset.status_code == 200 and reset.json()["password_change_required"] is True
    assert suite.as_token(token, "GET", "/v1/auth/me").status_code == 401
    assert suite.login(user["username"], "temporary pass phrase").json()["password_change_required"] is True


@pytest.mark.parametrize(("body", "field"), [
    ({"password": "short"}, "password"),
    ({"role": "emperor"}, "role"),
    ({"branches": ["NOPE"]}, "branches"),
    ({"username": "no spaces allowed"}, "username"),
])
def test_bad_staff_accounts_are_refused_with_the_field(suite, body, field):
    valid = {"username": "li.wei", "display_name": "Li Wei", "role": "front_desk", "branches": ["SH01"],
             "password": STRONG_PASSWORD}
    response = suite.call("POST", "/v1/staff", json={**valid, **body})
    assert response.status_code == 422 and field in response.json()["error"]["fields"]


def test_staff_list_filters_and_pages(suite):
    made = [suite.create_staff("front_desk", ("SH02",)) for _ in range(3)]
    suite.create_staff("clinician", ("SH01",))
    first = suite.call("GET", "/v1/staff", params={"role": "front_desk", "branch": "SH02", "limit": 2}).json()
    second = suite.call("GET", "/v1/staff", params={"role": "front_desk", "branch": "SH02", "limit": 2,
                                                    "cursor": first["next_cursor"]}).json()
    assert [u["id"] for u in first["items"] + second["items"]] == [u["id"] for u in made]
    assert second["next_cursor"] is None


def test_create_admin_command_makes_the_first_group_admin_once(suite, monkeypatch, capsys):
    monkeypatch.setenv("GATEWAY_DATABASE_URL", suite.database_urls["gateway"])
    monkeypatch.setattr(sys, "stdin", io.StringIO("the first keeper of keys\n"))
    assert credentials.main(["create-admin", "--username", "Admin.One", "--name", "Admin One",
                             "--password-stdin"]) == 0
    assert "group admin admin.one created" in capsys.readouterr().out
    grant = suite.login("admin.one", "the first keeper of keys").json()
    assert grant["user"]["role"] == "group_admin" and grant["user"]["branches"] == ["*"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("the second keeper of keys\n"))
    with pytest.raises(SystemExit):
        credentials.main(["create-admin", "--username", "admin.two", "--name", "Admin Two", "--password-stdin"])


def test_an_access_token_stops_working_when_it_expires_and_refresh_gives_a_new_one(start_suite):
    import time

    suite = start_suite(ACCESS_TOKEN_SECONDS=1)
    user = suite.create_staff("clinician")
    grant = suite.login(user["username"]).json()
    assert grant["expires_in"] == 1
    assert suite.as_token(grant["access_token"], "GET", "/v1/auth/me").status_code == 200  # now cached too
    time.sleep(1 + 5 + 1)  # lifetime, plus the clock leeway tokens are read with
    assert suite.as_token(grant["access_token"], "GET", "/v1/auth/me").status_code == 401
    renewed = suite.http.post(suite.base_url + "/v1/auth/refresh", json={"refresh_token": grant["refresh_token"]})
    assert suite.as_token(renewed.json()["access_token"], "GET", "/v1/auth/me").status_code == 200
