"""The dead-letter interface: the public names and what a store must provide."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.deadletters import BaseDeadLetterStore, DeadLetterStore, SqliteDeadLetterStore


def test_the_sqlite_store_is_the_default_and_implements_the_interface(tmp_path: Path) -> None:
    assert DeadLetterStore is SqliteDeadLetterStore
    assert isinstance(SqliteDeadLetterStore(tmp_path / "dead.db"), BaseDeadLetterStore)


def test_a_store_missing_a_method_cannot_be_made() -> None:
    class Partial(BaseDeadLetterStore):
        async def close(self) -> None:
            return None

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]
