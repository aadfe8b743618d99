"""``make run``: the whole suite on this machine, with demo data, in the foreground.

Migrates each service's SQLite database under ``var/``, starts every service and the gateway as its
own ``nameko run`` process (logs in ``var/log/``), waits until the gateway is ready, loads the demo
group's members and their paid visits through the API (so points, tiers and messages follow from the
events as in production), and prints how to try it. Ctrl-C stops everything.

Environment: ``CARELOOP_PORT`` (gateway, default 8000), ``AMQP_URI`` (default the local broker, vhost
``/``), ``CARELOOP_DATA_KEYS``/``CARELOOP_INDEX_KEY`` (default: generated once into ``var/secrets.env``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")

REPO = Path(__file__).resolve().parents[2]
VAR = REPO / "var"
LOGS = VAR / "log"
PIDS = VAR / "pids"
PYTHON = sys.executable

def _processes() -> dict[str, tuple[str, int]]:
    """service -> (module:class, metrics port), from deploy/services.yml (the list every deployment uses)."""
    from deploy.entrypoint import processes

    return {name: (spec["target"], spec["metrics_port"]) for name, spec in processes().items()}


SERVICES = _processes()


def secrets_env() -> dict[str, str]:
    """Encryption and token keys: from the environment, else generated once for this checkout
    (var/secrets.env; a file from before the gateway signed tokens gets a token key added)."""
    if all(os.environ.get(name) for name in ("CARELOOP_DATA_KEYS", "CARELOOP_INDEX_KEY", "CARELOOP_TOKEN_KEYS")):
        return {}
    path = VAR / "secrets.env"
    if not path.exists():
        from services.kit.crypto import generate_env

        VAR.mkdir(exist_ok=True)
        path.write_text(generate_env())
        path.chmod(0o600)
        print(f"generated local encryption keys in {path.relative_to(REPO)} (keep it: the data needs it)")
    if "CARELOOP_TOKEN_KEYS=" not in path.read_text():
        from gateway.tokens import generate_key

        with path.open("a") as handle:
            handle.write(f"CARELOOP_TOKEN_KEYS={generate_key()}\n")
    return dict(line.split("=", 1) for line in path.read_text().split() if "=" in line)


def migrate(env: dict[str, str]) -> None:
    for service in SERVICES:
        subprocess.run([PYTHON, "-W", "ignore", "-m", "services.kit.migrate", service], cwd=REPO, env=env,
                       check=True)


def start(env: dict[str, str], port: int) -> dict[str, subprocess.Popen]:
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    processes = {}
    for service, (target, metrics_port) in SERVICES.items():
        process_env = dict(env, SERVICE_NAME=service, METRICS_PORT=str(metrics_port),
                           DATABASE_URL=env.get(f"{service.upper()}_DATABASE_URL", ""),
                           WEB_SERVER_ADDRESS=f"127.0.0.1:{port}")
        log = open(LOGS / f"{service}.log", "ab")
        processes[service] = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "nameko"), "run", "--config", "deploy/config.yml", target],
            cwd=REPO, env=process_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        (PIDS / f"{service}.pid").write_text(str(processes[service].pid))
    return processes


def wait_ready(url: str, processes: dict[str, subprocess.Popen], seconds: int = 90) -> None:
    deadline = time.monotonic() + seconds
    last = ""
    while time.monotonic() < deadline:
        for service, process in processes.items():
            if process.poll() is not None:
                tail = (LOGS / f"{service}.log").read_text(errors="replace").splitlines()[-25:]
                raise SystemExit(f"{service} stopped (exit {process.returncode}); end of var/log/{service}.log:\n"
                                 + "\n".join(tail))
        try:
            with urllib.request.urlopen(url + "/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as error:
            last = error.read().decode(errors="replace")
        except OSError as error:
            last = str(error)
        time.sleep(1)
    raise SystemExit(f"the suite did not become ready in {seconds} s: {last}")


def demo_key(env: dict[str, str]) -> str:
    path = VAR / "demo-api-key"
    if path.exists():
        return path.read_text().strip()
    result = subprocess.run([PYTHON, "-W", "ignore", "-m", "gateway.credentials", "create-api-key", "--name",
                             "demo admin", "--role", "group_admin", "--branches", "*"],
                            cwd=REPO, env=env, check=True, capture_output=True, text=True)
    key = result.stdout.strip()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def demo_admin(env: dict[str, str]) -> str | None:
    """A group admin to sign in with (demo.admin); its password is kept in var/demo-admin-password."""
    path = VAR / "demo-admin-password"
    if path.exists():
        return path.read_text().strip()
    import secrets

    password = "-".join(secrets.token_urlsafe(6) for _ in range(3))
    result = subprocess.run([PYTHON, "-W", "ignore", "-m", "gateway.credentials", "create-admin", "--username",
                             "demo.admin", "--name", "Demo Group Admin", "--password-stdin"],
                            cwd=REPO, env=env, input=password + "\n", capture_output=True, text=True)
    if result.returncode != 0:  # an admin exists already (made by hand): leave it alone
        return None
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def _post(url: str, key: str, path: str, body: dict, idempotency_key: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}",
                 "Idempotency-Key": idempotency_key})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def load_demo(url: str, key: str) -> tuple[int, int]:
    """Enrol the demo members and complete their visits through the API (again: the same answers)."""
    from deploy.local.demo import demo_members, demo_visits

    members = []
    for number, member in enumerate(demo_members()):
        status, body = _post(url, key, "/v1/members", member, f"demo-member-{number}")
        if status == 409:  # enrolled by an earlier run whose answer is no longer kept
            found = body.get("error", {}).get("details", {}).get("matches", [{}])[0].get("member_id")
            members.append(found)
            continue
        if status != 201:
            raise SystemExit(f"demo member {number} refused: {status} {body}")
        members.append(body["id"])
    visits = 0
    for number, (member_index, bill) in enumerate(demo_visits(len(members))):
        member_id = members[member_index]
        if member_id is None:
            continue
        status, opened = _post(url, key, "/v1/visits", {"member_id": member_id, "branch": bill["branch"]},
                               f"demo-visit-{number}")
        if status != 201:
            raise SystemExit(f"demo visit {number} refused: {status} {opened}")
        status, body = _post(url, key, f"/v1/visits/{opened['id']}/complete", {**bill, "member_id": member_id},
                             f"demo-bill-{number}")
        if status not in (200, 409):
            raise SystemExit(f"demo bill {number} refused: {status} {body}")
        visits += 1
    return len(members), visits


def stop_pids() -> None:
    for pid_file in PIDS.glob("*.pid") if PIDS.exists() else []:
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError, PermissionError):
            pass
        pid_file.unlink()


def main() -> int:
    if "--stop" in sys.argv:
        stop_pids()
        return 0
    stop_pids()  # a previous run killed hard may have left processes behind
    port = int(os.environ.get("CARELOOP_PORT", "8000"))
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, **secrets_env(), PYTHONWARNINGS="ignore")
    os.environ.update(secrets_env())
    print("migrating databases under var/")
    migrate(env)
    subprocess.run([PYTHON, "-W", "ignore", "-m", "services.kit.topology"], cwd=REPO, env=env, check=True)
    print("starting " + ", ".join(SERVICES) + " (logs in var/log/)")
    processes = start(env, port)
    try:
        wait_ready(url, processes)
        key = demo_key(env)
        admin_password = demo_admin(env)
        loaded, visits = load_demo(url, key)
        metrics_ports = " ".join(f":{port} ({name})" for name, (_target, port) in SERVICES.items())
        print(f"""
