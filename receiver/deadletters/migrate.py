"""Move the letters of a local SQLite dead-letter file into the shared store.

Each letter is added to the shared store first and removed from the file afterwards, so a
crash in between leaves it in both (a duplicate on the next start), never in neither.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from receiver.deadletters.base import BaseDeadLetterStore
from receiver.deadletters.sqlite import SqliteDeadLetterStore

log = logging.getLogger("receiver.deadletters")

_BATCH = 200


async def move_local_letters(path: Path, target: BaseDeadLetterStore) -> int:
    """Move every letter of the SQLite file at ``path`` (if any) into ``target``."""
    if not await asyncio.to_thread(path.is_file):
        return 0
    local = SqliteDeadLetterStore(path)
    moved = 0
    try:
        while letters := await local.list(limit=_BATCH):
            for letter in letters:
                await target.add(
                    event_id=letter.event_id,
                    sink=letter.sink,
                    body=letter.body,
                    attempts=letter.attempts,
                    last_error=letter.last_error,
                    first_attempt_at=letter.first_attempt_at,
                    dead_at=letter.dead_at,
                )
                await local.remove(letter.id)
                moved += 1
    finally:
        await local.close()
    if moved:
        log.info("moved %d dead letter(s) from %s into the shared store %r", moved, path, target)
    return moved
