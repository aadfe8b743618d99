"""Logs: no password, token, API key or webhook secret ever appears; every request line has its id."""

from __future__ import annotations

import json
import logging

from gateway.auth import webhooks
from services.kit.config import REPO_ROOT, load_config
from services.kit.logs import JsonFormatter

LI_NA = {"full_name": "Li Na", "phone": "13900139000", "birth_date": "1985-02-03", "home_branch": "SH01"}


class Capture(logging.Handler):
    """Formats each record at once, as production does, so that the request id of the moment is kept."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.formatter = JsonFormatter("test")
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, self.formatter.format(record)))


def test_sign_in_webhooks_and_keys_leave_no_secret_in_any_log_line(suite):
    capture = Capture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)  # everything of ours, libraries at the levels production runs them
    production = load_config(REPO_ROOT / "deploy" / "config.yml")["LOGGING"]["loggers"]
    library_levels = {name: logging.getLogger(name).level for name in production}
    for name, settings in production.items():
        logging.getLogger(name).setLevel(settings["level"])
    secrets: list[str] = []
    try:
        password = "purple elephant dances at dawn"
        wrong = "green giraffe sings at midnight"
        user = suite.create_staff("front_desk", ("SH01",), password=password)
        secrets += [password, wrong]
        assert suite.login(user["username"], wrong).status_code == 401
        grant = suite.login(user["username"], password).json()
        secrets += [grant["access_token"], grant["refresh_token"]]
        assert suite.as_token(grant["access_token"], "GET", "/v1/members?q=li").status_code == 200
        renewed = suite.http.post(suite.base_url + "/v1/auth/refresh",
                                  json={"refresh_token": grant["refresh_token"]}).json()
        secrets += [renewed["access_token"], renewed["refresh_token"]]
        changed = suite.as_token(renewed["access_token"], "POST", "/v1/auth/password",
                                 json={"current_password": password, "new_password": "orange tiger sleeps till noon"})
        assert changed.status_code == 200
        secrets.append("orange tiger sleeps till noon")
        assert suite.as_token(renewed["access_token"], "POST", "/v1/auth/logout").status_code == 200

        issued = suite.call("POST", "/v1/api-keys", json={"name": "HIS", "role": "integration", "branches": ["*"]})
        key = issued.json()["key"]
        secrets += [key, key.split("_")[2], suite.key("group_admin").split("_")[2]]
        assert suite.call("GET", "/v1/members?q=li", role=None, headers={"Authorization": f"Bearer {key}"}).ok
        assert suite.call("GET", "/v1/members?q=li", role=None,
                          headers={"Authorization": f"Bearer {key[:-3]}xyz"}).status_code == 401

        created = suite.call("POST", "/v1/webhook-integrations",
                             json={"id": "his-logs", "name": "HIS", "branches": ["*"]}).json()
        secret = created["secret"]
        body = json.dumps(LI_NA).encode()
        headers = webhooks.signed_headers("his-logs", secret, body)
        secrets += [secret, headers[webhooks.SIGNATURE_HEADER].removeprefix("v1=")]
        url = suite.base_url + "/v1/webhooks/patients"
        sent = suite.http.post(url, data=body, headers={"Content-Type": "application/json", **headers})
        assert sent.status_code == 201, sent.text
        assert suite.http.post(url, data=body, headers={"Content-Type": "application/json", **headers}).status_code == 401
        bad = webhooks.signed_headers("his-logs", "whsec_guess", body)
        secrets.append(bad[webhooks.SIGNATURE_HEADER].removeprefix("v1="))
        assert suite.http.post(url, data=body, headers={"Content-Type": "application/json", **bad}).status_code == 401
    finally:
        root.removeHandler(capture)
        root.setLevel(level)
        for name, old in library_levels.items():
            logging.getLogger(name).setLevel(old)

    text = "\n".join(line for _name, line in capture.lines)
    assert len(capture.lines) > 20
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:6]}...) reached the logs"
    assert "13900139000" not in text  # nor the patient's phone number
    access = [json.loads(line) for name, line in capture.lines if name == "gateway.access"]
    assert len(access) >= 14
    assert all(entry.get("request_id") and entry["route"] for entry in access)
    gateway_lines = [json.loads(line) for name, line in capture.lines if name.startswith("gateway")]
    assert all(entry.get("request_id") for entry in gateway_lines)
