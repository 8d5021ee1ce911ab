"""The base of every settings section, for ``receiver.config`` and subpackages alike.

A subpackage with settings of its own (a console, reconciliation) defines its section here
on :class:`Section` and ``receiver.config`` names it once, so the settings stay one object,
validated once at start-up.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_settings import NoDecode


class Section(BaseModel):
    """Base of every section: unknown keys are refused so a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def list_from_text(value: Any) -> Any:
    """Let a list key be given as one string: a JSON list, or comma-separated values."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return orjson.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


TextList = Annotated[list[str], NoDecode, BeforeValidator(list_from_text)]
"""A list of strings that may also be given as one string (an environment variable)."""
