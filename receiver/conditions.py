"""Route conditions: CEL expressions over the envelope, compiled once at start-up.

A condition names the envelope's fields as CEL variables: every top-level attribute
(``type``, ``subject``, ``roomid``, ``jobid``, ``knowntype``...) and ``data`` with its
``message``, ``job`` and ``enrichment``. The body is hostile (the signature never covers
it), so evaluation never raises and its time is bounded:

- a condition that errs (a missing key, a value of the wrong type) does not match;
- regular expressions (``matches``) run on RE2, whose time is linear in the input;
- the list macros (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) are refused:
  their time grows with a list the body chooses;
- only the fields the conditions name are turned into CEL values, and a value over
  ``MAX_VALUE_ITEMS`` items is not: a condition that reads it errs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

import celpy
import lark
from celpy.celparser import CELParseError
from celpy.celtypes import BoolType, DoubleType, IntType, ListType, MapType, StringType
from celpy.evaluation import CELEvalError

# celpy logs every failed evaluation at ERROR with the values involved; a crafted body
# would fill the log with its own text. The router counts failures and logs them itself.
logging.getLogger("celpy").setLevel(logging.CRITICAL)

Activation = dict[str, Any]
Path = tuple[str, ...]
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
# Items (values, at any depth) one named field may hold to be presented to conditions.
MAX_VALUE_ITEMS = 1000


class ConditionError(Exception):
    """A condition could not be evaluated for one envelope (the route does not match)."""


class Condition:
    """One compiled CEL expression; :meth:`holds` tells whether an envelope satisfies it."""

    __slots__ = ("_program", "expression", "paths")

    def __init__(self, expression: str, program: celpy.Runner, paths: frozenset[Path]) -> None:
        self.expression = expression
        self._program = program
        self.paths = paths  # the dotted names it reads (``("data", "message", "state")``)

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
    for node in tree.iter_subtrees():
        if node.data == "member_dot_arg" and str(node.children[1]) in MACROS:
            raise ValueError(
                f"{expression!r} uses {node.children[1]}(): list macros are refused "
                "(their time grows with a list the unsigned body chooses)"
            )
    try:
        program = _ENVIRONMENT.program(tree)
    except Exception as error:
        raise ValueError(f"cannot compile {expression!r}: {error}") from None
    return Condition(expression, program, frozenset(_paths(tree)))


def _chain(node: Any) -> Path | None:
    """The dotted name ``node`` is (``data.message.state``), or None if it is not one."""
    if not isinstance(node, lark.Tree):
        return None
    if node.data == "member" and len(node.children) == 1:
        return _chain(node.children[0])
    if node.data == "primary" and len(node.children) == 1:
        ident = node.children[0]
        if isinstance(ident, lark.Tree) and ident.data == "ident":
            return (str(ident.children[0]),)
        return None
    if node.data == "member_dot":
        head = _chain(node.children[0])
        return None if head is None else (*head, str(node.children[1]))
    return None


def _paths(node: Any) -> Iterable[Path]:
    """Every longest dotted name in the expression (a value it reads)."""
    chain = _chain(node)
    if chain is not None:
        yield chain
    elif isinstance(node, lark.Tree):
        for child in node.children:
            yield from _paths(child)


_INT64 = range(-(2**63), 2**63)


class _TooLarge(Exception):
    pass


def _cel(value: Any, budget: list[int]) -> Any:
    """A JSON value as a CEL value (an integer beyond int64 a double, as JSON has it);
    _TooLarge once ``budget`` items are spent."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if isinstance(value, str):
        return StringType(value)
    if isinstance(value, bool):
        return BoolType(value)
    if isinstance(value, int):
        return IntType(value) if value in _INT64 else DoubleType(value)
    if isinstance(value, float):
        return DoubleType(value)
    if isinstance(value, dict):
        return MapType({StringType(key): _cel(item, budget) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return ListType([_cel(item, budget) for item in value])
    return None  # null (the envelope holds nothing but JSON)


def _value(value: Any) -> Any:
    try:
        return _cel(value, [MAX_VALUE_ITEMS])
    except _TooLarge:
        return CELEvalError(f"value over {MAX_VALUE_ITEMS} items")


def activation(envelope: dict[str, Any], paths: Iterable[Path]) -> Activation:
    """The fields ``paths`` name as CEL values, computed once per event for its conditions.

    A named field is converted whole; its parents hold only the named children (so
    ``has()`` and a missing key behave as over the whole envelope). An oversized field
    becomes an error value: only the conditions that read it err.
    """
    selected: dict[str, Any] = {}  # nested names; None: the whole value
    for path in sorted(paths, key=len):  # a shorter name covers the longer ones under it
        node = selected
        for name in path[:-1]:
            below = node.setdefault(name, {})
            if below is None:
                break
            node = below
        else:
            node[path[-1]] = None
    return _select(envelope, selected)


def _select(source: dict[str, Any], selected: dict[str, Any]) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    for name, below in selected.items():
        if name not in source:
            continue
        value = source[name]
        if below is None or not isinstance(value, dict):
            chosen[name] = _value(value)
        else:
            inner = _select(value, below)
            chosen[name] = MapType({StringType(key): item for key, item in inner.items()})
    return chosen
