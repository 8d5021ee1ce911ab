"""Routes: which sinks an envelope goes to, by event type, room, enrichment status and a
condition over any envelope field (:mod:`receiver.conditions`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from receiver.conditions import Activation, Condition, ConditionError, activation, compile_condition
from receiver.config import RouteSettings

log = logging.getLogger("receiver.routing")


def _matches(patterns: Sequence[str], value: str) -> bool:
    return any(pattern == "*" or fnmatchcase(value, pattern) for pattern in patterns)


@dataclass(frozen=True, slots=True)
class Route:
    """One ``[[routes]]`` table: every listed condition must hold (``*`` matches anything)."""

    event_types: tuple[str, ...]
    room_ids: tuple[str, ...]
    room_names: tuple[str, ...]
    enrichment_status: tuple[str, ...]
    sinks: tuple[str, ...]
    condition: Condition | None = None

    @classmethod
    def from_settings(cls, settings: RouteSettings) -> Route:
        return cls(
            tuple(settings.event_types),
            tuple(settings.room_ids),
            tuple(settings.room_names),
            tuple(settings.enrichment_status),
            tuple(settings.sinks),
            compile_condition(settings.condition) if settings.condition else None,
        )

    @property
    def matches_all(self) -> bool:
        """Whether every pattern is ``*`` and there is no condition."""
        return self.condition is None and all(
            patterns == ("*",)
            for patterns in (
                self.event_types,
                self.room_ids,
                self.room_names,
                self.enrichment_status,
            )
        )

    def matches(self, envelope: dict[str, Any]) -> bool:
        """Whether the patterns match (the condition, if any, is the router's to check)."""
        data = envelope["data"]
        job = data.get("job") or {}
        return (
            _matches(self.event_types, data["event_type"])
            and _matches(self.room_ids, envelope["roomid"])
            and _matches(self.room_names, str(job.get("room_name") or ""))
            and _matches(self.enrichment_status, data["enrichment"]["status"])
        )


class Router:
    """Picks the sinks of every matching route, each sink once, in route order.

    A condition that errs on an envelope (the body is hostile) does not match: it is
    counted (``on_condition_error(route_index, kind_of_error)``) and, with ``log_errors``,
    logged the first time per route, with the kind of error only (the values are the body's).
    """

    def __init__(
        self,
        routes: Sequence[RouteSettings],
        on_condition_error: Callable[[int, str], None] | None = None,
        *,
        log_errors: bool = True,
    ) -> None:
        self._routes = [Route.from_settings(route) for route in routes]
        self._on_condition_error = on_condition_error
        self._log_errors = log_errors
        self._paths = frozenset(
            path for route in self._routes if route.condition for path in route.condition.paths
        )
        self._logged: set[int] = set()
        # Routes that match anything pick their sinks without looking at the envelope.
        self._everything: list[str] | None = None
        if all(route.matches_all for route in self._routes):
            self._everything = list(dict.fromkeys(n for r in self._routes for n in r.sinks))

    def matching(self, envelope: dict[str, Any]) -> list[int]:
        """The indexes of the routes that match ``envelope``."""
        values: Activation | None = None
        chosen = []
        for index, route in enumerate(self._routes):
            if not route.matches(envelope):
                continue
            if route.condition is not None:
                if values is None:
                    values = activation(envelope, self._paths)
                if not self._holds(index, route.condition, values):
                    continue
            chosen.append(index)
        return chosen

    def sinks_for(self, envelope: dict[str, Any]) -> list[str]:
        """The sinks of every matching route, each once, in route order."""
        if self._everything is not None:
            return self._everything
        chosen: dict[str, None] = {}
        for index in self.matching(envelope):
            chosen.update(dict.fromkeys(self._routes[index].sinks))
        return list(chosen)

    def _holds(self, index: int, condition: Condition, values: Activation) -> bool:
        try:
            return condition.holds(values)
        except ConditionError as error:
            self._condition_failed(index, error)
            return False

    def _condition_failed(self, index: int, error: ConditionError) -> None:
        if self._on_condition_error is not None:
            self._on_condition_error(index, str(error))
        if self._log_errors and index not in self._logged:
            self._logged.add(index)
            log.warning(
                "route condition failed on an event; the route does not match it "
                "(counted in receiver_route_condition_errors, logged once per route)",
                extra={"route": index, "error": str(error)},
            )
