"""The Helm chart: lint, render, Kubernetes schemas, security, values schema, receiver.toml."""

from __future__ import annotations

import base64
import contextlib
import copy
import enum
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import typing
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy._support import (
    ALL_CASES,
    CHART,
    EXAMPLE_FILES,
    NAMESPACE,
    RELEASE,
    REPO,
    Rendered,
    case_values,
    with_public_url,
)

LINT_CASES = ("default", *(name.removesuffix(".yaml") for name in EXAMPLE_FILES))
#: Kubernetes versions whose schemas (kubernetes-validate, strict) every manifest must meet.
KUBE_VERSIONS = ("1.29.0", "1.33.0")
#: Custom resources: kubernetes-validate has schemas for built-in kinds only.
CRD_GROUPS = ("monitoring.coreos.com/",)
STATEFUL_CASES = {"default", "sqlite-single", "ingress-tls", "existing-secret"}
SECRET_DIR = "/etc/receiver/secrets/"
DATA_DIR = "/var/lib/receiver/"
RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
FULLNAME = f"{RELEASE}-receiver"


def _lint_problems(report: dict[str, Any]) -> list[str]:
    """What `helm lint --strict` fails on: warnings and errors (severity 2 and 3)."""
    problems = [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]
    return problems + list(report["errors"])


# ---- helm lint --strict --------------------------------------------------------------------


@pytest.mark.parametrize("case", LINT_CASES)
@pytest.mark.parametrize("kube_version", [None, *(f"v{v}" for v in KUBE_VERSIONS)])
def test_lint_strict(helm: Any, case: str, kube_version: str | None) -> None:
    report = helm.lint(
        str(CHART), case_values(case), strict=True, namespace=NAMESPACE, kube_version=kube_version
    )
    assert report["total_charts_linted"] == 1
    assert _lint_problems(report) == []


def test_chart_metadata() -> None:
    assert CHART_META["apiVersion"] == "v2"
    assert CHART_META["name"] == "receiver"
    assert CHART_META["appVersion"] == "0.1.0"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert CHART_META["appVersion"] == pyproject["project"]["version"]
    for name in EXAMPLE_FILES:
        assert (CHART / "examples" / name).is_file(), name


# ---- rendered manifests against the Kubernetes API schemas ---------------------------------


@pytest.mark.parametrize("case", ALL_CASES)
@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_manifests_meet_kubernetes_schemas(
    render: Any, kubernetes_validate: Any, case: str, version: str
) -> None:
    rendered = render(case=case)
    assert rendered.docs, "nothing rendered"
    validated = []
    for doc in rendered.docs:
        if doc["apiVersion"].startswith(CRD_GROUPS):
            continue  # a custom resource: no built-in schema to check it against
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(p) for p in error.path)
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']} at {where}: {error.message}")
        validated.append(doc["kind"])
    for kind in (
        "ConfigMap",
        "Service",
        "ServiceAccount",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Pod",
    ):
        assert kind in validated
    assert {"Deployment", "StatefulSet"} & set(validated)


