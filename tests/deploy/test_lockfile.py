"""requirements.lock pins what pyproject.toml asks for, every file with its hash.

Refresh it with ``scripts/lock`` after changing the dependencies: this fails until then.
"""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy._support import REPO

LOCK = REPO / "requirements.lock"
DIRECT = "receiver (pyproject.toml)"


def image_requirements() -> dict[str, Requirement]:
    """What the image installs: the dependencies and those of the extras ``all`` names."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    wanted = [Requirement(text) for text in project["dependencies"]]
    for text in extras["all"]:
        requirement = Requirement(text)
        assert canonicalize_name(requirement.name) == "receiver"
        for extra in sorted(requirement.extras):
            wanted += [Requirement(item) for item in extras[extra]]
    return {canonicalize_name(r.name): r for r in wanted}


def locked() -> dict[str, tuple[str, list[str], list[str]]]:
    """Each pinned package: (version, hashes, what it is there for)."""
    entries: dict[str, tuple[str, list[str], list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text(encoding="utf-8")):
        if block.startswith("#"):
            continue
        head = block.split()[0]
        assert "==" in head, f"not pinned: {head}"
        name, version = head.split("==")
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
        via = [
            line.strip("# ").removeprefix("via ").strip()
            for line in block.splitlines()
            if line.lstrip().startswith("#")
        ]
        entries[canonicalize_name(name)] = (version, hashes, [v for v in via if v != "via"])
    return entries


def test_every_locked_package_has_hashes() -> None:
    entries = locked()
    assert len(entries) > 20
    for name, (_, hashes, _) in entries.items():
        assert hashes, f"{name} has no hash: pip install --require-hashes refuses it"


def test_direct_requirements_are_those_of_pyproject() -> None:
    wanted, entries = image_requirements(), locked()
    direct = {name for name, (_, _, via) in entries.items() if DIRECT in via}
    assert direct == set(wanted), "requirements.lock is stale: run scripts/lock"


def test_every_pin_satisfies_pyproject() -> None:
    entries = locked()
    for name, requirement in image_requirements().items():
        version = entries[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} does not satisfy {requirement}: run scripts/lock"
        )


def test_no_local_path_and_no_index_in_the_lock() -> None:
    text = LOCK.read_text(encoding="utf-8")
    assert "file://" not in text and "@ " not in text
    assert "--index-url" not in text and "--find-links" not in text
