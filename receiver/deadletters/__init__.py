"""Dead letters: events a sink gave up on, kept until replayed or purged.

``BaseDeadLetterStore`` is the interface; ``SqliteDeadLetterStore`` (also exported as
``DeadLetterStore``) is the single node's file; ``receiver.deadletters.redis`` and
``receiver.deadletters.nats`` hold the shared stores, and ``factory.build_dead_letters``
picks one from the settings.
"""

from receiver.deadletters.base import MAX_ERROR_CHARS, BaseDeadLetterStore, DeadLetter
from receiver.deadletters.sqlite import SCHEMA_VERSION, SqliteDeadLetterStore

DeadLetterStore = SqliteDeadLetterStore

__all__ = [
    "MAX_ERROR_CHARS",
    "SCHEMA_VERSION",
    "BaseDeadLetterStore",
    "DeadLetter",
    "DeadLetterStore",
    "SqliteDeadLetterStore",
]
