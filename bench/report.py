"""The machine, the results table, the targets, and the JSON file."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """nproc, CPU model, kernel, memory, Python, and the versions that matter."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    wrk = ""
    try:
        run = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5)
        wrk = (run.stdout + run.stderr).strip().splitlines()[0].split(" Copyright")[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        wrk = "not installed"
    return {
        "nproc": os.cpu_count() or 0,
        "cpu_model": model or platform.processor(),
        "kernel": platform.release(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "wrk": wrk,
    }


def machine_line(info: Mapping[str, Any]) -> str:
    return (
        f"machine: {info['nproc']} CPUs, {info['cpu_model']}, kernel {info['kernel']}, "
        f"{info['memory_gb']} GB, Python {info['python']}, {info['wrk']}"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, numbers right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [
        max(len(headers[i]), *(len(row[i]) for row in cells)) if cells else len(headers[i])
        for i in range(len(headers))
    ]
    numeric = [
        all(isinstance(row[i], int | float) or row[i] in ("", None) for row in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.rjust(widths[i]) if numeric[i] else value.ljust(widths[i])
            for i, value in enumerate(values)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(list(headers)), rule, *(line(row) for row in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass(frozen=True)
class Target:
    """One target of the issue and whether the run met it."""

    part: str
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured


def targets_table(targets: Sequence[Target]) -> str:
    rows = [
        [
            t.part,
            t.name,
            t.goal,
            t.measured,
            "n/a" if t.met is None else ("MET" if t.met else "MISSED"),
        ]
        for t in targets
    ]
    return table(["part", "target", "goal", "measured", "result"], rows)


def write_json(results: Mapping[str, Any], directory: Path = RESULTS) -> Path:
    """Write the results as ``bench/results/bench-<UTC time>.json``; the path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"bench-{stamp}.json"
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return path
