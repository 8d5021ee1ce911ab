"""Logging set-up: one JSON document a line (or plain text), with the ``extra`` fields."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

# LogRecord's own attributes, and uvicorn's terminal-coloured copy of its message.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra}``; exceptions as one string."""

    converter = staticmethod(time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


# Control characters (C0, DEL, C1) and the Unicode line separators, written as escapes: a
# field from a callback body (a room id with a line feed in it) cannot start a log line.
_ESCAPES: dict[int, str] = {
    code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))
} | {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def escape_controls(text: str) -> str:
    """``text`` with its control characters escaped (``\\n``, ``\\x1b``); printable text as is."""
    if text.isprintable():  # no control character: the common case, no copy
        return text
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...``: the ``extra`` fields kept.

    A record is one line: control characters in the message, the fields or a traceback
    are escaped (``\\n``), so whatever a field holds, it cannot forge a line.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(
            f"{key}={value}" for key, value in record.__dict__.items() if key not in _STANDARD
        )
        return escape_controls(f"{line} {extra}" if extra else line)


def configure_logging(level: str, fmt: str) -> None:
    """Route every logger (uvicorn's too) to standard error in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # uvicorn's own access log prints the raw query (MSS_A signatures): ours replaces it.
    logging.getLogger("uvicorn.access").disabled = True
