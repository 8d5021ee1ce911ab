"""Validation of envelopes against the committed JSON Schema (``docs/schemas/``)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator, FormatChecker

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"


@functools.cache
def validator(name: str = "envelope") -> Draft202012Validator:
    """The validator of the committed schema ``name`` (dates checked as RFC 3339)."""
    schema = orjson.loads((SCHEMAS / f"{name}.schema.json").read_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def envelope_errors(envelope: Any, name: str = "envelope") -> list[str]:
    """Why ``envelope`` is not valid under schema ``name`` (empty when it is)."""
    found = sorted(validator(name).iter_errors(envelope), key=lambda error: error.path)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in found]


def assert_valid_envelope(envelope: Any, name: str = "envelope") -> None:
    """Fail with every reason when ``envelope`` does not validate."""
    errors = envelope_errors(envelope, name)
    assert not errors, f"envelope {envelope.get('id')!r} is not valid: {errors}"
