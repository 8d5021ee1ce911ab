"""Hostile bodies against route conditions: no hang, no exception out of the router.

The body is not signed, so a regular expression in a condition runs on text the attacker
chose (and, if the condition says so, with a pattern the attacker chose). A backtracking
engine takes exponential time on ``^(a+)+$`` against ``aaaa…!``; RE2 takes linear time.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from receiver.conditions import MAX_VALUE_ITEMS
from receiver.config import RouteSettings
from receiver.envelope import build_envelope
from receiver.events import MAX_MESSAGE_CHARS, MAX_MESSAGE_DEPTH, parse_callback
from receiver.routing import Router

# A hang guard, not a benchmark: a backtracking engine needs longer than the universe's
# age for this input, RE2 a few milliseconds. SIGALRM, not a watchdog thread: a regex
# engine that holds the GIL would starve the watchdog too (sre checks for signals).
GUARD_SECONDS = 5.0
pytestmark = pytest.mark.timeout(GUARD_SECONDS, method="signal")


def hostile_envelope(**message: Any) -> dict[str, Any]:
    body = orjson.dumps(
        {
            "event_type": "UNDOCUMENTED_EVENT",  # its message fields are not type-checked
            "message": orjson.dumps({"room_id": "r", "job_id": "j", **message}).decode(),
        }
    )
    return build_envelope(parse_callback(body), "id", 1_800_000_000.0, "src")


def within_guard(router: Router, envelope: dict[str, Any]) -> list[str]:
    """``router.sinks_for(envelope)``; the module's timeout fails the test if it hangs."""
    started = time.monotonic()
    chosen = router.sinks_for(envelope)
    assert time.monotonic() - started < GUARD_SECONDS
    return chosen


# The longest state a body may carry (the message is limited to MAX_MESSAGE_CHARS).
PATHOLOGICAL = "a" * (MAX_MESSAGE_CHARS - 200) + "!"


@pytest.mark.parametrize("pattern", ["^(a+)+$", "^(a|a)*$", "^(a|aa)+$", "(a*)*b", "^(.*a){20}$"])
def test_a_catastrophic_pattern_on_a_crafted_field_completes(pattern: str) -> None:
    condition = f"data.message.state.matches({orjson.dumps(pattern).decode()})"
    errors: list[int] = []
    router = Router(
        [RouteSettings(condition=condition, sinks=["pager"])],
        lambda index, _error: errors.append(index),
    )
    assert within_guard(router, hostile_envelope(state=PATHOLOGICAL)) == []
    assert errors == []


def test_a_pattern_taken_from_the_body_completes_or_fails_closed() -> None:
    errors: list[int] = []
    router = Router(
        [
            RouteSettings(sinks=["all"]),
            RouteSettings(condition="data.message.state.matches(data.message.p)", sinks=["x"]),
        ],
        lambda index, _error: errors.append(index),
    )
    for pattern in ["^(a+)+$", "(" * 5000, "a{1001}", "((a{1000}){1000}){1000}"]:
        envelope = hostile_envelope(state=PATHOLOGICAL[-20_000:], p=pattern)
        assert within_guard(router, envelope) == ["all"]
    assert errors == [1, 1, 1]  # the three invalid patterns; the first just does not match


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"k": [value]}
    return value


@pytest.mark.parametrize(
    "message",
    [
        {"state": 5},
        {"state": None},
        {"state": ["DISCONNECTED"]},
        {"state": {"nested": "DISCONNECTED"}},
        {"state": "DISCONNECTED", "n": 2**64 - 1},
        {"state": "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace")},
        {"deep": _nested(MAX_MESSAGE_DEPTH // 2 - 1)},
        {"state": "x" * 20_000, "list": list(range(2000))},
    ],
)
def test_hostile_values_never_raise_out_of_the_router(message: dict[str, Any]) -> None:
    conditions = [
        'data.message.state == "DISCONNECTED"',
        'data.message.state in ["DISCONNECTED", "END"]',
        "data.message.state.size() > 3",
        'data.message.state.matches("^DIS")',
        "data.message.n > 10",
        'has(data.message.deep) && data.message.deep.k[0].k[0] == "x"',
        "1999 in data.message.list",
        "data.message.list.size() > 3",
        'data.job.state == "LIVING"',
    ]
    router = Router(
        [RouteSettings(sinks=["all"])]
        + [RouteSettings(condition=c, sinks=[f"s{i}"]) for i, c in enumerate(conditions)],
        lambda _index, _error: None,
    )
    chosen = within_guard(router, hostile_envelope(**message))
    assert chosen[0] == "all"


def test_a_huge_list_costs_only_the_conditions_that_read_it() -> None:
    errors: list[int] = []
    router = Router(
        [
            RouteSettings(condition='data.message.state == "DISCONNECTED"', sinks=["pager"]),
            RouteSettings(condition="0 in data.message.junk", sinks=["junk"]),
        ],
        lambda index, _error: errors.append(index),
    )
    # The longest list a message may hold: 16,000 items, far over what is converted.
    junk = [0] * ((MAX_MESSAGE_CHARS - 200) // 2)
    assert len(junk) > 10 * MAX_VALUE_ITEMS
    envelope = hostile_envelope(state="DISCONNECTED", junk=junk)
    started = time.monotonic()
    for _ in range(100):
        assert within_guard(router, envelope) == ["pager"]
    # A hang guard with room to spare: converting the list each time took 100 ms.
    assert time.monotonic() - started < GUARD_SECONDS
    assert errors == [1] * 100
