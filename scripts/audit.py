"""`make audit`: pip-audit over both locked sets, and a plain word when no vulnerability database answered.

pip-audit asks a vulnerability service about each pinned release: OSV (osv.dev) first, then PyPI's JSON API.
Where neither is reachable (a machine that reaches only a package index, as the development machines here),
pip-audit itself reports "No known vulnerabilities found" with every package skipped; this script does not
let that pass for a clean audit. Exit 0: audited, nothing known; 1: vulnerabilities; 2: not audited.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCKS = ("requirements.txt", "requirements-dev.txt")
SERVICES = ("osv", "pypi")


def audit(lock: str, service: str) -> tuple[dict | None, str]:
    """pip-audit's JSON report for one lock through one service, or None and why it could not run."""
    command = [str(REPO / ".venv" / "bin" / "pip-audit"), "--format", "json", "--vulnerability-service", service,
               "--disable-pip", "--require-hashes", "--requirement", str(REPO / lock), "--progress-spinner", "off"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return None, lines[-1] if lines else f"pip-audit exited {done.returncode}"
    return report, ""


def main() -> int:
    worst = 0
    for lock in LOCKS:
        reasons = []
        for service in SERVICES:
            report, failure = audit(lock, service)
            if report is None:
                reasons.append(f"{service}: {failure}")
                continue
            packages = report["dependencies"]
            skipped = [p for p in packages if p.get("skip_reason")]
            if packages and len(skipped) == len(packages):
                reasons.append(f"{service}: answered for none of the {len(packages)} packages "
                               f"({skipped[0]['skip_reason']})")
                continue
            found = [(p["name"], p["version"], v["id"], ",".join(v.get("fix_versions", [])) or "no fix")
                     for p in packages for v in p.get("vulns", [])]
            print(f"{lock}: audited {len(packages) - len(skipped)} of {len(packages)} packages with {service}")
            for package in skipped:
                print(f"  not audited: {package['name']}: {package['skip_reason']}")
            for name, version, vuln, fixes in found:
                print(f"  VULNERABLE {name} {version}: {vuln} (fixed in {fixes})")
            if found:
                worst = max(worst, 1)
            break
        else:
            print(f"{lock}: NOT AUDITED: no vulnerability database could be reached from this machine")
            for reason in reasons:
                print(f"  {reason}")
            worst = max(worst, 2)
    if worst == 2:
        print("Run `make audit` where osv.dev or pypi.org's JSON API is reachable; nothing here says the pins "
              "are free of known vulnerabilities.")
    return worst


if __name__ == "__main__":
    sys.exit(main())
