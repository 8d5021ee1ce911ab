"""The journal of a single process (the sqlite intake): entries go straight to the fold."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from receiver.journal.base import Journal

log = logging.getLogger("receiver.journal")


class LocalJournal(Journal):
    """No backend: what this process writes is what it follows, at once."""

    _fold: Callable[[bytes], None] | None = None

    def write(self, entry: bytes) -> None:
        if self._fold is not None:
            try:
                self._fold(entry)
            except Exception:
                log.exception("journal entry not folded")

    def start(self, fold: Callable[[bytes], None]) -> None:
        self._fold = fold

    async def close(self) -> None:
        self._fold = None

    async def _flush(self, batch: list[bytes]) -> None:  # pragma: no cover - never buffered
        raise NotImplementedError

    def _follow(self, since: float) -> AsyncIterator[list[bytes]]:  # pragma: no cover
        raise NotImplementedError
