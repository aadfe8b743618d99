"""Key rotation (``python -m services.kit.rotate``): after it, every value is under the new key and the
old key can go, on SQLite and PostgreSQL, with the services running."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

from services.kit.crypto import reload_keyring
from services.kit.rotate import rotate, service_metadata, stale
from tests.harness import REPO, store_for
from tests.integration.records_support import CLINICIAN, enrol, rows, start_records

NEW_KEY = "test2=" + base64.b64encode(b"a-second-test-key-of-32-bytes-ok").decode()


@pytest.fixture
def keys(monkeypatch):
    """Switch the process (and the services in it) to keys of our choosing; restore them after."""
    original = os.environ["CARELOOP_DATA_KEYS"]

    def use(data_keys: str, active: str | None) -> dict[str, str]:
        monkeypatch.setenv("CARELOOP_DATA_KEYS", data_keys)
        if active:
            monkeypatch.setenv("CARELOOP_DATA_KEY_ID", active)
        else:
            monkeypatch.delenv("CARELOOP_DATA_KEY_ID", raising=False)
        reload_keyring()
        return dict(os.environ)

    yield original, use
    monkeypatch.undo()
    reload_keyring()


def test_rotation_re_encrypts_everything_and_the_old_key_can_go(start_service, rpc, backend, keys):
    original, use = keys
    records, members = start_records(start_service, backend)
    proxy = rpc()
    member_id = enrol(proxy, 40)
    doctor = rpc(caller=CLINICIAN).records
    doctor.update_health_profile(member_id, {"allergies": [{"substance": "Latex", "severity": "mild"}],
                                             "notes": "Gag reflex"}, "examination")
    doctor.update_chart(member_id, {"marks": [{"tooth": 36, "finding": "caries", "surfaces": ["O"]}]}, "exam")
    doctor.save_care_plan(member_id, {"recall_type": "cleaning", "branch": "SH01", "diet": "Less sugar"}, "plan")

    env = use(f"{original},{NEW_KEY}", "test2")
    before = stale(store := store_for(records.database_url), service_metadata("records"))
    assert before["health_profiles"] == 2 and before["dental_charts"] == 1 and before["care_plans"] == 1

    done = subprocess.run([sys.executable, "-W", "ignore", "-m", "services.kit.rotate", "records", "--url",
                           records.database_url, "--batch", "2"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "health_profiles: 1 rows re-encrypted" in done.stdout and "active key: test2" in done.stdout
    check = subprocess.run([sys.executable, "-W", "ignore", "-m", "services.kit.rotate", "records", "--url",
                            records.database_url, "--check"], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0, check.stdout
    assert set(stale(store, service_metadata("records")).values()) == {0}
    (allergies, notes), = rows(records.database_url, "SELECT allergies, notes FROM health_profiles")
    assert allergies.startswith("v1.test2.") and notes.startswith("v1.test2.")

    members_store = store_for(members.database_url)
    assert sum(rotate(members_store, service_metadata("members")).values()) == 1
    assert set(stale(members_store, service_metadata("members")).values()) == {0}
    assert sum(rotate(members_store, service_metadata("members")).values()) == 0  # nothing left to do
    members_store.dispose()
    store.dispose()

    use(NEW_KEY, None)  # the old key is gone: everything still reads
    profile = doctor.get_health_profile(member_id, "after rotation")
    assert profile["notes"] == "Gag reflex" and profile["allergies"][0]["substance"] == "Latex"
    assert doctor.get_chart(member_id, "after rotation")["teeth"][0]["caries"] == ["O"]
    assert doctor.get_care_plans(member_id, "after rotation")["items"][0]["diet"] == "Less sugar"
    assert proxy.members.get_member(member_id)["full_name"] == "Patient Number40"
