"""``receiver dlq``: list, show, replay and purge dead letters.

Replay claims each letter (so concurrent replays, from any replica, publish it once; a
claim of a replay that died lapses after five minutes), builds its sink from the
configuration, publishes the stored body and removes the letter once the sink confirmed.
After a sink's first failure its remaining letters are kept untouched (so one room's
events are not replayed out of order); run the command again once the sink is healthy. A
letter of ``(unrouted)`` (an event whose routing failed) is routed afresh by the
configured routes and removed once every chosen sink took it; one that still cannot be
decoded or matches no route is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from receiver.config import ConfigError, Settings, load_settings
from receiver.deadletters import BaseDeadLetterStore, DeadLetter
from receiver.deadletters.factory import build_dead_letters
from receiver.pipeline import UNROUTED
from receiver.routing import Router
from receiver.sinks.base import DeliveryError, Sink
from receiver.sinks.factory import MissingExtra, build_sink

StoreCommand = Callable[[argparse.Namespace, Settings, BaseDeadLetterStore], Awaitable[int]]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``dlq`` command and its subcommands to a ``receiver`` parser."""
    dlq = commands.add_parser("dlq", help="inspect, replay or purge dead letters")
    actions = dlq.add_subparsers(dest="dlq_command", required=True)

    listing = _add(actions, "list", "list dead letters, oldest first", _list)
    listing.add_argument("--sink", help="only letters of this sink")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    listing.add_argument("--format", choices=["json", "table"], default="json")

    show = _add(actions, "show", "print one letter with its envelope", _show)
    show.add_argument("id", type=int)

    replay = _add(actions, "replay", "publish letters again; delivered ones are removed", _replay)
    replay.add_argument("--sink", help="only letters of this sink")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=int, help="the one letter to replay")
    which.add_argument("--all", action="store_true", help="every letter (of --sink)")

    purge = _add(actions, "purge", "delete letters for good", _purge)
    purge.add_argument("--sink", help="only letters of this sink")
    purge.add_argument("--yes", action="store_true", help="confirm the deletion")


def _add(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    command: StoreCommand,
) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help_text)
    parser.add_argument(
        "--config", "-c", default=None, help="TOML file (default: $RECEIVER_CONFIG or built-in)"
    )
    parser.set_defaults(func=lambda args: _run(command, args))
    return parser


def _run(command: StoreCommand, args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2

    async def main() -> int:
        store = build_dead_letters(settings)
        try:
            return await command(args, settings, store)
        finally:
            await store.close()

    return asyncio.run(main())


async def _list(args: argparse.Namespace, _settings: Settings, store: BaseDeadLetterStore) -> int:
    letters = await store.list(sink=args.sink, limit=args.limit)
    if args.format == "json":
        for letter in letters:
            print(orjson.dumps(letter.summary()).decode())
        return 0
    print(f"{'ID':>6}  {'SINK':<16} {'EVENT ID':<32} {'TRIES':>5}  LAST ERROR")
    for letter in letters:
        error = letter.last_error.replace("\n", " ")[:60]
        fields = f"{letter.id:>6}  {letter.sink:<16} {letter.event_id:<32} {letter.attempts:>5}"
        print(f"{fields}  {error}")
    return 0


async def _show(args: argparse.Namespace, _settings: Settings, store: BaseDeadLetterStore) -> int:
    letter = await store.get(args.id)
    if letter is None:
        print(f"no dead letter {args.id}", file=sys.stderr)
        return 1
    document = letter.summary()
    try:
        document["envelope"] = orjson.loads(letter.body)
    except orjson.JSONDecodeError:
        document["body"] = letter.body.decode("utf-8", "replace")
    print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    return 0


async def _purge(args: argparse.Namespace, _settings: Settings, store: BaseDeadLetterStore) -> int:
    if not args.yes:
        print("purge deletes dead letters for good; add --yes to confirm", file=sys.stderr)
        return 2
    removed = await store.purge(sink=args.sink)
    print(f"purged {removed} dead letter(s)")
    return 0


async def _replay(args: argparse.Namespace, settings: Settings, store: BaseDeadLetterStore) -> int:
    if args.id is not None:
        letter = await store.get(args.id)
        if letter is None or (args.sink and letter.sink != args.sink):
            print(f"no dead letter {args.id}", file=sys.stderr)
            return 1
        letters = [letter]
    else:
        letters = await store.list(sink=args.sink, limit=sys.maxsize)
    replayer = _Replayer(settings)
    try:
        for letter in letters:
            if not await store.claim(letter.id):
                replayer.skipped += 1  # another replay holds it, or it was removed
                continue
            if await replayer.deliver(letter):
                await store.remove(letter.id)
            else:
                await store.release(letter.id)
    finally:
        await replayer.close()
    kept = len(letters) - replayer.delivered - replayer.skipped
    print(
        f"replayed {replayer.delivered}, failed {replayer.failed}, "
        f"kept {kept}, skipped {replayer.skipped} (claimed by another replay or gone)"
    )
    return 0 if kept == 0 else 1


class _Replayer:
    """Delivers letters through sinks built from the settings, one sink per name."""

    def __init__(self, settings: Settings) -> None:
        self._settings = {sink.name: sink for sink in settings.sinks}
        self._router = Router(settings.routes)
        self._sinks: dict[str, Sink] = {}
        self._broken: set[str] = set()
        self.delivered = 0
        self.failed = 0
        self.skipped = 0

    async def deliver(self, letter: DeadLetter) -> bool:
        """Publish one letter; False (reported on stderr) if it stays a dead letter."""
        if letter.sink in self._broken:
            return False
        try:
            envelope = orjson.loads(letter.body)
            if not isinstance(envelope, dict):
                raise LookupError("the letter is not an event envelope")
            targets = self._targets(letter, envelope)
            for name in targets:
                if name in self._broken:
                    raise LookupError(f"sink {name} failed earlier in this run")
                sink = await self._sink(name)
                try:
                    await sink.publish(envelope, letter.body)
                except DeliveryError:
                    self._broken.add(name)
                    raise
        except (DeliveryError, LookupError, MissingExtra, orjson.JSONDecodeError) as error:
            detail = error.detail if isinstance(error, DeliveryError) else str(error)
            print(f"letter {letter.id} ({letter.sink}): kept: {detail}", file=sys.stderr)
            if letter.sink != UNROUTED:
                self._broken.add(letter.sink)
            self.failed += 1
            return False
        self.delivered += 1
        return True

    def _targets(self, letter: DeadLetter, envelope: dict[str, Any]) -> list[str]:
        if letter.sink != UNROUTED:
            return [letter.sink]
        targets = self._router.sinks_for(envelope)
        if not targets:
            raise LookupError("no route matches it")
        return targets

    async def _sink(self, name: str) -> Sink:
        sink = self._sinks.get(name)
        if sink is None:
            if name not in self._settings:
                raise LookupError(f"no sink named {name!r} in the configuration")
            sink = build_sink(self._settings[name])
            await sink.start()
            self._sinks[name] = sink
        return sink

    async def close(self) -> None:
        """Close every sink that was built."""
        for sink in self._sinks.values():
            await sink.close()
