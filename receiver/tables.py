"""Aligned text tables for the CLI: CJK characters are two columns wide, control
characters are shown as ``?`` so a crafted value cannot move the cursor."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any, TextIO

from wcwidth import wcswidth, wcwidth

_HIDDEN = frozenset(("Cc", "Cf", "Zl", "Zp"))  # controls, bidi and invisible format marks


def cell(value: Any) -> str:
    """``value`` as one table cell (``-`` for None); control, bidi-override and invisible
    characters become ``?``."""
    text = "-" if value is None else str(value)
    return "".join(
        "?" if wcwidth(char) < 0 or unicodedata.category(char) in _HIDDEN else char for char in text
    )


def width(text: str) -> int:
    """Terminal columns of a cell: CJK characters take two, combining marks none."""
    return max(wcswidth(text), 0)


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    """The header and one aligned line per row."""
    cells = [list(columns)] + [[cell(value) for value in row] for row in rows]
    widths = [max(width(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        pairs = zip(line, widths, strict=True)
        out.write("  ".join(text + " " * (size - width(text)) for text, size in pairs).rstrip())
        out.write("\n")
