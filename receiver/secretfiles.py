"""The one reader of mounted secret files (a Kubernetes Secret volume, a Docker secret).

A file holds one secret a line; blank lines and ``#`` comments are skipped and each line is
stripped, so an editor's trailing newline or a CRLF never becomes part of a key. A file that
cannot be read is a ``ValueError`` naming the path and the reason, never the content.
"""

from __future__ import annotations

from pathlib import Path


def read_secret_lines(path: str | Path) -> list[str]:
    """Every secret of the file, in order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"cannot read {path}: not UTF-8 text") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def read_secret(path: str | Path) -> str:
    """The file's one secret (its first), or ``""`` when it holds none."""
    lines = read_secret_lines(path)
    return lines[0] if lines else ""
