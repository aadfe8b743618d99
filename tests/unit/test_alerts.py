"""The alert rules are valid and each alert has a unit test that fires it and one that does not
(`promtool test rules alerts.test.yml alerts-daily.test.yml` in deploy/prometheus; promtool is Debian's `prometheus` package,
which `make test` installs through scripts/infra.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
TEST_FILES = ("alerts.test.yml", "alerts-daily.test.yml")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if not shutil.which("promtool"):
        pytest.fail("promtool is not installed: scripts/infra.sh prometheus (Debian: apt-get install prometheus)")
    return subprocess.run(["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)


def test_the_rules_file_is_valid():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_unit_tests_pass():
    result = promtool("test", "rules", *TEST_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing():
    alerts = {rule["alert"] for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}
    cases = [case for name in TEST_FILES for test in yaml.safe_load((PROMETHEUS / name).read_text())["tests"]
             for case in test.get("alert_rule_test", [])]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert alerts - fired == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested staying quiet"
    assert (fired | quiet) <= alerts, "tests of alerts that do not exist"


def test_the_runbook_says_what_to_do_for_every_alert():
    runbook = (PROMETHEUS.parent / "RUNBOOK.md").read_text()
    alerts = {rule["alert"] for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}
    assert {alert for alert in alerts if f"| `{alert}`" not in runbook} == set()
