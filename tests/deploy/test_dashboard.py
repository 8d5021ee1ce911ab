"""The Grafana dashboard: its queries read exported metrics; the chart ships it unchanged."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy._metrics import exported_names, names_in
from tests.deploy._support import CHART, RELEASE

DASHBOARD = CHART / "files" / "receiver-dashboard.json"
_LABEL_VALUES = re.compile(r"^label_values\((?P<series>.*),\s*\w+\)$")


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def _panels() -> list[dict[str, Any]]:
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


def _variable_series() -> list[str]:
    """The series selectors of the query variables (label_values(series, label))."""
    found = []
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["query"]["query"])
            assert match, variable["name"]
            found.append(match["series"])
    return found


def test_every_query_reads_only_exported_metrics(metrics_scrape: str) -> None:
    exported = exported_names(metrics_scrape)
    for panel in _panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            read = names_in(target["expr"])
            assert read, f"{panel['title']}: {target['expr']}"
            assert read <= exported, f"{panel['title']} reads {sorted(read - exported)}"
    for series in _variable_series():
        assert names_in(series) <= exported, series


def test_promtool_parses_every_query(promtool: str, tmp_path: Path) -> None:
    """Each query, with Grafana's variables filled in, as a recording rule promtool checks."""
    exprs = [t["expr"] for p in _panels() for t in p["targets"]] + _variable_series()
    filled = [
        expr.replace("$__rate_interval", "5m").replace('=~"$', '=~"').replace("${", "{")
        for expr in exprs
    ]
    rules = [{"record": f"dashboard:query{n}", "expr": e} for n, e in enumerate(filled)]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def test_every_metric_is_on_the_dashboard(metrics_scrape: str) -> None:
    """A metric added to receiver/metrics.py gets a panel."""
    read = {name for p in _panels() for t in p["targets"] for name in names_in(t["expr"])}
    families = {
        line.split()[2] for line in metrics_scrape.splitlines() if line.startswith("# TYPE")
    }
    for family in families:
        assert any(name.startswith(family.removesuffix("_total")) for name in read), family


def test_queries_filter_by_the_dashboard_variables() -> None:
    variables = {v["name"] for v in _dashboard()["templating"]["list"]}
    assert variables == {"datasource", "namespace", "job", "pod"}
    for panel in _panels():
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            for label in ("namespace", "job", "pod"):
                assert f'{label}=~"${label}"' in target["expr"], panel["title"]


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    panels = _dashboard()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, panel["title"]
        cells |= mine


# ---- the chart's ConfigMap -----------------------------------------------------------------


def test_no_dashboard_by_default(render: Any) -> None:
    names = [doc["metadata"]["name"] for doc in render(case="default").all("ConfigMap")]
    assert names == [f"{RELEASE}-receiver"]


def test_dashboard_config_map_holds_the_file(render: Any) -> None:
    config_map = render(case="monitoring").one("ConfigMap", f"{RELEASE}-receiver-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["receiver.json"]) == _dashboard()


def test_dashboard_namespace_labels_and_annotations(render: Any) -> None:
    settings = {
        "enabled": True,
        "namespace": "monitoring",
        "labels": {"team": "live"},
        "annotations": {"grafana_folder": "MetaStudio"},
    }
    rendered = render({"metrics": {"grafanaDashboard": settings}})
    metadata = rendered.one("ConfigMap", f"{RELEASE}-receiver-dashboard")["metadata"]
    assert metadata["namespace"] == "monitoring"
    assert metadata["labels"]["team"] == "live"
    assert metadata["labels"]["grafana_dashboard"] == "1"
    assert metadata["annotations"] == {"grafana_folder": "MetaStudio"}
