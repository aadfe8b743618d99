"""``make run``: the whole suite on this machine, with demo data, in the foreground.

Migrates each service's SQLite database under ``var/``, starts every service and the gateway as its
own ``nameko run`` process (logs in ``var/log/``), waits until the gateway is ready, loads the demo
group's members and their paid visits through the API (so points, tiers and messages follow from the
events as in production), and prints how to try it. A process that dies is started again with backoff
(``deploy.local.supervise``; each restart is logged on the terminal and in ``var/log/runner.log``).
Ctrl-C stops everything, and so does ``make stop`` (``--stop``) from another terminal.

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
from typing import Any

from deploy.local.supervise import Child, Supervisor

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
        from gateway.auth.tokens import generate_key

        with path.open("a") as handle:
            handle.write(f"CARELOOP_TOKEN_KEYS={generate_key()}\n")
    if "CARELOOP_LINK_SECRET=" not in path.read_text():  # appointment links (services/kit/links.py)
        import secrets

        with path.open("a") as handle:
            handle.write(f"CARELOOP_LINK_SECRET={secrets.token_urlsafe(32)}\n")
    return dict(line.split("=", 1) for line in path.read_text().split() if "=" in line)


def migrate(env: dict[str, str]) -> None:
    for service in SERVICES:
        subprocess.run([PYTHON, "-W", "ignore", "-m", "services.kit.migrate", service], cwd=REPO, env=env,
                       check=True)


def children(env: dict[str, str], port: int) -> list[Child]:
    """Every service and the gateway as a ``nameko run`` process with its own environment and log."""
    made = []
    for service, (target, metrics_port) in SERVICES.items():
        process_env = dict(env, SERVICE_NAME=service, METRICS_PORT=str(metrics_port),
                           DATABASE_URL=env.get(f"{service.upper()}_DATABASE_URL", ""),
                           WEB_SERVER_ADDRESS=f"127.0.0.1:{port}")
        made.append(Child(service, [str(REPO / ".venv" / "bin" / "nameko"), "run", "--config", "deploy/config.yml",
                                    target], env=process_env, log_path=LOGS / f"{service}.log"))
    return made


def wait_ready(url: str, supervisor: Supervisor, seconds: int = 90) -> None:
    """Wait until the gateway says every dependency answers (restarting what dies meanwhile)."""
    deadline = time.monotonic() + seconds
    last = ""
    while time.monotonic() < deadline:
        supervisor.poll()
        try:
            with urllib.request.urlopen(url + "/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as error:
            last = error.read().decode(errors="replace")
        except OSError as error:
            last = str(error)
        time.sleep(1)
    restarted = [child for child in supervisor.children.values() if child.restarts]
    tails = "".join(f"\nend of var/log/{child.name}.log:\n" + "\n".join(
        (LOGS / f"{child.name}.log").read_text(errors="replace").splitlines()[-25:]) for child in restarted)
    raise SystemExit(f"the suite did not become ready in {seconds} s: {last}{tails}")


def demo_key(env: dict[str, str]) -> str:
    path = VAR / "demo-api-key"
    if path.exists():
        return path.read_text().strip()
    result = subprocess.run([PYTHON, "-W", "ignore", "-m", "gateway.auth.credentials", "create-api-key", "--name",
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
    result = subprocess.run([PYTHON, "-W", "ignore", "-m", "gateway.auth.credentials", "create-admin", "--username",
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


RUNNER_PID = PIDS / "runner.pid"


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pid_of(path: Path, marker: str) -> int | None:
    """The pid in ``path`` if that process is alive and is ours (its command line names ``marker``): a
    stale file must not make us signal whatever process got the number since."""
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return None
    return pid if marker in _command_line(pid) else None


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _command_line(pid) == "":
            return True
        time.sleep(0.2)
    return False


def stop_pids() -> None:
    """Stop a running ``make run`` (its runner first, so that it restarts nothing), then any process of
    the suite still listed under var/pids/ (left by a runner that was killed hard)."""
    runner = _pid_of(RUNNER_PID, "deploy.local.run")
    if runner is not None and runner != os.getpid():
        os.kill(runner, signal.SIGTERM)
        if not _wait_gone(runner, 40):
            print(f"the runner (pid {runner}) did not stop in 40 s; stopping its processes directly")
    for pid_file in PIDS.glob("*.pid") if PIDS.exists() else []:
        if pid_file == RUNNER_PID:
            continue
        pid = _pid_of(pid_file, "nameko")
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        pid_file.unlink(missing_ok=True)


def _stop_on_sigterm() -> None:
    """SIGTERM (``make stop``) stops the runner the way Ctrl-C does."""
    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main() -> int:
    if "--stop" in sys.argv:
        stop_pids()
        return 0
    other = _pid_of(RUNNER_PID, "deploy.local.run")
    if other is not None and other != os.getpid():
        print(f"make run is already running (pid {other}); `make stop` stops it", file=sys.stderr)
        return 1
    stop_pids()  # a previous run killed hard may have left processes behind
    _stop_on_sigterm()
    PIDS.mkdir(parents=True, exist_ok=True)
    RUNNER_PID.write_text(str(os.getpid()))
    port = int(os.environ.get("CARELOOP_PORT", "8000"))
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, **secrets_env(), PYTHONWARNINGS="ignore")
    env.setdefault("HL7_FACILITIES", "DEMOHIS=SH01,SH02,HZ01")  # the demo's HIS may send HL7 (MSH-4 DEMOHIS)
    mllp_port = env.get("HL7_MLLP_PORT", "2575")
    os.environ.update(secrets_env())
    print("migrating databases under var/")
    migrate(env)
    subprocess.run([PYTHON, "-W", "ignore", "-m", "services.kit.topology"], cwd=REPO, env=env, check=True)
    print("starting " + ", ".join(SERVICES) + " (logs in var/log/)")
    supervisor = Supervisor(children(env, port), cwd=REPO, runner_log=LOGS / "runner.log", pid_dir=PIDS)
    try:
        supervisor.start_all()
        wait_ready(url, supervisor)
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

HL7 v2 over MLLP on port {mllp_port} (MSH-4 DEMOHIS), or one message per POST {url}/v1/hl7 with an integration key.

A process that dies is restarted (var/log/runner.log). Ctrl-C (or `make stop` elsewhere) stops everything.""",
              flush=True)
        supervisor.run(should_stop=lambda: False)
        return 0
    except KeyboardInterrupt:
        print("\nstopping")
        return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the stopping short
            signal.signal(signum, signal.SIG_IGN)
        supervisor.stop_all()
        RUNNER_PID.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
