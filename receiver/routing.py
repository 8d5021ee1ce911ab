"""Routes: which sinks an envelope goes to, by event type, room and enrichment status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from receiver.config import RouteSettings


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

    @classmethod
    def from_settings(cls, settings: RouteSettings) -> Route:
        return cls(
            tuple(settings.event_types),
            tuple(settings.room_ids),
            tuple(settings.room_names),
            tuple(settings.enrichment_status),
            tuple(settings.sinks),
        )

    @property
    def matches_all(self) -> bool:
        """Whether every condition is ``*``."""
        return all(
            patterns == ("*",)
            for patterns in (
                self.event_types,
                self.room_ids,
                self.room_names,
                self.enrichment_status,
            )
        )

    def matches(self, envelope: dict[str, Any]) -> bool:
        data = envelope["data"]
        job = data.get("job") or {}
        return (
            _matches(self.event_types, data["event_type"])
            and _matches(self.room_ids, envelope["roomid"])
            and _matches(self.room_names, str(job.get("room_name") or ""))
            and _matches(self.enrichment_status, data["enrichment"]["status"])
        )


class Router:
    """Picks the sinks of every matching route, each sink once, in route order."""

    def __init__(self, routes: Sequence[RouteSettings]) -> None:
        self._routes = [Route.from_settings(route) for route in routes]
        # Routes that match anything pick their sinks without looking at the envelope.
        self._everything: list[str] | None = None
        if all(route.matches_all for route in self._routes):
            self._everything = list(dict.fromkeys(n for r in self._routes for n in r.sinks))

    def sinks_for(self, envelope: dict[str, Any]) -> list[str]:
        if self._everything is not None:
            return self._everything
        chosen: dict[str, None] = {}
        for route in self._routes:
            if route.matches(envelope):
                chosen.update(dict.fromkeys(route.sinks))
        return list(chosen)