CareLoop is up at {url}  ({loaded} demo members in 3 branches, {visits} paid visits; API at {url}/openapi.json,
interactive at {url}/docs)
Staff sign-in: demo.admin / {admin_password or "(see var/demo-admin-password)"}  (POST /v1/auth/login)
Metrics: {url}/metrics (with the key), and per service on {metrics_ports}

Try:
  export CARELOOP_KEY=$(cat var/demo-api-key)
  curl -s -X POST {url}/v1/members -H "Authorization: Bearer $CARELOOP_KEY" -H 'Content-Type: application/json' \\
       -H 'Idempotency-Key: try-1' \\
       -d '{{"full_name": "Chen Jing", "phone": "13912345678", "birth_date": "1991-07-08", "home_branch": "SH01", "consents": {{"sms": true}}}}'
  curl -s "{url}/v1/members?phone=13912345678" -H "Authorization: Bearer $CARELOOP_KEY"
  curl -s {url}/v1/members/<id>/deliveries -H "Authorization: Bearer $CARELOOP_KEY"
  curl -s {url}/v1/members/<id>/points -H "Authorization: Bearer $CARELOOP_KEY"
  curl -s {url}/v1/members/<id>/tier -H "Authorization: Bearer $CARELOOP_KEY"

Ctrl-C stops everything.""", flush=True)
        while all(process.poll() is None for process in processes.values()):
            time.sleep(1)
        dead = [name for name, process in processes.items() if process.poll() is not None]
        print(f"{', '.join(dead)} stopped; see var/log/. Stopping the rest.")
        return 1
    except KeyboardInterrupt:
        print("\nstopping")
        return 0
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        stop_pids()


if __name__ == "__main__":
    sys.exit(main())
