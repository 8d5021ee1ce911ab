"""Route conditions: CEL expressions over the envelope, compiled once at start-up.

A condition names the envelope's fields as CEL variables: every top-level attribute
(``type``, ``subject``, ``roomid``, ``jobid``, ``knowntype``...) and ``data`` with its
``message``, ``job`` and ``enrichment``. The body is hostile (the signature never covers
it), so evaluation never raises: a condition that errors (a missing key, a value of the
wrong type, a number CEL cannot hold) does not match. Regular expressions (``matches``)
run on RE2, whose time is linear in the input: no pattern backtracks.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import celpy
from celpy.celparser import CELParseError
from celpy.celtypes import BoolType, DoubleType, IntType, ListType, MapType, StringType

# celpy logs every failed evaluation at ERROR with the values involved; a crafted body
# would fill the log with its own text. The router counts failures and logs them itself.
logging.getLogger("celpy").setLevel(logging.CRITICAL)

Activation = dict[str, Any]


class ConditionError(Exception):
    """A condition could not be evaluated for one envelope (the route does not match)."""


class Condition:
    """One compiled CEL expression; :meth:`holds` tells whether an envelope satisfies it."""

    __slots__ = ("_program", "expression")

    def __init__(self, expression: str, program: celpy.Runner) -> None:
        self.expression = expression
        self._program = program

    def holds(self, activation: Activation) -> bool:
        """True or False, or ConditionError (the expression erred or gave no bool)."""
        try:
            result = self._program.evaluate(activation)
        except Exception as error:  # celpy raises CELEvalError and whatever it wraps
            raise ConditionError(type(error).__name__) from None
        if not isinstance(result, BoolType | bool):  # not an error value, nor a string
            raise ConditionError(f"result is {type(result).__name__}, not bool")
        return bool(result)


# The interpreter, not celpy's transpiler: the transpiled code raises where CEL's ``&&``
# and ``||`` absorb an error (``false && data.job.state == "x"`` with no job is false).
_ENVIRONMENT = celpy.Environment(runner_class=celpy.InterpretedRunner)


@functools.lru_cache(maxsize=256)
def compile_condition(expression: str) -> Condition:
    """Compile ``expression`` (cached: validation and the router share one program).

    Raises ValueError naming the expression and, for a syntax error, the column.
    """
    try:
        tree = _ENVIRONMENT.compile(expression)
    except CELParseError as error:
        where = f" at column {error.column}" if error.column is not None else ""
        raise ValueError(f"cannot parse {expression!r}{where}") from None
    except Exception as error:  # lark's own errors for input it cannot tokenize
        raise ValueError(f"cannot parse {expression!r}: {type(error).__name__}") from None
    try:
        program = _ENVIRONMENT.program(tree)
    except Exception as error:
        raise ValueError(f"cannot compile {expression!r}: {error}") from None
    return Condition(expression, program)


_INT64 = range(-(2**63), 2**63)


def _cel(value: Any) -> Any:
    """A JSON value as a CEL value; an integer beyond int64 becomes a double (as JSON has it)."""
    if isinstance(value, str):
        return StringType(value)
    if isinstance(value, bool):
        return BoolType(value)
    if isinstance(value, int):
        return IntType(value) if value in _INT64 else DoubleType(value)
    if isinstance(value, float):
        return DoubleType(value)
    if isinstance(value, dict):
        return MapType({StringType(key): _cel(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return ListType([_cel(item) for item in value])
    return None  # null (the envelope holds nothing but JSON)


def activation(envelope: dict[str, Any]) -> Activation:
    """The envelope as CEL values, computed once per event for all its conditions.

    The message nests at most ``MAX_MESSAGE_DEPTH`` levels (receiver/events.py), so the
    conversion is bounded by the body's size.
    """
    return {name: _cel(value) for name, value in envelope.items()}
