"""Metric names: those a PromQL expression reads, and those a receiver's /metrics exports."""

from __future__ import annotations

import re

# Strings, label matchers and range or offset durations hold no metric name.
_NOT_NAMES = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|\{[^}]*\}|\[[^\]]*\]')
# The label lists of by/without/on/ignoring/group_left/group_right.
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w$.])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "sum", "min", "max", "avg", "group"}
    | {"stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile"}
)
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def names_in(expr: str) -> set[str]:
    """The metric names ``expr`` selects (functions, keywords and labels left out)."""
    text = _LABEL_LISTS.sub(" ", _NOT_NAMES.sub(" ", expr))
    return {
        match.group(1)
        for match in _IDENTIFIER.finditer(text)
        if match.group(2) is None and match.group(1).lower() not in _KEYWORDS
    }


def exported_names(scrape: str) -> set[str]:
    """Every series name a /metrics text can hold: its samples and its families' suffixes.

    A labelled family is declared before its first sample: its ``# TYPE`` line counts too.
    """
    names: set[str] = set()
    for line in scrape.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            base = family.removesuffix("_total") if kind == "counter" else family
            suffixes = _SUFFIXES.get(kind, ("",))
            names.update(base + suffix for suffix in suffixes)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names
