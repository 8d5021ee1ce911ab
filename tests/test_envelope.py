"""Destination templates: every value rendered from the body is made safe first."""

from __future__ import annotations

import hashlib
import re
import time

import pytest

from receiver.envelope import MAX_VALUE_LENGTH, build_envelope, render, safe_value
from receiver.events import Callback

SAFE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
HOSTILE = ["../", "../../etc/passwd", "/abs", "a\x00b", "a\nb", "字" * 8000, ".", "..", ""]


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def test_only_other_characters_become_underscores_and_then_the_value_gets_its_digest() -> None:
    for value in ["REPLY_COMMAND_FINISH", "room-1_A", "x" * MAX_VALUE_LENGTH]:
        assert safe_value(value) == value
    assert safe_value("../etc") == f"___etc-{digest('../etc')}"
    assert safe_value("a:b{c}") == f"a_b_c_-{digest('a:b{c}')}"


def test_long_values_are_cut_with_their_digest() -> None:
    value = "x" * (MAX_VALUE_LENGTH + 1)
    assert safe_value(value) == "x" * (MAX_VALUE_LENGTH - 9) + f"-{digest(value)}"
    assert len(safe_value("字" * 8000)) == MAX_VALUE_LENGTH


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_render_safe(value: str) -> None:
    rendered = safe_value(value)
    assert SAFE.match(rendered)
    assert rendered not in ("", ".", "..")


def test_different_values_keep_different_renderings() -> None:
    values = [*HOSTILE, "a/b", "a.b", "a_b", "a b"]
    assert len({safe_value(value) for value in values}) == len(values)


def test_render_makes_every_field_of_the_envelope_safe() -> None:
    value = "../x/.."
    callback = Callback(value, {"state": value}, False, value, value)
    envelope = build_envelope(callback, "e" * 32, time.time(), "urn:test")
    envelope["data"]["job"] = {"room_name": value}
    rendered = render("{event_type}/{room_id}/{job_id}/{state}/{room_name}/{id}", envelope)
    segments = rendered.split("/")
    assert segments[:5] == [safe_value(value)] * 5
    assert segments[5] == "e" * 32
