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


@pytest.mark.parametrize(
    ("backend", "kind"),
    [("sqlite", "SqliteDeadLetterStore"), ("redis", "RedisDeadLetterStore"),
     ("nats", "NatsDeadLetterStore")],
)  # fmt: skip
async def test_the_factory_puts_dead_letters_next_to_the_intake(
    tmp_path: Path, backend: str, kind: str
) -> None:
    from receiver.config import DeadLetterSettings, IntakeSettings, Settings
    from receiver.deadletters.factory import build_dead_letters, shared_backend

    settings = Settings(
        intake=IntakeSettings(
            backend=backend, url="" if backend == "sqlite" else "redis://127.0.0.1:9/0"
        ),
        dead_letters=DeadLetterSettings(path=tmp_path / "dead.db"),
    )
    store = build_dead_letters(settings)
    assert type(store).__name__ == kind
    assert shared_backend(settings) is (backend != "sqlite")
    await store.close()
