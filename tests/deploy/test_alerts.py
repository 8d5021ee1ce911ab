"""The alerting rules: promtool-valid, unit-tested, on exported metrics, in the chart."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy._metrics import exported_names, names_in
from tests.deploy._support import (
    CHART,
    NAMESPACE,
    RELEASE,
    REPO,
    case_values,
    with_public_url,
)

RULES = CHART / "files" / "receiver-rules.yaml"
RULE_TESTS = Path(__file__).parent / "prometheus" / "receiver-rules.test.yaml"
RUNBOOKS = REPO / "docs" / "runbooks"
RUNBOOK_BASE = "https://receiver.example.com/runbooks/"
SEVERITIES = {"critical", "warning", "info"}


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _promtool(promtool: str, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [promtool, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_checks_the_rules(promtool: str) -> None:
    assert f"SUCCESS: {len(_alerts())} rules found" in _promtool(
        promtool, "check", "rules", str(RULES)
    )


def test_promtool_unit_tests_pass(promtool: str) -> None:
    _promtool(promtool, "test", "rules", str(RULE_TESTS))


def test_every_alert_is_unit_tested_silent_and_firing() -> None:
    """Each alert is evaluated on the healthy series (silent) and fires in some other test."""
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    healthy, *bad = tests
    silent = {case["alertname"] for case in healthy["alert_rule_test"] if not case["exp_alerts"]}
    firing = {
        case["alertname"] for test in bad for case in test["alert_rule_test"] if case["exp_alerts"]
    }
    names = {alert["alert"] for alert in _alerts()}
    assert silent == names
    assert firing == names


def test_promtool_accepts_a_real_scrape(promtool: str, metrics_scrape: str) -> None:
    _promtool(promtool, "check", "metrics", stdin=metrics_scrape)


def test_scrape_reports_readiness(metrics_scrape: str) -> None:
    """The intake and each critical sink, as the readiness alerts select them."""
    assert 'receiver_ready{check="intake"} 1.0' in metrics_scrape
    assert 'receiver_ready{check="sink:archive"} 1.0' in metrics_scrape
    assert 'receiver_ready{check="sink:out"}' not in metrics_scrape  # not critical


def test_alerts_read_only_exported_metrics(metrics_scrape: str) -> None:
    exported = exported_names(metrics_scrape)
    for alert in _alerts():
        read = names_in(alert["expr"])
        assert read, f"{alert['alert']} reads no metric"
        assert read <= exported, f"{alert['alert']} reads {sorted(read - exported)}"


def test_a_metric_the_receiver_lacks_is_noticed(metrics_scrape: str) -> None:
    exported = exported_names(metrics_scrape)
    assert "receiver_callbacks_total" in exported
    assert "receiver_callback_seconds_bucket" in exported
    assert "receiver_dead_letters_total" in exported  # declared, no sample yet
    assert "receiver_callbacks" not in exported
    read = names_in('sum by (job) (rate(receiver_callback_total{outcome="x"}[5m])) and up')
    assert read - exported == {"receiver_callback_total", "up"}


def test_alerts_follow_the_mixin_conventions() -> None:
    for alert in _alerts():
        name = alert["alert"]
        assert name.startswith("Receiver") and name.isalnum() and name[8].isupper(), name
        assert alert["labels"]["severity"] in SEVERITIES, name
        annotations = alert["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert annotations["runbook_url"] == f"{RUNBOOK_BASE}{name}.md"


def test_every_alert_has_its_runbook() -> None:
    names = {alert["alert"] for alert in _alerts()}
    pages = {path.stem for path in RUNBOOKS.glob("Receiver*.md")}
    assert pages == names
    for name in names:
        text = (RUNBOOKS / f"{name}.md").read_text(encoding="utf-8")
        assert text.startswith(f"# {name}\n"), name
        for section in ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation"):
            assert section in text, f"{name}: {section}"
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    for name in names:
        assert f"[{name}]({name}.md)" in index, name


# ---- the chart's PrometheusRule ------------------------------------------------------------


def test_no_prometheus_rule_by_default(render: Any) -> None:
    assert "PrometheusRule" not in render(case="default").kinds()


def test_prometheus_rule_is_the_rules_file(render: Any) -> None:
    rule = render(case="monitoring").one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"] == f"{RELEASE}-receiver"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    source = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert rule["spec"] == {"groups": source["groups"]}


def test_prometheus_rule_overrides(render: Any) -> None:
    settings = {
        "enabled": True,
        "runbookBaseUrl": "https://wiki.example.org/receiver/",
        "for": {"ReceiverNoCallbacks": "2h"},
        "disabled": ["ReceiverEnrichmentUnavailable", "ReceiverEnrichmentMismatches"],
    }
    rule = render({"metrics": {"prometheusRule": settings}}).one("PrometheusRule")
    groups = {group["name"]: group["rules"] for group in rule["spec"]["groups"]}
    alerts = {alert["alert"]: alert for rules in groups.values() for alert in rules}
    assert alerts["ReceiverNoCallbacks"]["for"] == "2h"
    assert alerts["ReceiverIntakeNotReady"]["for"] == "2m"
    assert "ReceiverEnrichmentUnavailable" not in alerts
    assert "ReceiverMetaStudioRateLimited" in alerts
    assert "ReceiverEnrichmentMismatches" not in alerts
    for name, alert in alerts.items():
        assert alert["annotations"]["runbook_url"] == f"https://wiki.example.org/receiver/{name}.md"


def test_promtool_checks_the_rendered_overrides(render: Any, promtool: str, tmp_path: Path) -> None:
    settings = {"enabled": True, "for": {"ReceiverNoCallbacks": "2h", "ReceiverSinkFailing": "1h"}}
    rule = render({"metrics": {"prometheusRule": settings}}).one("PrometheusRule")
    rendered = tmp_path / "rules.yaml"
    rendered.write_text(yaml.safe_dump(rule["spec"]), encoding="utf-8")
    assert f"SUCCESS: {len(_alerts())} rules found" in _promtool(
        promtool, "check", "rules", str(rendered)
    )


def test_prometheus_rule_drops_an_emptied_group(render: Any) -> None:
    enrichment = [
        "ReceiverEnrichmentUnavailable",
        "ReceiverEnrichmentMismatches",
        "ReceiverMetaStudioRateLimited",
    ]
    settings = {"enabled": True, "disabled": enrichment}
    rule = render({"metrics": {"prometheusRule": settings}}).one("PrometheusRule")
    assert "receiver-enrichment" not in [group["name"] for group in rule["spec"]["groups"]]


@pytest.mark.parametrize("key", ["for", "disabled"])
def test_prometheus_rule_refuses_an_unknown_alert(helm: Any, render: Any, key: str) -> None:
    value: Any = {"ReceiverNoSuchAlert": "1h"} if key == "for" else ["ReceiverNoSuchAlert"]
    with pytest.raises(helm.HelmError, match="ReceiverNoSuchAlert is no alert"):
        render({"metrics": {"prometheusRule": {"enabled": True, key: value}}})


@pytest.mark.parametrize(
    "metrics",
    [
        {"prometheusRule": {"for": {"ReceiverNoCallbacks": "soon"}}},
        {"prometheusRule": {"disabled": ["noCallbacks"]}},
        {"prometheusRule": {"runbookBaseUrl": "https://wiki.example.org/runbooks"}},
        {"prometheusRule": {"severity": "info"}},
        {"grafanaDashboard": {"folder": "MetaStudio"}},
    ],
)
def test_schema_refuses_monitoring_mistakes(helm: Any, chart: Any, metrics: Any) -> None:
    with pytest.raises(helm.HelmValuesError, match="schema"):
        chart.render(with_public_url({"metrics": metrics}), name=RELEASE, namespace=NAMESPACE)


def test_lint_strict_with_alerts_and_dashboard(helm: Any) -> None:
    report = helm.lint(str(CHART), case_values("monitoring"), strict=True, namespace=NAMESPACE)
    problems = [m["error"] for m in report["messages"] if m["severity"] >= 2]
    assert problems + list(report["errors"]) == []
