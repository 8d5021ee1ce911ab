"""The journal: a bounded, shared record of what every replica's pipeline did.

Each replica writes an entry when it routes an event and when a sink settles it; each
replica follows the journal and folds every entry, its own and the others', into the
console's event history and live rooms and into the reconciler's callback memory. So every
replica answers for all rooms and events, and the watcher sees callbacks whichever
replica took them. Kept in the intake's backend: a sqlite file next to the sqlite intake
(one process), a Redis stream trimmed to ``MAXLEN``, a JetStream stream with limits.
"""

from receiver.journal.base import Journal, JournalLimits
from receiver.journal.entries import Routed, Settled, decode, routed_entry, settled_entry
from receiver.journal.factory import build_journal
from receiver.journal.fold import JournalFold
from receiver.journal.writer import JournalWriter

__all__ = [
    "Journal",
    "JournalFold",
    "JournalLimits",
    "JournalWriter",
    "Routed",
    "Settled",
    "build_journal",
    "decode",
    "routed_entry",
    "settled_entry",
]
