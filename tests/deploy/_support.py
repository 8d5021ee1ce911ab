"""What the deployment tests share: paths, the rendered cases, skip-or-fail for missing tools."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "receiver"
EXAMPLES = CHART / "examples"
RELEASE = "rel"
NAMESPACE = "metastudio"

#: Every example values file the chart ships; each one is linted, rendered and validated.
EXAMPLE_FILES = (
    "sqlite-single.yaml",
    "nats-replicas.yaml",
    "redis-replicas.yaml",
    "ingress-tls.yaml",
    "existing-secret.yaml",
)

#: Values rendered by the tests besides the examples: (name, values or example file).
EXTRA_CASES: dict[str, dict[str, Any]] = {
    "console-exposed": {
        "config": {
            "admin": {"enabled": True, "host": "0.0.0.0"},
            "server": {"public_url": "https://callbacks.example.com/callbacks/metastudio"},
        },
        "secrets": {"consoleTokens": ["operator console-token-0123456789"]},
        "adminService": {"enabled": True},
        "adminIngress": {"enabled": True, "host": "console.example.com"},
    },
    "redis-autoscaling": {
        "config": {"intake": {"backend": "redis", "url": "redis://redis.data.svc:6379/0"}},
        "autoscaling": {
            "enabled": True,
            "minReplicas": 2,
            "maxReplicas": 5,
            "targetMemoryUtilizationPercentage": 80,
        },
        "metrics": {"serviceMonitor": {"enabled": True}},
        "secrets": {"metastudio": {"ak": "AKEXAMPLE", "sk": "SKEXAMPLE", "iamPassword": "pw"}},
    },
    # The alerts and the dashboard, next to the ServiceMonitor.
    "monitoring": {
        "metrics": {
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "grafanaDashboard": {"enabled": True},
        },
    },
    # The intake URL and a sink URL from a Secret managed outside the chart.
    "nats-existing-secret": {
        "replicaCount": 2,
        "config": {
            "intake": {"backend": "nats", "url": ""},
            "sinks": [
                {"name": "queue", "type": "rabbitmq", "exchange": "metastudio"},
                {"name": "bus", "type": "nats", "subject": "live.{room_id}"},
            ],
            "routes": [{"sinks": ["queue", "bus"]}],
        },
        "secrets": {
            "existingSecret": "receiver-managed",
            "existingSecretKeys": {
                "keys": "callback-keys",
                "intakeUrl": "nats-url",
                "sinks": {"queue": {"url": "amqp-url"}, "bus": {"url": "nats-url"}},
            },
        },
    },
}


def require(reason: str) -> None:
    """Skip for a missing tool, or fail when REQUIRE_SERVICES=1 says it must be there."""
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def example_values(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{name} is not a mapping"
    return loaded


# The one value a signed install must give (the chart refuses to render without it).
PUBLIC_URL = "https://receiver.example.com/callbacks/metastudio"


def with_public_url(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` plus PUBLIC_URL where they give neither a public URL nor an ingress host."""
    config = values.get("config", {})
    server = config.get("server", {})
    if server.get("public_url") or values.get("ingress", {}).get("host"):
        return values
    return {**values, "config": {**config, "server": {**server, "public_url": PUBLIC_URL}}}


def case_values(case: str) -> dict[str, Any]:
    """The user values of one case: {} for the chart defaults."""
    if case == "default":
        return {}
    if case in EXTRA_CASES:
        return EXTRA_CASES[case]
    return example_values(f"{case}.yaml")


ALL_CASES = ("default", *(name.removesuffix(".yaml") for name in EXAMPLE_FILES), *EXTRA_CASES)


@dataclass
class Rendered:
    """One `helm template` run: the manifests (NOTES.txt aside) and the notes."""

    values: dict[str, Any]
    docs: list[dict[str, Any]]
    notes: str
    merged: dict[str, Any] = field(default_factory=dict)

    def kinds(self) -> list[str]:
        return [doc["kind"] for doc in self.docs]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
        return found[0]

    def workload(self) -> dict[str, Any]:
        found = self.all("Deployment") + self.all("StatefulSet")
        assert len(found) == 1, f"expected one workload, got {[d['kind'] for d in found]}"
        return found[0]

    def container(self) -> dict[str, Any]:
        containers = self.workload()["spec"]["template"]["spec"]["containers"]
        assert [c["name"] for c in containers] == ["receiver"]
        return containers[0]

    def toml_text(self) -> str:
        text = self.one("ConfigMap", f"{RELEASE}-receiver")["data"]["receiver.toml"]
        assert isinstance(text, str)
        return text
