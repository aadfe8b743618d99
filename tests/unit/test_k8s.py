"""The Kubernetes manifests render and validate: every overlay rendered (deploy/k8s/render.py, checked
against `kubectl kustomize` where a kubectl with kustomize ≥ 5 exists), every document valid against the
Kubernetes schemas (kubernetes-validate) or its custom resource's schema (deploy/k8s/schemas), and the
shape issue 22 asks for present in each overlay."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from deploy.k8s import generate
from deploy.k8s.render import render

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
OVERLAYS = ["overlays/dev", "overlays/production", "optional/keda"]
KUBERNETES_VERSION = "1.30.0"
KINDS = {  # custom resources: the schema each is validated against
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmqcluster.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "cnpg-cluster.json",
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): "cnpg-scheduledbackup.json",
    ("postgresql.cnpg.io/v1", "Database"): "cnpg-database.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication.json",
}
PROCESSES = generate.services_list()


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(render(K8S / overlay))


def of_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in rendered(overlay) if doc["kind"] == kind}


def test_generated_manifests_are_current():
    for key, path in generate.OUTPUTS.items():
        assert path.read_text(encoding="utf-8") == generate.RENDERERS[key](), "run: python -m deploy.k8s.generate"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_validates_against_its_schema(overlay):
    for doc in rendered(overlay):
        schema = KINDS.get((doc["apiVersion"], doc["kind"]))
        if schema:
            jsonschema.validate(doc, json.loads((K8S / "schemas" / schema).read_text()))
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_misspelt_field_fails_validation():
    deployment = dict(of_kind("overlays/production", "Deployment")["careloop-points"])
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**deployment, "spec": {**deployment["spec"], "replica": 2}},
                                     KUBERNETES_VERSION, strict=True)
    cluster = of_kind("overlays/production", "RabbitmqCluster")["careloop-rabbitmq"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**cluster, "spec": {**cluster["spec"], "replica": 3}},
                            json.loads((K8S / "schemas" / "rabbitmqcluster.json").read_text()))


def kubectl_kustomize_version() -> tuple[int, ...] | None:
    if not shutil.which("kubectl"):
        return None
    try:
        out = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"Kustomize Version: v(\d+)\.(\d+)", out)
    return tuple(int(part) for part in found.groups()) if found else None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_python_renderer_prints_what_kubectl_kustomize_prints(overlay):
    version = kubectl_kustomize_version()
    if version is None or version < (5, 0):
        pytest.skip("no kubectl with kustomize ≥ 5 here (Debian's kubectl 1.20 has kustomize v2)")
    out = subprocess.run(["kubectl", "kustomize", str(K8S / overlay)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert list(yaml.safe_load_all(out)) == list(rendered(overlay))


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/production"])
def test_every_process_is_deployed_with_probes_limits_budget_autoscaler_and_policy(overlay):
    deployments = of_kind(overlay, "Deployment")
    budgets, autoscalers = of_kind(overlay, "PodDisruptionBudget"), of_kind(overlay, "HorizontalPodAutoscaler")
    policies = of_kind(overlay, "NetworkPolicy")
    for name, spec in PROCESSES.items():
        deployment = deployments[f"careloop-{name}"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"] and container["readinessProbe"]
        if "http_port" in spec:
            assert container["livenessProbe"]["httpGet"]["path"] == "/health"
            assert container["readinessProbe"]["httpGet"]["path"] == "/health"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and container["resources"]["limits"]
        assert budgets[f"careloop-{name}"]["spec"]["selector"] == deployment["spec"]["selector"]
        target = autoscalers[f"careloop-{name}"]["spec"]
        assert target["scaleTargetRef"]["name"] == f"careloop-{name}"
        assert target["metrics"][0]["resource"]["name"] == "cpu"
        assert policies[f"careloop-{name}"]["spec"]["podSelector"] == deployment["spec"]["selector"]
    assert deployments["careloop-gateway"]["spec"]["replicas"] == (1 if overlay.endswith("dev") else 3)



@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/production"])
def test_the_interfaces_pods_keep_import_files_on_a_persistent_volume_at_import_dir(overlay):
    deployment = of_kind(overlay, "Deployment")["careloop-interfaces"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    import_dir = {env["name"]: env.get("value") for env in container["env"]}["IMPORT_DIR"]
    (mount,) = [mount for mount in container["volumeMounts"] if mount["mountPath"] == import_dir]
    (volume,) = [volume for volume in pod["volumes"] if volume["name"] == mount["name"]]
    claim = of_kind(overlay, "PersistentVolumeClaim")[volume["persistentVolumeClaim"]["claimName"]]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # every replica reads the files it is given
    assert claim["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert pod["securityContext"]["fsGroup"] == 10001  # the non-root user may write it

def test_only_the_gateway_is_reachable_from_outside_and_services_reach_only_broker_and_database():
    policies = of_kind("overlays/production", "NetworkPolicy")
    assert policies["careloop-default-deny"]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    for name, spec in PROCESSES.items():
        policy = policies[f"careloop-{name}"]["spec"]
        open_ports = [rule["ports"][0]["port"] for rule in policy["ingress"] if "from" not in rule]
        # from outside: the gateway's HTTP and the interfaces' MLLP (the HIS's interface engine), nothing else
        assert open_ports == [spec[port] for port in ("http_port", "mllp_port") if port in spec], name
        reached = [peer.get("podSelector", {}).get("matchLabels") or peer.get("ipBlock", {}).get("cidr")
                   for rule in policy["egress"] for peer in rule["to"]]
        expected = [{"k8s-app": "kube-dns"}, {"app.kubernetes.io/name": "careloop-rabbitmq"},
                    {"cnpg.io/cluster": "careloop-pg"}]
        assert reached == expected + (["0.0.0.0/0"] if spec.get("egress_internet") else []), name


def test_the_broker_is_a_three_node_cluster_and_postgres_has_a_database_per_service_with_backups():
    (rabbitmq,) = of_kind("overlays/production", "RabbitmqCluster").values()
    assert rabbitmq["spec"]["replicas"] == 3
    (cluster,) = of_kind("overlays/production", "Cluster").values()
    databases = {doc["spec"]["name"]: doc["spec"] for doc in of_kind("overlays/production", "Database").values()}
    roles = {role["name"] for role in cluster["spec"]["managed"]["roles"]}
    assert set(databases) == set(PROCESSES) == roles
    assert all(spec["owner"] == name and spec["cluster"]["name"] == cluster["metadata"]["name"]
               for name, spec in databases.items())
    (backup,) = of_kind("overlays/production", "ScheduledBackup").values()
    assert backup["spec"]["cluster"]["name"] == cluster["metadata"]["name"] and cluster["spec"]["backup"]
    assert of_kind("overlays/dev", "RabbitmqCluster")["careloop-rabbitmq"]["spec"]["replicas"] == 1


def test_secrets_are_referenced_never_shipped():
    for overlay in OVERLAYS:
        assert not of_kind(overlay, "Secret"), "secrets come from the vault (secret.example.yaml)"
    for doc in rendered("overlays/production"):
        for env in re.findall(r"'name': '([A-Z_]+)', 'value'", str(doc)):
            assert not re.search("KEY|PASSWORD|TOKEN|SECRET|URL", env) or env == "WEB_SERVER_ADDRESS", env


def test_monitors_select_every_metrics_service_and_the_alerts_are_the_rules_file():
    docs = rendered("overlays/production")
    (monitor,) = [doc for doc in docs if doc["kind"] == "ServiceMonitor" and doc["metadata"]["name"] == "careloop"]
    wanted = monitor["spec"]["selector"]["matchLabels"]
    selected = [doc["metadata"]["name"] for doc in docs if doc["kind"] == "Service"
                and wanted.items() <= doc["metadata"]["labels"].items()]
    assert selected == [f"careloop-{name}-metrics" for name in PROCESSES]
    (rule,) = of_kind("overlays/production", "PrometheusRule").values()
    rules_file = yaml.safe_load((K8S.parent / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == rules_file["groups"]


def test_the_migration_job_runs_the_migrate_entrypoint():
    job = of_kind("overlays/production", "Job")["careloop-migrate"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert {"name": "SERVICE", "value": "migrate"} in container["env"]


def test_keda_scales_each_consumer_on_its_own_queues_and_adopts_its_cpu_autoscaler():
    scaled = of_kind("optional/keda", "ScaledObject")
    assert set(scaled) == {f"careloop-{name}" for name, spec in PROCESSES.items() if "http_port" not in spec}
    for name, doc in scaled.items():
        service = name.removeprefix("careloop-")
        assert doc["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"] == name
        (queue,) = [t for t in doc["spec"]["triggers"] if t["type"] == "rabbitmq"]
        pattern = re.compile(queue["metadata"]["queueName"])
        assert pattern.match(f"rpc-{service}") and pattern.match(f"evt-records-visit_completed--{service}.on_visit")
        assert not pattern.match(f"rpc-{service}x") and not pattern.match("evt-records-x--other.on_x")
