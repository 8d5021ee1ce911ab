"""``receiver dlq``: list, show, replay and purge, on a real store and real sinks."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from receiver.deadletters import DeadLetterStore
from receiver.dlq_cli import register
from tests.brokers import REDIS, REDIS_URL, Event, free_port, make_event, require_service, unique


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="receiver")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def write_config(directory: Path, target: str) -> Path:
    """A config with a jsonl sink ``out`` and a sink ``target`` given as TOML lines."""
    path = directory / "receiver.toml"
    path.write_text(
        f"""
[dead_letters]
path = "{directory / "dead.db"}"

[[sinks]]
name = "out"
type = "jsonl"
path = "{directory / "out.jsonl"}"

[[sinks]]
name = "target"
{target}

[[routes]]
sinks = ["out", "target"]
"""
    )
    return path


def down_target() -> str:
    port = free_port()
    return f'type = "redis"\nurl = "redis://:s3cret-pass@127.0.0.1:{port}/0"\ntimeout_seconds = 1'


def seed(directory: Path, letters: list[tuple[str, Event]]) -> list[int]:
    async def add_all() -> list[int]:
        store = DeadLetterStore(directory / "dead.db")
        try:
            return [
                await store.add(envelope["id"], sink, body, 8, "timed out", 1.0, 2.0)
                for sink, (envelope, body) in letters
            ]
        finally:
            await store.close()

    return asyncio.run(add_all())


def remaining(directory: Path) -> list[tuple[str, str]]:
    async def read() -> list[tuple[str, str]]:
        store = DeadLetterStore(directory / "dead.db")
        try:
            return [(letter.sink, letter.event_id) for letter in await store.list(limit=1000)]
        finally:
            await store.close()

    return asyncio.run(read())


def jsonl_lines(directory: Path) -> list[bytes]:
    path = directory / "out.jsonl"
    return path.read_bytes().splitlines() if path.exists() else []


def test_list_show_and_purge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path, down_target()))
    events = [make_event("room-1", index) for index in range(3)]
    ids = seed(tmp_path, [("out", events[0]), ("target", events[1]), ("target", events[2])])

    assert run_cli("dlq", "list", "-c", config) == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["id"] for row in rows] == ids
    assert rows[0]["event_id"] == events[0][0]["id"]
    assert rows[0]["sink"] == "out" and rows[0]["attempts"] == 8

    assert run_cli("dlq", "list", "-c", config, "--sink", "target", "--limit", "1") == 0
    assert [orjson.loads(x)["id"] for x in capsys.readouterr().out.splitlines()] == [ids[1]]

    assert run_cli("dlq", "list", "-c", config, "--format", "table") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["ID", "SINK"] and len(table) == 4

    assert run_cli("dlq", "show", "-c", config, str(ids[1])) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert shown["envelope"] == events[1][0]
    assert run_cli("dlq", "show", "-c", config, "9999") == 1

    assert run_cli("dlq", "purge", "-c", config, "--sink", "target") == 2
    assert "--yes" in capsys.readouterr().err
    assert len(remaining(tmp_path)) == 3
    assert run_cli("dlq", "purge", "-c", config, "--sink", "target", "--yes") == 0
    assert "purged 2" in capsys.readouterr().out
    assert remaining(tmp_path) == [("out", events[0][0]["id"])]


def test_replay_keeps_letters_while_the_sink_fails_and_delivers_once_healthy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, down_target()))
    events = [make_event("room-1", index) for index in range(4)]
    seed(tmp_path, [("target", events[0]), ("out", events[1]), ("target", events[2]),
                    ("target", events[3])])  # fmt: skip

    assert run_cli("dlq", "replay", "-c", config, "--all") == 1
    captured = capsys.readouterr()
    assert "replayed 1, failed 1, kept 3" in captured.out
    assert "kept" in captured.err
    assert "s3cret-pass" not in captured.out + captured.err
    assert remaining(tmp_path) == [("target", events[i][0]["id"]) for i in (0, 2, 3)]
    assert jsonl_lines(tmp_path) == [events[1][1]]

    # The sink is healthy again (here: now a file); the kept letters go out, in order.
    write_config(tmp_path, f'type = "jsonl"\npath = "{tmp_path / "target.jsonl"}"')
    assert run_cli("dlq", "replay", "-c", config, "--all", "--sink", "target") == 0
    assert "replayed 3, failed 0, kept 0" in capsys.readouterr().out
    assert remaining(tmp_path) == []
    delivered = (tmp_path / "target.jsonl").read_bytes().splitlines()
    assert delivered == [events[i][1] for i in (0, 2, 3)]


def test_replay_one_letter_to_redis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_service("Redis", REDIS)
    stream = unique("test:dlq:")
    config = str(
        write_config(tmp_path, f'type = "redis"\nurl = "{REDIS_URL}"\nstream = "{stream}"')
    )
    events = [make_event("room-1", index) for index in range(2)]
    ids = seed(tmp_path, [("target", events[0]), ("target", events[1])])
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert run_cli("dlq", "replay", "-c", config, "--id", str(ids[1])) == 0
        assert "replayed 1, failed 0, kept 0" in capsys.readouterr().out
        entries: Any = client.xrange(stream)
        assert [fields[b"id"].decode() for _, fields in entries] == [events[1][0]["id"]]
        assert entries[0][1][b"data"] == events[1][1]
        assert remaining(tmp_path) == [("target", events[0][0]["id"])]
        assert run_cli("dlq", "replay", "-c", config, "--id", str(ids[1])) == 1  # gone now
    finally:
        client.delete(stream, *client.keys(f"{{{stream}}}:dedup:*"))
        client.close()


def test_letter_of_an_unknown_sink_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, down_target()))
    seed(tmp_path, [("removed-sink", make_event("room-1", 1))])
    assert run_cli("dlq", "replay", "-c", config, "--all") == 1
    assert "removed-sink" in capsys.readouterr().err
    assert len(remaining(tmp_path)) == 1


def test_config_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("dlq", "list", "-c", str(tmp_path / "missing.toml")) == 2
    assert "config error" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('[dead_letters]\npath = 1\nunknown = "x"\n')
    assert run_cli("dlq", "purge", "-c", str(bad), "--yes") == 2


def test_replay_needs_id_or_all(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        run_cli("dlq", "replay", "-c", str(write_config(tmp_path, down_target())))


def test_unrouted_letters_are_routed_afresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "target.jsonl"
    config = str(write_config(tmp_path, f'type = "jsonl"\npath = "{target}"'))
    event = make_event("room-1", 1)
    seed(tmp_path, [("(unrouted)", event), ("(unrouted)", ({"id": "raw"}, b"\xff not json"))])
    assert run_cli("dlq", "replay", "-c", config, "--all") == 1
    captured = capsys.readouterr()
    assert "replayed 1, failed 1, kept 1" in captured.out
    assert jsonl_lines(tmp_path) == [event[1]]
    assert target.read_bytes().splitlines() == [event[1]]
    assert remaining(tmp_path) == [("(unrouted)", "raw")]
