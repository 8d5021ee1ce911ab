"""The container image definition: hadolint, and the promises the chart relies on."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

from tests.deploy._support import CHART, REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    logical = re.sub(r"\\\n", " ", text)
    found = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        found.append((word.upper(), rest.strip()))
    return found


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_hadolint_is_clean(hadolint: str) -> None:
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_not_silent(hadolint: str, tmp_path: Path) -> None:
    """The same call does fail on a bad Dockerfile, so a pass above means something."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install -y curl\n", encoding="utf-8")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0


def test_multi_stage_build_on_a_pinned_slim_python() -> None:
    args = dict(
        rest.split("=", 1) for word, rest in _instructions() if word == "ARG" and "=" in rest
    )
    assert re.fullmatch(r"3\.11\.\d+", args["PYTHON_TAG"]), "pin the patch version"
    assert args["DEBIAN_RELEASE"] == "bookworm"
    builder, runtime = _stages()
    assert builder[0][1].endswith(" AS builder")
    assert any(
        w == "RUN" and "pip wheel --require-hashes" in r and "-r requirements.lock" in r
        for w, r in builder
    ), "the dependencies are the locked ones, each file checked against its hash"
    base = runtime[0][1].split()[0]
    assert base == "python:${PYTHON_TAG}-slim-${DEBIAN_RELEASE}"
    runs = " ".join(r for w, r in runtime if w == "RUN")
    assert "--no-index" in runs, "the runtime installs only the wheels of the build stage"
    assert "--require-hashes -r /tmp/requirements.lock" in runs
    assert "from=builder" in runs
    for tool in ("gcc", "build-essential", "apt-get install"):
        assert tool not in runs, f"{tool} in the runtime stage"


def test_runtime_contract() -> None:
    runtime = _stages()[-1]
    words = {}
    for word, rest in runtime:
        words.setdefault(word, []).append(rest)
    assert words["USER"] == ["10001:10001"]
    assert json.loads(words["ENTRYPOINT"][0]) == ["receiver"]
    assert json.loads(words["CMD"][0]) == ["serve", "--config", "/etc/receiver/receiver.toml"]
    assert json.loads(words["VOLUME"][0]) == ["/var/lib/receiver"]
    assert words["EXPOSE"] == ["8080"]
    assert words["WORKDIR"][-1] == "/var/lib/receiver"
    env = " ".join(words["ENV"])
    for setting in (
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "HOME=/var/lib/receiver",
        "TMPDIR=/tmp",
    ):
        assert setting in env
    labels = " ".join(words["LABEL"])
    for label in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{label}=" in labels
    assert "--uid 10001" in " ".join(words["RUN"])
    (healthcheck,) = words["HEALTHCHECK"]
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["receiver", "healthcheck"], "it follows the configuration"
    assert "8080" not in healthcheck


#: What the official python images set in their environment: an ARG of the same name is
#: shadowed by it in the runtime stage (the base name label once read the base's version).
OFFICIAL_BASE_ENV = {"PATH", "LANG", "GPG_KEY", "PYTHON_VERSION", "PYTHON_SHA256"}


def test_labels_read_the_build_arguments_not_the_base_environment() -> None:
    runtime = _stages()[-1]
    labels = " ".join(rest for word, rest in runtime if word == "LABEL")
    used = set(re.findall(r"\$\{(\w+)\}", labels))
    declared = {rest.split("=", 1)[0] for word, rest in runtime if word == "ARG"}
    assert used <= declared
    assert not used & OFFICIAL_BASE_ENV
    base = runtime[0][1].split()[0]
    assert f'base.name="docker.io/library/{base}"' in labels


def test_documented_stop_timeout_outlasts_the_drain() -> None:
    """docker/podman stop waits 10 s by default; the drain alone may take 20."""
    from receiver.config import ServerSettings

    drain = ServerSettings().graceful_shutdown_seconds
    for document in (DOCKERFILE, REPO / "README.md", CHART / "README.md"):
        timeouts = re.findall(r"--stop-timeout (\d+)", document.read_text(encoding="utf-8"))
        assert timeouts, f"{document.name} documents no --stop-timeout"
        assert all(int(t) >= drain + 5 for t in timeouts), document.name


def test_versions_agree() -> None:
    """The image's VERSION is derived, never a second copy; the chart's appVersion agrees."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    version = pyproject["project"]["version"]
    args = dict(
        rest.split("=", 1) for word, rest in _instructions() if word == "ARG" and "=" in rest
    )
    assert args["VERSION"] == '""', "no default that can drift from pyproject.toml"
    runs = " ".join(rest for word, rest in _stages()[-1] if word == "RUN")
    assert "receiver-*.whl" in runs, "the wheel is installed whatever its version"
    assert '"${VERSION}" != "${installed}"' in runs, "a wrong VERSION fails the build"
    chart = (CHART / "Chart.yaml").read_text(encoding="utf-8")
    assert f'appVersion: "{version}"' in chart


def test_dockerignore_sends_only_the_package() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "**", "everything is excluded first"
    allowed = {line.removeprefix("!").rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "requirements.lock", "README.md", "receiver"}
    copied = " ".join(rest for word, rest in _instructions() if word == "COPY")
    for name in allowed:
        assert name in copied
