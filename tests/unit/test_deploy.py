"""deploy/ stays true: every file agrees with deploy/services.yml and with the code it names."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml

from services.kit import telemetry
from services.records import service as records_service

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERVICES = yaml.safe_load((DEPLOY / "services.yml").read_text())


def test_every_process_names_a_class_that_exists_with_that_service_name():
    for name, spec in SERVICES.items():
        module, _, cls = spec["target"].partition(":")
        service_cls = getattr(importlib.import_module(module), cls)
        assert service_cls.name == name


def test_metrics_ports_are_distinct():
    ports = [spec["metrics_port"] for spec in SERVICES.values()]
    assert len(ports) == len(set(ports))


def test_the_example_secret_names_every_database():
    # the manifests themselves: tests/unit/test_k8s.py
    document = next(yaml.safe_load_all((DEPLOY / "k8s" / "secret.example.yaml").read_text()))
    for name in SERVICES:
        assert f"{name.upper()}_DATABASE_URL" in document["stringData"]


def test_compose_runs_every_process_with_its_database():
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    init = (DEPLOY / "compose" / "postgres-init.sql").read_text()
    for name in SERVICES:
        assert compose["services"][name]["environment"]["SERVICE"] == name
        assert f"CREATE DATABASE {name} " in init
    assert compose["services"]["migrate"]["environment"]["SERVICE"] == "migrate"


def test_group_config_map_is_a_valid_group():
    from services.kit.config import _load_group

    settings = list(yaml.safe_load_all((DEPLOY / "k8s" / "base" / "settings.yaml").read_text()))
    group_yaml = next(doc for doc in settings if doc["metadata"]["name"] == "careloop-group")["data"]["group.yml"]
    path = Path(__file__).parent / "_group_from_configmap.yml"
    try:
        path.write_text(group_yaml)
        assert _load_group(str(path)).branches
    finally:
        path.unlink()


def test_alert_rules_and_dashboard_use_metrics_the_code_exports():
    for spec in SERVICES.values():  # importing every process declares every business metric
        importlib.import_module(spec["target"].partition(":")[0])
    exported = {metric._name for module in (telemetry, records_service)
                for metric in vars(module).values() if hasattr(metric, "_name")}
    exported |= {metric._name for metric in telemetry._business.values()}
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text() + (DEPLOY / "grafana" / "careloop.json").read_text()
    used = set(re.findall(r"careloop_[a-z_]+", rules))
    for name in used:
        base = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert base in exported or name in exported, name


def test_prometheus_configs_scrape_every_metrics_port():
    local = (DEPLOY / "prometheus" / "prometheus-local.yml").read_text()
    compose = (DEPLOY / "prometheus" / "prometheus-compose.yml").read_text()
    for name, spec in SERVICES.items():
        assert f"127.0.0.1:{spec['metrics_port']}" in local
        assert f"{name}:{spec['metrics_port']}" in compose


def test_the_local_runner_starts_every_process_of_the_list():
    from deploy.local.run import SERVICES as LOCAL

    assert {name: port for name, (_target, port) in LOCAL.items()} == {
        name: spec["metrics_port"] for name, spec in SERVICES.items()}


def test_every_service_that_handles_events_has_its_queues_declared_up_front():
    from services.kit.topology import SERVICE_CLASSES, handler_queues, load

    declared = {load(path).name for path in SERVICE_CLASSES}
    for name, spec in SERVICES.items():
        module, _, cls = spec["target"].partition(":")
        service_cls = getattr(importlib.import_module(module), cls)
        if handler_queues(service_cls):
            assert name in declared, f"add {spec['target']} to services.kit.topology.SERVICE_CLASSES"


def test_every_secret_setting_of_the_config_has_a_place_in_compose_and_kubernetes():
    config = (DEPLOY / "config.yml").read_text()
    wanted = {"SMTP_PASSWORD", "SMS_AUTH_TOKEN", "LINE_CHANNEL_ACCESS_TOKEN", "WECHAT_APP_SECRET"}
    assert wanted <= set(re.findall(r"\$\{([A-Z_]+)", config)), "the config no longer reads these"
    env = (DEPLOY / "compose" / "example.env").read_text()
    secret = (DEPLOY / "k8s" / "secret.example.yaml").read_text()
    for name in wanted | {"CARELOOP_DATA_KEYS", "CARELOOP_INDEX_KEY", "CARELOOP_TOKEN_KEYS"}:
        assert f"{name}=" in env and f"{name}:" in secret, name


def test_the_visit_audit_alerts_watch_its_gauges():
    rules = {rule["alert"]: rule for group in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
             for rule in group["rules"]}
    assert "careloop_audit_mismatches" in rules["CareLoopVisitEffectsMismatch"]["expr"]
    assert "> 0" in rules["CareLoopVisitEffectsMismatch"]["expr"]
    stale = rules["CareLoopVisitAuditStale"]
    assert "careloop_audit_last_run_timestamp_seconds" in stale["expr"] and "26 * 3600" in stale["expr"]
    assert "absent(careloop_audit_last_run_timestamp_seconds)" in stale["expr"]  # never run counts too
