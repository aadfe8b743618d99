"""Container entrypoint: ``SERVICE=members`` runs that service; ``SERVICE=migrate`` prepares a release.

``migrate`` applies every service's migrations to its ``<SERVICE>_DATABASE_URL`` and declares every
event queue (``services.kit.topology``), so it runs once per release before the services start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent


def processes() -> dict[str, dict]:
    with open(DEPLOY / "services.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def main() -> int:
    service = os.environ.get("SERVICE", "")
    known = processes()
    if service == "migrate":
        for name in known:
            url = os.environ.get(f"{name.upper()}_DATABASE_URL")
            if not url:
                print(f"{name.upper()}_DATABASE_URL is not set", file=sys.stderr)
                return 2
            subprocess.run([sys.executable, "-m", "services.kit.migrate", name, "--url", url], check=True)
        return subprocess.run([sys.executable, "-m", "services.kit.topology"], check=False).returncode
    if service not in known:
        print(f"SERVICE must be one of {', '.join(known)} or migrate", file=sys.stderr)
        return 2
    os.environ.setdefault("SERVICE_NAME", service)
    os.environ.setdefault("METRICS_PORT", str(known[service]["metrics_port"]))
    os.execvp("nameko", ["nameko", "run", "--config", str(DEPLOY / "config.yml"), known[service]["target"]])
    return 0  # pragma: no cover - exec does not return


if __name__ == "__main__":
    sys.exit(main())