def test_schema_versions_are_shipped(kubernetes_validate: Any) -> None:
    shipped = {".".join(v.split(".")[:2]) for v in kubernetes_validate.utils.all_versions()}
    for version in KUBE_VERSIONS:
        assert ".".join(version.split(".")[:2]) in shipped


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_strict_validation_catches_unknown_fields(
    render: Any, kubernetes_validate: Any, version: str
) -> None:
    workload = copy.deepcopy(render(case="default").workload())
    workload["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(workload, version, strict=True)


# ---- workload kind ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(STATEFUL_CASES))
def test_sqlite_is_a_single_statefulset_with_a_volume(render: Any, case: str) -> None:
    rendered = render(case=case)
    assert rendered.merged["config"]["intake"]["backend"] == "sqlite"
    assert "Deployment" not in rendered.kinds()
    assert "HorizontalPodAutoscaler" not in rendered.kinds()
    sts = rendered.one("StatefulSet")
    assert sts["spec"]["replicas"] == 1
    headless = rendered.one("Service", f"{FULLNAME}-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    pod = sts["spec"]["template"]["spec"]
    assert "data" not in {v["name"] for v in pod["volumes"]}, "data comes from the claim"
    mounts = {m["mountPath"]: m["name"] for m in rendered.container()["volumeMounts"]}
    assert mounts["/var/lib/receiver"] == "data"
    toml = tomllib.loads(rendered.toml_text())
    assert toml["intake"]["path"].startswith(DATA_DIR)
    assert toml["intake"].get("url", "") == ""


def test_sqlite_single_example_sizes_its_volume(render: Any) -> None:
    claim = render(case="sqlite-single").one("StatefulSet")["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"


def test_nats_is_a_scaling_deployment(render: Any) -> None:
    rendered = render(case="nats-replicas")
    assert "StatefulSet" not in rendered.kinds()
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"]
    assert "volumeClaimTemplates" not in deployment["spec"]
    assert "HorizontalPodAutoscaler" not in rendered.kinds()
    assert len(rendered.all("Service")) == 1, "no headless Service without a StatefulSet"
    toml = tomllib.loads(rendered.toml_text())
    assert toml["intake"]["backend"] == "nats"
    assert toml["intake"]["url"].startswith("nats://")
    assert [s["type"] for s in toml["sinks"]] == ["nats"]


def test_redis_replicas_example(render: Any) -> None:
    """Three pods on redis, the URLs as secret files, tracing, egress to Redis and OTLP."""
    rendered = render(case="redis-replicas")
    values = case_values("redis-replicas")
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert "StatefulSet" not in rendered.kinds()
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"], "dead letters stay in the pod's emptyDir"
    text = rendered.toml_text()
    assert "replace-with-the-redis-password" not in text, "the broker password stays out"
    toml = tomllib.loads(text)
    assert toml["intake"]["backend"] == "redis"
    assert toml["intake"]["url"] == ""
    assert toml["intake"]["url_file"] == f"{SECRET_DIR}intake_url"
    assert toml["intake"]["replica_id"] == "", "each pod derives its own id"
    (sink,) = toml["sinks"]
    assert (sink["type"], sink["url_file"]) == ("redis", f"{SECRET_DIR}sink-events-url")
    assert "url" not in sink
    assert toml["tracing"] == {
        "enabled": True,
        "exporter": "otlp",
        "endpoint": "http://otel-collector.observability.svc.cluster.local:4318/v1/traces",
        "service_name": "metastudio-receiver",
    }
    files = _secret_files(rendered)
    assert files["intake_url"].decode() == values["secrets"]["intakeUrl"]
    assert files["sink-events-url"].decode() == values["secrets"]["sinks"]["events"]["url"]
    egress = rendered.one("NetworkPolicy")["spec"]["egress"]
    ports = {p["port"] for rule in egress for p in rule["ports"]}
    assert {6379, 4318} <= ports


def test_autoscaling_renders_an_hpa_for_the_deployment(render: Any) -> None:
    rendered = render(case="redis-autoscaling")
    deployment = rendered.one("Deployment")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    targets = {
        m["resource"]["name"]: m["resource"]["target"]["averageUtilization"]
        for m in hpa["spec"]["metrics"]
    }
    assert targets == {"cpu": 70, "memory": 80}


# ---- security ----------------------------------------------------------------------------


def _assert_restricted_container(container: dict[str, Any]) -> None:
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc.get("privileged", False) is False


def _assert_restricted_pod(pod: dict[str, Any]) -> None:
    assert pod["automountServiceAccountToken"] is False
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == 10001
    assert psc["fsGroup"] == 10001
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key, False)
    for container in pod["containers"]:
        _assert_restricted_container(container)


@pytest.mark.parametrize("case", ALL_CASES)
def test_pods_are_locked_down(render: Any, case: str) -> None:
    rendered = render(case=case)
    pod = rendered.workload()["spec"]["template"]["spec"]
    _assert_restricted_pod(pod)
    _assert_restricted_pod(rendered.one("Pod")["spec"])  # the helm test hook
    account = rendered.one("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in rendered.container()["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    writable = {path for path, m in mounts.items() if not m.get("readOnly", False)}
    assert writable == {"/tmp", "/var/lib/receiver"}
    assert mounts["/etc/receiver/receiver.toml"]["subPath"] == "receiver.toml"
    assert "secret" in volumes[mounts["/etc/receiver/secrets"]["name"]]
    resources = rendered.container()["resources"]
    assert resources["requests"]["cpu"]
    assert resources["limits"]["memory"]


@pytest.mark.parametrize("case", ALL_CASES)
def test_probes_and_ports(render: Any, case: str) -> None:
    rendered = render(case=case)
    container = rendered.container()
    port = rendered.merged["config"]["server"]["port"]
    ports = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    admin = rendered.merged["config"]["admin"]
    if admin["enabled"]:
        ports.append({"name": "admin", "containerPort": admin["port"], "protocol": "TCP"})
    assert container["ports"] == ports
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert container["args"] == ["serve", "--config", "/etc/receiver/receiver.toml"]
    assert "command" not in container, "the image's ENTRYPOINT runs"
    service = rendered.one("Service", FULLNAME)
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    grace = rendered.workload()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    server = rendered.merged["config"]["server"]
    assert grace > server["graceful_shutdown_seconds"] + rendered.merged["preStopSleepSeconds"]


@pytest.mark.parametrize("case", ALL_CASES)
def test_recommended_labels_everywhere(render: Any, case: str) -> None:
    rendered = render(case=case)
    for doc in rendered.docs:
        labels = doc["metadata"]["labels"]
        for label in RECOMMENDED_LABELS:
            assert labels.get(label), f"{doc['kind']} lacks {label}"
        assert labels["app.kubernetes.io/version"] == CHART_META["appVersion"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["helm.sh/chart"] == f"receiver-{CHART_META['version']}"
    workload = rendered.workload()
    selector = workload["spec"]["selector"]["matchLabels"]
    pod_labels = workload["spec"]["template"]["metadata"]["labels"]
    for label in RECOMMENDED_LABELS:
        assert pod_labels.get(label), f"pod template lacks {label}"
    assert selector.items() <= pod_labels.items()
    assert "app.kubernetes.io/version" not in selector, "selectors are immutable"
    assert rendered.one("Service", FULLNAME)["spec"]["selector"] == selector
    test_pod_labels = rendered.one("Pod")["metadata"]["labels"]
    assert not selector.items() <= test_pod_labels.items(), "the test pod is no endpoint"


# ---- checksums -----------------------------------------------------------------------------


def _annotations(rendered: Rendered) -> dict[str, str]:
    annotations: dict[str, str] = rendered.workload()["spec"]["template"]["metadata"]["annotations"]
    return annotations


@pytest.mark.parametrize("case", ALL_CASES)
def test_checksum_annotations(render: Any, case: str) -> None:
    rendered = render(case=case)
    annotations = _annotations(rendered)
    expected = hashlib.sha256(rendered.toml_text().removesuffix("\n").encode()).hexdigest()
    assert annotations["checksum/config"] == expected
    assert len(annotations["checksum/secret"]) == 64
    int(annotations["checksum/secret"], 16)


def test_checksums_follow_their_inputs(render: Any) -> None:
    base = render({"secrets": {"callbackKeys": ["k1"]}})
    config_changed = render(
        {"secrets": {"callbackKeys": ["k1"]}, "config": {"logging": {"level": "DEBUG"}}}
    )
    secret_changed = render({"secrets": {"callbackKeys": ["k2"]}})
    same = render({"secrets": {"callbackKeys": ["k1"]}})
    a, c, s, again = (_annotations(r) for r in (base, config_changed, secret_changed, same))
    assert a == again, "rendering is deterministic when the keys are given"
    assert c["checksum/config"] != a["checksum/config"]
    assert c["checksum/secret"] == a["checksum/secret"]
    assert s["checksum/secret"] != a["checksum/secret"]
    assert s["checksum/config"] == a["checksum/config"]
    url = {"config": {"intake": {"backend": "redis"}}, "replicaCount": 2}
    one = _annotations(render({**url, "secrets": {"intakeUrl": "redis://:a@r:6379/0"}}))
    two = _annotations(render({**url, "secrets": {"intakeUrl": "redis://:b@r:6379/0"}}))
    assert one["checksum/secret"] != two["checksum/secret"], "a new broker password rolls"
    assert one["checksum/config"] == two["checksum/config"]


# ---- secrets -------------------------------------------------------------------------------


def _secret_files(rendered: Rendered) -> dict[str, bytes]:
    """File name under /etc/receiver/secrets -> content, from the chart's Secret."""
    secret = rendered.one("Secret")
    return {key: base64.b64decode(value) for key, value in secret["data"].items()}


def test_callback_keys_file_one_per_line(render: Any) -> None:
    rendered = render(case="sqlite-single")
    keys = _secret_files(rendered)["keys"].decode().splitlines()
    assert keys == case_values("sqlite-single")["secrets"]["callbackKeys"]
    assert set(_secret_files(rendered)) == {"keys"}, "no AK/SK given, none stored"


def test_a_callback_key_is_generated_when_none_is_given(render: Any) -> None:
    keys = _secret_files(render(case="default"))["keys"].decode().splitlines()
    assert len(keys) == 1
    assert len(keys[0]) == 32
    assert keys[0].isalnum()


def test_metastudio_credentials_are_files(render: Any) -> None:
    rendered = render(case="redis-autoscaling")
    files = _secret_files(rendered)
    assert files["ak"] == b"AKEXAMPLE"
    assert files["sk"] == b"SKEXAMPLE"
    assert files["iam_password"] == b"pw"
    text = rendered.toml_text()
    assert "AKEXAMPLE" not in text, "secrets stay out of the TOML"
    assert "SKEXAMPLE" not in text
    toml = tomllib.loads(text)
    assert toml["metastudio"]["ak_file"] == f"{SECRET_DIR}ak"
    assert toml["metastudio"]["sk_file"] == f"{SECRET_DIR}sk"
    assert toml["metastudio"]["iam_password_file"] == f"{SECRET_DIR}iam_password"


def test_existing_secret(render: Any) -> None:
    rendered = render(case="existing-secret")
    values = case_values("existing-secret")["secrets"]
    assert "Secret" not in rendered.kinds()
    pod = rendered.workload()["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == values["existingSecret"]
    items = {item["path"]: item["key"] for item in volume["secret"]["items"]}
    assert items == {
        "keys": "callback-keys",
        "ak": "access-key",
        "sk": "secret-key",
        "sink-webhook-url": "webhook-url",
        "sink-webhook-secret": "webhook-secret",
    }
    toml = tomllib.loads(rendered.toml_text())
    assert toml["auth"]["keys_file"] == f"{SECRET_DIR}keys"
    assert toml["metastudio"]["ak_file"] == f"{SECRET_DIR}ak"
    assert "iam_password_file" not in toml["metastudio"]
    assert "url_file" not in toml["intake"]
    webhook = next(s for s in toml["sinks"] if s["name"] == "webhook")
    assert webhook["url_file"] == f"{SECRET_DIR}sink-webhook-url"
    assert webhook["secret_file"] == f"{SECRET_DIR}sink-webhook-secret"
    assert "url" not in webhook
    assert values["existingSecret"] in rendered.notes
    assert "callback-keys" in rendered.notes


def test_intake_and_sink_urls_from_an_existing_secret(render: Any) -> None:
    rendered = render(case="nats-existing-secret")
    assert "Secret" not in rendered.kinds()
    pod = rendered.workload()["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "receiver-managed"
    items = {item["path"]: item["key"] for item in volume["secret"]["items"]}
    assert items == {
        "keys": "callback-keys",
        "intake_url": "nats-url",
        "sink-bus-url": "nats-url",
        "sink-queue-url": "amqp-url",
    }
    toml = tomllib.loads(rendered.toml_text())
    assert toml["intake"]["url_file"] == f"{SECRET_DIR}intake_url"
    files = {s["name"]: s.get("url_file") for s in toml["sinks"]}
    assert files == {"queue": f"{SECRET_DIR}sink-queue-url", "bus": f"{SECRET_DIR}sink-bus-url"}


#: secrets.sinks of GOOD_VALUES["sink-secret-files"]: every field that has a *_file form.
SINK_SECRETS = {
    "c": {"url": "nats://user:pw@nats:4222"},
    "d": {"url": "amqp://user:pw@rabbitmq:5672/"},
    "e": {"url": "redis://:pw@redis:6379/0"},
    "g": {"url": "https://hooks.example.com/x?token=pw", "secret": "whsec_c2VjcmV0"},
}


def test_sink_secrets_are_files(render: Any) -> None:
    rendered = render(GOOD_VALUES["sink-secret-files"])
    files = _secret_files(rendered)
    text = rendered.toml_text()
    toml = tomllib.loads(text)
    by_name = {sink["name"]: sink for sink in toml["sinks"]}
    for name, fields in SINK_SECRETS.items():
        for field, value in fields.items():
            assert files[f"sink-{name}-{field}"] == value.encode()
            assert by_name[name][f"{field}_file"] == f"{SECRET_DIR}sink-{name}-{field}"
            assert field not in by_name[name]
            assert value not in text, "secrets stay out of the TOML"
    assert "url_file" not in by_name["a"], "no secret given for it, none set"


#: What a sink of each type requires in config.sinks.
SINK_REQUIRED: dict[str, dict[str, Any]] = {
    "jsonl": {"path": "/var/lib/receiver/s.jsonl"},
    "http": {"url": "https://hooks.example.com/x"},
}


@pytest.mark.parametrize("kind", ["jsonl", "stdout", "nats", "rabbitmq", "redis", "kafka", "http"])
def test_sink_secret_fields_follow_the_models(chart: Any, helm: Any, kind: str) -> None:
    """The chart takes a url or secret for exactly the sink types whose model has that field."""
    from receiver import sink_settings

    model = next(
        m
        for m in typing.get_args(sink_settings.SinkSettings)
        if typing.get_args(m.model_fields["type"].annotation) == (kind,)
    )
    for field in sink_settings.FILE_FIELDS:
        sink = {"name": "s", "type": kind, **SINK_REQUIRED.get(kind, {})}
        sink.pop(field, None)  # given in the Secret instead
        values = {
            "config": {"sinks": [sink], "routes": [{"sinks": ["s"]}]},
            "secrets": {"sinks": {"s": {field: "x://y"}}},
        }
        if field in model.model_fields:
            chart.render(with_public_url(values), name=RELEASE, namespace=NAMESPACE)
        else:
            with pytest.raises(helm.HelmError, match=f"a {kind} sink has no {field}"):
                chart.render(with_public_url(values), name=RELEASE, namespace=NAMESPACE)


# ---- network -------------------------------------------------------------------------------


def test_ingress_with_tls(render: Any) -> None:
    rendered = render(case="ingress-tls")
    values = case_values("ingress-tls")
    host = values["ingress"]["host"]
    ingress = rendered.one("Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": [host], "secretName": values["ingress"]["tls"]["secretName"]}
    ]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == host
    (path,) = rule["http"]["paths"]
    assert path["path"] == rendered.merged["config"]["server"]["path"]
    assert path["backend"]["service"] == {"name": FULLNAME, "port": {"name": "http"}}
    url = f"https://{host}{rendered.merged['config']['server']['path']}"
    assert tomllib.loads(rendered.toml_text())["server"]["public_url"] == url
    assert f"live_event_type_callback_url: {url}" in rendered.notes


def test_no_ingress_by_default(render: Any) -> None:
    assert "Ingress" not in render(case="default").kinds()


@pytest.mark.parametrize("case", ALL_CASES)
def test_network_policy(render: Any, case: str) -> None:
    rendered = render(case=case)
    policy = rendered.one("NetworkPolicy")
    spec = policy["spec"]
    selector = rendered.workload()["spec"]["selector"]["matchLabels"]
    assert spec["podSelector"]["matchLabels"] == selector
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    expected = [[{"port": "http", "protocol": "TCP"}]]
    if rendered.values.get("adminService", {}).get("enabled"):
        expected.append([{"port": "admin", "protocol": "TCP"}])
    assert [rule["ports"] for rule in spec["ingress"]] == expected
    dns = spec["egress"][0]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    extra = rendered.values.get("networkPolicy", {}).get("egress", [])
    assert spec["egress"][1:] == extra


def test_pod_disruption_budget_and_spread(render: Any) -> None:
    rendered = render(case="nats-replicas")
    selector = rendered.workload()["spec"]["selector"]["matchLabels"]
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    spread = rendered.workload()["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == ["kubernetes.io/hostname"]
    assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)
    default = render(case="default").workload()["spec"]["template"]["spec"]
    keys = [c["topologyKey"] for c in default["topologySpreadConstraints"]]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]


def test_service_monitor_only_when_enabled(render: Any) -> None:
    assert "ServiceMonitor" not in render(case="default").kinds()
    rendered = render(case="nats-replicas")
    monitor = rendered.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    selector = rendered.one("Service", FULLNAME)["spec"]["selector"]
    assert monitor["spec"]["selector"]["matchLabels"] == selector


# ---- NOTES.txt -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ALL_CASES)
def test_notes_tell_what_to_register(render: Any, case: str) -> None:
    rendered = render(case=case)
    toml = tomllib.loads(rendered.toml_text())
    url = toml["server"].get("public_url", "")
    if url:
        assert f"live_event_type_callback_url: {url}" in rendered.notes
    else:
        assert "WARNING" in rendered.notes
        assert "config.server.public_url" in rendered.notes
    auth_type = toml["auth"]["type"]
    first = auth_type[0] if isinstance(auth_type, list) else auth_type
    assert f"auth_type:                    {first}" in rendered.notes
    secret = rendered.values.get("secrets", {}).get("existingSecret") or f"{FULLNAME}-secrets"
    assert f"get secret {secret}" in rendered.notes


# ---- values.schema.json refuses bad values -------------------------------------------------

BAD_VALUES: dict[str, dict[str, Any]] = {
    "replicaCount-string": {"replicaCount": "three"},
    "port-string": {"config": {"server": {"port": "8080"}}},
    "fsync-string": {"config": {"intake": {"fsync": "yes"}}},
    "tolerance-float": {"config": {"auth": {"tolerance_seconds": 1.5}}},
    "sinks-not-a-list": {"config": {"sinks": {"name": "x", "type": "stdout"}}},
    "annotations-not-strings": {"podAnnotations": {"a": 1}},
    "auth-type-FOO": {"config": {"auth": {"type": "FOO"}}},
    "auth-type-list-with-FOO": {"config": {"auth": {"type": ["MSS_A", "FOO"]}}},
    "sqlite-with-3-replicas": {"replicaCount": 3},
    "sqlite-with-autoscaling": {"autoscaling": {"enabled": True}},
    "sqlite-with-url": {"config": {"intake": {"url": "nats://nats:4222"}}},
    "nats-without-url": {"config": {"intake": {"backend": "nats"}}},
    "unknown-backend": {"config": {"intake": {"backend": "kafka"}}},
    "unknown-top-level-key": {"replicas": 2},
    "unknown-config-key": {"config": {"server": {"prot": 8080}}},
    "unknown-section": {"config": {"serverr": {}}},
    "secret-in-config": {"config": {"metastudio": {"ak": "AK"}}},
    "callback-key-in-config": {"config": {"auth": {"keys": ["k"]}}},
    "callback-key-too-long": {"secrets": {"callbackKeys": ["k" * 33]}},
    "sink-without-path": {"config": {"sinks": [{"name": "j", "type": "jsonl"}]}},
    "sink-with-foreign-key": {
        "config": {"sinks": [{"name": "o", "type": "stdout", "subject": "x"}]}
    },
    "sink-unknown-type": {"config": {"sinks": [{"name": "s", "type": "sqs"}]}},
    "route-without-sinks": {"config": {"routes": [{"event_types": ["*"]}]}},
    "ingress-without-host": {"ingress": {"enabled": True}},
    "public-url-not-http": {"config": {"server": {"public_url": "ftp://x/y"}}},
    "bad-image-digest": {"image": {"digest": "latest"}},
    # server.max_header_bytes
    "max-header-bytes-too-small": {"config": {"server": {"max_header_bytes": 1023}}},
    "max-header-bytes-too-large": {"config": {"server": {"max_header_bytes": 1048577}}},
    "max-header-bytes-string": {"config": {"server": {"max_header_bytes": "16k"}}},
    # the replicated intakes' keys
    "replica-id-with-a-space": {"config": {"intake": {"replica_id": "pod 1"}}},
    "replica-id-fixed-for-every-pod": {
        "config": {"intake": {"backend": "redis", "url": "redis://r:6379/0", "replica_id": "a"}}
    },
    "lease-ttl-too-short": {"config": {"intake": {"lease_ttl_seconds": 0.2}}},
    "lease-ttl-too-long": {"config": {"intake": {"lease_ttl_seconds": 601}}},
    "ack-wait-too-short": {"config": {"intake": {"ack_wait_seconds": 0.4}}},
    "ack-wait-too-long": {"config": {"intake": {"ack_wait_seconds": 3601}}},
    "dedup-window-negative": {"config": {"intake": {"dedup_window_seconds": -1}}},
    "dedup-window-too-long": {"config": {"intake": {"dedup_window_seconds": 86401}}},
    "max-ack-pending-zero": {"config": {"intake": {"max_ack_pending": 0}}},
    "max-ack-pending-float": {"config": {"intake": {"max_ack_pending": 10.5}}},
    "max-ack-pending-too-large": {"config": {"intake": {"max_ack_pending": 100001}}},
    "intake-timeout-zero": {"config": {"intake": {"timeout_seconds": 0}}},
    "intake-timeout-too-long": {"config": {"intake": {"timeout_seconds": 121}}},
    "intake-url-file-in-config": {"config": {"intake": {"url_file": "/etc/x"}}},
    # the intake URL from the Secret
    "intake-url-secret-with-sqlite": {"secrets": {"intakeUrl": "redis://:pw@r:6379/0"}},
    "intake-url-key-with-sqlite": {
        "secrets": {"existingSecret": "s", "existingSecretKeys": {"intakeUrl": "url"}}
    },
    "intake-url-in-config-and-secret": {
        "config": {"intake": {"backend": "redis", "url": "redis://r:6379/0"}},
        "secrets": {"intakeUrl": "redis://:pw@r:6379/0"},
    },
    "intake-url-in-config-and-existing-secret": {
        "config": {"intake": {"backend": "nats", "url": "nats://n:4222"}},
        "secrets": {"existingSecret": "s", "existingSecretKeys": {"intakeUrl": "url"}},
    },
    "intake-url-secret-wrong-scheme": {
        "config": {"intake": {"backend": "redis"}},
        "secrets": {"intakeUrl": "nats://n:4222"},
    },
    "intake-url-secret-not-a-url": {
        "config": {"intake": {"backend": "nats"}},
        "secrets": {"intakeUrl": "password"},
    },
    "intake-url-secret-beside-existing-secret": {
        "config": {"intake": {"backend": "nats"}},
        "secrets": {"existingSecret": "s", "intakeUrl": "nats://n:4222"},
    },
    "intake-url-key-invalid": {
        "config": {"intake": {"backend": "nats"}},
        "secrets": {"existingSecret": "s", "existingSecretKeys": {"intakeUrl": "a/b"}},
    },
    # tracing
    "tracing-enabled-string": {"config": {"tracing": {"enabled": "yes"}}},
    "tracing-unknown-exporter": {"config": {"tracing": {"exporter": "jaeger"}}},
    "tracing-endpoint-not-http": {"config": {"tracing": {"endpoint": "otel:4317"}}},
    "tracing-unknown-key": {"config": {"tracing": {"sample_rate": 0.5}}},
    "tracing-empty-service-name": {"config": {"tracing": {"service_name": ""}}},
    # sink secrets
    "sink-url-file-in-config": {
        "config": {"sinks": [{"name": "r", "type": "redis", "url_file": "/etc/x"}]}
    },
    "sink-secret-file-in-config": {
        "config": {
            "sinks": [{"name": "h", "type": "http", "url": "https://h/x", "secret_file": "/x"}]
        }
    },
    "sink-secret-unknown-field": {"secrets": {"sinks": {"jsonl": {"password": "pw"}}}},
    "sink-secret-bad-sink-name": {"secrets": {"sinks": {"a b": {"url": "redis://r"}}}},
    "sink-secret-url-not-a-url": {"secrets": {"sinks": {"jsonl": {"url": "pw"}}}},
    "sink-secret-beside-existing-secret": {
        "secrets": {"existingSecret": "s", "sinks": {"jsonl": {"url": "redis://r"}}}
    },
    "sink-secret-key-invalid": {
        "secrets": {"existingSecret": "s", "existingSecretKeys": {"sinks": {"x": {"url": "a b"}}}}
    },
    "redis-sink-dedup-zero": {
        "config": {"sinks": [{"name": "r", "type": "redis", "dedup_seconds": 0}]}
    },
}

GOOD_VALUES: dict[str, dict[str, Any]] = {
    "nats-3-replicas": {
        "replicaCount": 3,
        "config": {"intake": {"backend": "nats", "url": "nats://n:4222"}},
    },
    "redis-intake-url-from-secret": {
        "replicaCount": 2,
        "config": {"intake": {"backend": "redis"}},
        "secrets": {"intakeUrl": "redis://:pw@redis:6379/0"},
    },
    "replicated-intake-tuned": {
        "replicaCount": 2,
        "config": {
            "server": {"max_header_bytes": 32768},
            "intake": {
                "backend": "nats",
                "url": "nats://n:4222",
                "lease_ttl_seconds": 0.3,
                "ack_wait_seconds": 0.5,
                "dedup_window_seconds": 86400,
                "max_ack_pending": 100000,
                "timeout_seconds": 120,
            },
            "tracing": {"enabled": True, "exporter": "console", "service_name": "rx"},
        },
    },
    "replica-id-with-sqlite": {"config": {"intake": {"replica_id": "single_1"}}},
    "sink-secret-files": {
        "config": {
            "sinks": [
                {"name": "a", "type": "jsonl", "path": "/var/lib/receiver/a.jsonl"},
                {"name": "c", "type": "nats", "subject": "x.{room_id}"},
                {"name": "d", "type": "rabbitmq"},
                {"name": "e", "type": "redis", "dedup_seconds": None},
                {"name": "g", "type": "http"},
            ],
            "routes": [{"sinks": ["a", "c", "d", "e", "g"]}],
        },
        "secrets": {"sinks": SINK_SECRETS},
    },
    "auth-type-string": {"config": {"auth": {"type": "MSS_A"}}},
    "auth-none-with-token": {"config": {"auth": {"type": ["NONE"], "url_token_param": "t"}}},
    "every-sink-type": {
        "config": {
            "sinks": [
                {"name": "a", "type": "jsonl", "path": "/var/lib/receiver/a.jsonl"},
                {"name": "b", "type": "stdout"},
                {"name": "c", "type": "nats", "subject": "x.{room_id}"},
                {"name": "d", "type": "rabbitmq", "exchange_type": "fanout"},
                {"name": "e", "type": "redis", "maxlen": None},
                {"name": "f", "type": "kafka", "topic": "t"},
                {"name": "g", "type": "http", "url": "https://hooks.example.com/x"},
            ],
            "routes": [{"event_types": ["*"], "sinks": ["a", "b", "c", "d", "e", "f", "g"]}],
        }
    },
}


@pytest.mark.parametrize("values", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_schema_refuses(helm: Any, chart: Any, values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError, match="schema"):
        chart.render(with_public_url(values), name=RELEASE, namespace=NAMESPACE)
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    assert report["errors"], "helm lint must fail too"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": 3}, "replicaCount must be 1"),
        ({"ingress": {"enabled": True}}, "ingress.enabled needs ingress.host"),
        ({"secrets": {"metastudio": {"ak": "AK"}}}, "give both ak and sk"),
        ({"terminationGracePeriodSeconds": 5}, "must be above config.server.graceful_shutdown"),
    ],
)
def test_templates_refuse_without_the_schema(
    helm: Any, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    """With the schema skipped (--skip-schema-validation), the templates still refuse."""
    copy_dir = tmp_path / "receiver"
    shutil.copytree(CHART, copy_dir)
    (copy_dir / "values.schema.json").unlink()
    with (
        helm.Chart.load(str(copy_dir)) as unchecked,
        pytest.raises(helm.HelmError, match=message),
    ):
        unchecked.render(with_public_url(values), name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize("auth_type", ["MSS_A_HEAD", ["NONE", "MSS_A"]])
def test_a_signed_install_needs_its_public_url(helm: Any, render: Any, auth_type: Any) -> None:
    values = {"config": {"auth": {"type": auth_type}}}
    with pytest.raises(helm.HelmError, match=r"config.server.public_url .* is required"):
        render(values, bare=True)
    ingress = {"enabled": True, "host": "cb.example.com"}
    toml = tomllib.loads(render({**values, "ingress": ingress}, bare=True).toml_text())
    assert toml["server"]["public_url"].endswith("://cb.example.com/callbacks/metastudio")


SINK_SECRET_MISTAKES = {
    "unknown-sink": ({"sinks": {"nope": {"url": "redis://r"}}}, {}, "no sink named nope"),
    "url-of-a-jsonl-sink": ({"sinks": {"jsonl": {"url": "x://y"}}}, {}, "a jsonl sink has no url"),
    "secret-of-a-redis-sink": (
        {"sinks": {"r": {"secret": "s"}}},
        {"sinks": [{"name": "r", "type": "redis"}], "routes": [{"sinks": ["r"]}]},
        "a redis sink has no secret",
    ),
    "url-twice": (
        {"sinks": {"r": {"url": "redis://:pw@r:6379/0"}}},
        {
            "sinks": [{"name": "r", "type": "redis", "url": "redis://r"}],
            "routes": [{"sinks": ["r"]}],
        },
        "its url comes from secrets.sinks.r.url, leave it out of config.sinks",
    ),
    "http-without-url": (
        {"sinks": {"h": {"secret": "whsec_x"}}},
        {"sinks": [{"name": "h", "type": "http"}], "routes": [{"sinks": ["h"]}]},
        "the http sink h needs a url",
    ),
    "existing-secret-unknown-sink": (
        {"existingSecret": "s", "existingSecretKeys": {"sinks": {"nope": {"url": "u"}}}},
        {},
        "secrets.existingSecretKeys.sinks.nope: config.sinks has no sink named nope",
    ),
}


@pytest.mark.parametrize(
    ("secrets", "config", "message"),
    list(SINK_SECRET_MISTAKES.values()),
    ids=list(SINK_SECRET_MISTAKES),
)
def test_templates_refuse_sink_secret_mistakes(
    helm: Any, chart: Any, secrets: dict[str, Any], config: dict[str, Any], message: str
) -> None:
    """What the schema cannot see across keys: secrets.sinks must match config.sinks."""
    values = {"secrets": secrets, "config": config}
    with pytest.raises(helm.HelmError, match=message):
        chart.render(with_public_url(values), name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({}, False),  # 30 > 20 + 5
        ({"terminationGracePeriodSeconds": 26}, False),
        ({"terminationGracePeriodSeconds": 25}, True),
        ({"config": {"server": {"graceful_shutdown_seconds": 25.5}}}, True),
        ({"config": {"server": {"graceful_shutdown_seconds": 24.5}}}, False),
        ({"config": {"server": {"graceful_shutdown_seconds": None}}}, False),  # receiver's 20
        ({"preStopSleepSeconds": 10}, True),
        ({"preStopSleepSeconds": 0, "terminationGracePeriodSeconds": 21}, False),
        (
            {
                "terminationGracePeriodSeconds": 30,
                "config": {"intake": {"backend": "nats", "url": "nats://n:4222"}},
                "preStopSleepSeconds": 15,
            },
            True,
        ),
    ],
)
def test_grace_period_must_outlast_the_drain(
    helm: Any, chart: Any, values: dict[str, Any], refused: bool
) -> None:
    if not refused:
        chart.render(with_public_url(values), name=RELEASE, namespace=NAMESPACE)
        return
    with pytest.raises(
        helm.HelmError, match=r"terminationGracePeriodSeconds \(\d+\) must be above"
    ):
        chart.render(with_public_url(values), name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize("values", list(GOOD_VALUES.values()), ids=list(GOOD_VALUES))
def test_schema_accepts(helm: Any, render: Any, values: dict[str, Any], tmp_path: Path) -> None:
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    assert _lint_problems(report) == []
    rendered = render(values)
    assert _check_config(rendered, tmp_path).returncode == 0


def test_schema_mirrors_the_settings_models() -> None:
    """Every key the schema lets through is a key receiver/config.py knows (same enums)."""
    from receiver import config as settings_module
    from receiver import sink_settings

    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    config_schema = schema["properties"]["config"]
    models = settings_module.Settings.model_fields

    for section, section_schema in config_schema["properties"].items():
        assert section in models, f"config.{section} is no section of Settings"
        if section in ("sinks", "routes"):
            continue
        model = models[section].annotation
        _assert_keys_known(section, section_schema, model)
    _assert_keys_known(
        "routes", config_schema["properties"]["routes"]["items"], settings_module.RouteSettings
    )

    sink_models = {}
    for model in typing.get_args(sink_settings.SinkSettings):
        (kind,) = typing.get_args(model.model_fields["type"].annotation)
        sink_models[kind] = model
    definitions = schema["definitions"]
    schema_kinds = {name.removeprefix("sink_") for name in definitions if name.startswith("sink_")}
    assert schema_kinds == set(sink_models)
    for kind, model in sink_models.items():
        _assert_keys_known(f"sinks[{kind}]", definitions[f"sink_{kind}"], model)

    assert definitions["authType"]["enum"] == [t.value for t in settings_module.AuthType]
    assert definitions["signingRule"]["enum"] == [r.value for r in settings_module.SigningRule]
    backend = settings_module.IntakeSettings.model_fields["backend"].annotation
    assert config_schema["properties"]["intake"]["properties"]["backend"]["enum"] == list(
        typing.get_args(backend)
    )


#: Settings the values do not offer: the chart sets them, or they hold a secret (which goes in
#: `secrets` and reaches the pod as a file), or the chart has no way to provide them.
NOT_IN_VALUES = {
    "server": {"host", "tls_certfile", "tls_keyfile"},
    "auth": {"keys", "keys_file"},
    "intake": {"url_file"},
    "metastudio": {"ak", "sk", "ak_file", "sk_file", "iam_password", "iam_password_file"},
    "admin": {"tokens_file", "tls_certfile", "tls_keyfile"},
}


def test_schema_offers_every_setting() -> None:
    """The reverse of the test above: a key added to the settings is added to the chart."""
    from receiver import config as settings_module
    from receiver import sink_settings

    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    sections = schema["properties"]["config"]["properties"]
    for section, field in settings_module.Settings.model_fields.items():
        assert section in sections, f"config.{section} is missing from the schema"
        if section in ("sinks", "routes"):
            continue
        _assert_keys_offered(section, sections[section], field.annotation)
    _assert_keys_offered("routes", sections["routes"]["items"], settings_module.RouteSettings)
    for model in typing.get_args(sink_settings.SinkSettings):
        (kind,) = typing.get_args(model.model_fields["type"].annotation)
        _assert_keys_offered(f"sinks[{kind}]", schema["definitions"][f"sink_{kind}"], model)


def _assert_keys_offered(where: str, section_schema: dict[str, Any], model: Any) -> None:
    section = where.split(".")[0]
    for key, field in model.model_fields.items():
        if key in NOT_IN_VALUES.get(section, ()):
            assert key not in section_schema["properties"], f"{where}.{key} is the chart's"
            continue
        assert key in section_schema["properties"], f"{where}.{key} is missing from the schema"
        sub = section_schema["properties"][key]
        if "properties" in sub:
            _assert_keys_offered(f"{where}.{key}", sub, field.annotation)


def _plain(value: Any) -> Any:
    """A settings default as it reads in values.yaml."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


#: values.yaml defaults that differ from the receiver's on purpose: the pod's data directory.
CHART_DEFAULTS: dict[tuple[str, ...], str] = {
    ("intake", "path"): "/var/lib/receiver/intake.db",
    ("dead_letters", "path"): "/var/lib/receiver/dead-letters.db",
}


def test_values_defaults_are_the_receivers() -> None:
    """Every key values.yaml sets under config has the receiver's own default."""
    from receiver import config as settings_module

    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))["config"]
    models = settings_module.Settings.model_fields

    def walk(where: tuple[str, ...], section: dict[str, Any], model: Any) -> None:
        for key, value in section.items():
            field = model.model_fields[key]
            if isinstance(value, dict):
                walk((*where, key), value, field.annotation)
                continue
            expected = CHART_DEFAULTS.get((*where, key))
            if expected is None:
                expected = _plain(field.get_default(call_default_factory=True))
            assert value == expected, f"config.{'.'.join((*where, key))}"

    for section, content in values.items():
        if section in ("sinks", "routes"):
            continue
        walk((section,), content, models[section].annotation)


def test_new_settings_reach_the_toml(render: Any) -> None:
    """The keys added with the replicated intakes and tracing: in the TOML, typed, accepted."""
    values = GOOD_VALUES["replicated-intake-tuned"]
    rendered = render(values)
    toml = tomllib.loads(rendered.toml_text())
    intake = values["config"]["intake"]
    for key in ("lease_ttl_seconds", "ack_wait_seconds", "timeout_seconds"):
        assert toml["intake"][key] == intake[key]
    assert toml["intake"]["dedup_window_seconds"] == 86400
    assert toml["intake"]["max_ack_pending"] == 100000
    assert isinstance(toml["intake"]["max_ack_pending"], int)
    assert toml["intake"]["replica_id"] == ""
    assert toml["server"]["max_header_bytes"] == 32768
    assert toml["tracing"] == {
        "enabled": True,
        "exporter": "console",
        "endpoint": "",
        "service_name": "rx",
    }
    # test_schema_accepts[replicated-intake-tuned] runs `receiver check-config` on it.
    default = tomllib.loads(render(case="default").toml_text())
    assert default["pipeline"]["retry"]["max_attempts"] == 30
    assert default["tracing"]["enabled"] is False


def _assert_keys_known(where: str, section_schema: dict[str, Any], model: Any) -> None:
    assert section_schema.get("additionalProperties") is False, f"{where} allows any key"
    fields = model.model_fields
    for key, sub in section_schema["properties"].items():
        assert key in fields, f"{where}.{key} is not a setting of {model.__name__}"
        if "properties" in sub:
            _assert_keys_known(f"{where}.{key}", sub, fields[key].annotation)


# ---- receiver.toml from the ConfigMap passes `receiver check-config` ----------------------


def _secret_contents(rendered: Rendered) -> dict[str, bytes]:
    """The files the pod sees under /etc/receiver/secrets."""
    pod = rendered.workload()["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    if "items" in volume["secret"]:  # an existing Secret: its data is not in the chart
        return {
            item["path"]: f"placeholder-{item['key']}\n".encode()
            for item in volume["secret"]["items"]
        }
    assert volume["secret"]["secretName"] == rendered.one("Secret")["metadata"]["name"]
    return _secret_files(rendered)


def _check_config(rendered: Rendered, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run `receiver check-config` on the rendered receiver.toml, secrets in temp files."""
    text = rendered.toml_text()
    toml = tomllib.loads(text)
    files = _secret_contents(rendered)
    referenced = [
        toml["auth"].get("keys_file"),
        toml["intake"].get("url_file"),
        *(toml["metastudio"].get(key) for key in ("ak_file", "sk_file", "iam_password_file")),
        *(sink.get(key) for sink in toml["sinks"] for key in ("url_file", "secret_file")),
    ]
    for path in filter(None, referenced):
        assert path.startswith(SECRET_DIR), path
        assert path.removeprefix(SECRET_DIR) in files, f"{path} is not in the mounted Secret"
    secrets = tmp_path / "secrets"
    data = tmp_path / "data"
    secrets.mkdir()
    data.mkdir()
    for name, content in files.items():
        (secrets / name).write_bytes(content)
    local = text.replace(f'"{SECRET_DIR}', f'"{secrets}/').replace(f'"{DATA_DIR}', f'"{data}/')
    config = tmp_path / "receiver.toml"
    config.write_text(local, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    return subprocess.run(
        [sys.executable, "-m", "receiver.cli", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("case", ALL_CASES)
def test_rendered_config_passes_check_config(render: Any, case: str, tmp_path: Path) -> None:
    rendered = render(case=case)
    result = _check_config(rendered, tmp_path)
    assert result.returncode == 0, result.stderr
    toml = tomllib.loads(rendered.toml_text())
    assert result.stdout.startswith("config ok")
    assert f"intake {toml['intake']['backend']}" in result.stdout
    if toml["server"].get("public_url"):
        assert f"callback {toml['server']['public_url']} " in result.stdout


def test_check_config_catches_what_the_schema_cannot(render: Any, tmp_path: Path) -> None:
    rendered = render({"config": {"routes": [{"sinks": ["missing"]}]}})
    result = _check_config(rendered, tmp_path)
    assert result.returncode == 2
    assert "routes" in result.stderr
    assert "missing" in result.stderr


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


@pytest.mark.parametrize("case", ALL_CASES)
def test_toml_is_the_config_values(render: Any, case: str) -> None:
    """receiver.toml holds exactly config.*, plus the keys the chart owns."""
    rendered = render(case=case)
    toml = tomllib.loads(rendered.toml_text())
    expected = _without_nulls(copy.deepcopy(rendered.merged["config"]))
    assert toml["server"].pop("host") == "0.0.0.0"
    assert toml["auth"].pop("keys_file") == f"{SECRET_DIR}keys"
    for key in ("ak_file", "sk_file", "iam_password_file"):
        toml["metastudio"].pop(key, None)
    toml["intake"].pop("url_file", None)
    toml["admin"].pop("tokens_file", None)
    for sink in toml["sinks"]:
        sink.pop("url_file", None)
        sink.pop("secret_file", None)
    if not expected["server"]["public_url"]:
        expected["server"]["public_url"] = toml["server"]["public_url"]
    # Through JSON, so that 8080 and 8080.0 differ: whole numbers stay integers in the TOML.
    assert json.dumps(toml, sort_keys=True) == json.dumps(expected, sort_keys=True)


# ---- the rendered configuration serves: receiver serve, probes, a signed callback ---------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _callback_body(room: str) -> bytes:
    message = json.dumps({"room_id": room, "job_id": f"job-{room}"})
    return json.dumps({"event_type": "REPLY_COMMAND_FINISH", "message": message}).encode()


def test_rendered_release_serves_a_signed_callback(render: Any, tmp_path: Path) -> None:
    """The pod's config, keys file and URL as the notes print them: a signed callback lands."""
    from receiver.signatures import SECRET_HEADER, TIME_HEADER, hex_time, sign

    rendered = render(case="sqlite-single")
    assert _check_config(rendered, tmp_path).returncode == 0  # writes the secrets and data dirs
    port = _free_port()
    text = (tmp_path / "receiver.toml").read_text(encoding="utf-8")
    assert 'host = "0.0.0.0"' in text
    text = text.replace('host = "0.0.0.0"', 'host = "127.0.0.1"')
    text = text.replace("\nport = 8080\n", f"\nport = {port}\n")
    config = tmp_path / "receiver.toml"
    config.write_text(text, encoding="utf-8")
    toml = tomllib.loads(text)
    url = toml["server"]["public_url"]
    assert f"live_event_type_callback_url: {url}" in rendered.notes
    key = _secret_files(rendered)["keys"].decode().splitlines()[0]
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    log_path = tmp_path / "receiver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "receiver.cli", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "never ready"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        assert httpx.get(f"{base}/livez", timeout=5).status_code == 200
        metrics = httpx.get(f"{base}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert "# TYPE" in metrics.text
        path = toml["server"]["path"]
        stamp = hex_time(time.time())
        headers = {"content-type": "application/json", TIME_HEADER: stamp}
        forged = httpx.post(
            f"{base}{path}",
            content=_callback_body("forged"),
            timeout=5,
            headers={**headers, SECRET_HEADER: sign("not-the-key", url, stamp)},
        )
        assert forged.status_code in (401, 403), forged.text
        accepted = httpx.post(
            f"{base}{path}",
            content=_callback_body("room-1"),
            timeout=5,
            headers={**headers, SECRET_HEADER: sign(key, url, stamp)},
        )
        assert 200 <= accepted.status_code < 300, accepted.text
        events = Path(toml["sinks"][0]["path"])
        deadline = time.monotonic() + 15
        while "room-1" not in (events.read_text() if events.exists() else ""):
            assert time.monotonic() < deadline, "the event never reached the jsonl sink"
            time.sleep(0.1)
        assert "forged" not in events.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert code == 0, log_path.read_text(errors="replace")[-2000:]


# ---- the console: its port, its Service, its Ingress, its tokens ----------------------------

CONSOLE_TOKEN = "operator console-token-0123456789"
EXPOSED_CONSOLE = {
    "config": {"admin": {"enabled": True, "host": "0.0.0.0"}},
    "secrets": {"consoleTokens": [CONSOLE_TOKEN]},
    "adminService": {"enabled": True},
    "ingress": {"enabled": True, "host": "callbacks.example.com"},
    "adminIngress": {"enabled": True, "host": "console.example.com"},
}


def _container_ports(rendered: Rendered) -> dict[str, int]:
    (container,) = rendered.workload()["spec"]["template"]["spec"]["containers"]
    return {port["name"]: port["containerPort"] for port in container["ports"]}


def test_no_console_by_default(render: Any) -> None:
    rendered = render(case="default")
    assert set(_container_ports(rendered)) == {"http"}
    assert [s["metadata"]["name"] for s in rendered.all("Service")] == [
        FULLNAME,
        f"{FULLNAME}-headless",
    ]
    assert tomllib.loads(rendered.toml_text())["admin"]["enabled"] is False


def test_a_loopback_console_has_a_port_for_port_forward_and_no_service(render: Any) -> None:
    rendered = render({"config": {"admin": {"enabled": True}}})
    assert _container_ports(rendered)["admin"] == 9180
    admin = tomllib.loads(rendered.toml_text())["admin"]
    assert admin == {"enabled": True, "host": "127.0.0.1", "port": 9180}
    assert f"{FULLNAME}-admin" not in [s["metadata"]["name"] for s in rendered.all("Service")]


def test_an_exposed_console_has_its_own_service_ingress_tokens_and_policy(render: Any) -> None:
    rendered = render(EXPOSED_CONSOLE)
    service = rendered.one("Service", f"{FULLNAME}-admin")
    assert service["spec"]["ports"] == [
        {"name": "admin", "port": 9180, "targetPort": "admin", "protocol": "TCP"}
    ]
    assert _secret_files(rendered)["console_tokens"].decode() == CONSOLE_TOKEN + "\n"
    admin = tomllib.loads(rendered.toml_text())["admin"]
    assert admin["tokens_file"] == f"{SECRET_DIR}console_tokens"
    public = rendered.one("Ingress", FULLNAME)
    (rule,) = public["spec"]["rules"]
    backends = [p["backend"]["service"] for p in rule["http"]["paths"]]
    assert backends == [{"name": FULLNAME, "port": {"name": "http"}}]  # never the console
    console = rendered.one("Ingress", f"{FULLNAME}-admin")
    (rule,) = console["spec"]["rules"]
    assert rule["host"] == "console.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": f"{FULLNAME}-admin",
        "port": {"name": "admin"},
    }
    ports = [rule["ports"] for rule in rendered.one("NetworkPolicy")["spec"]["ingress"]]
    assert ports == [[{"port": "http", "protocol": "TCP"}], [{"port": "admin", "protocol": "TCP"}]]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"adminService": {"enabled": True}}, "needs config.admin.enabled"),
        (
            {"adminService": {"enabled": True}, "config": {"admin": {"enabled": True}}},
            "needs config.admin.host 0.0.0.0",
        ),
        (
            {
                "adminService": {"enabled": True},
                "config": {"admin": {"enabled": True, "host": "0.0.0.0"}},
            },
            "needs console tokens",
        ),
        ({"adminIngress": {"enabled": True, "host": "c.example.com"}}, "needs adminService"),
    ],
)
def test_templates_refuse_an_unsafe_console(
    helm: Any, chart: Any, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=message):
        chart.render(with_public_url(values), name=RELEASE, namespace=NAMESPACE)


def test_reconcile_values_reach_the_receiver(render: Any) -> None:
    rendered = render({"config": {"reconcile": {"interval_seconds": 45}}})
    assert tomllib.loads(rendered.toml_text())["reconcile"] == {"interval_seconds": 45}
