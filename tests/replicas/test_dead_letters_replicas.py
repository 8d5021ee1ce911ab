"""Dead letters outlive the replica that wrote them: three ``receiver serve`` processes on
the real NATS and Redis, the writers ``kill -9``ed and their data directories deleted; the
letters are listed and replayed from another process, and two replays at once deliver
each letter once."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.console.test_browser import Hook
from tests.helpers import ReceiverProcess, callback_body, free_port, signed_headers
from tests.replicas.common import broker_stream, replica_head

LETTERS = 12


def config(directory: Path, index: int, port: int, backend: str, stream: str, hook: int) -> Path:
    data = directory / f"data-{index}"
    data.mkdir(exist_ok=True)
    head = replica_head(index, port, backend, stream, "partitions = 6")
    text = f"""{head}
[dead_letters]
path = "{data / "dead.db"}"

[[sinks]]
name = "hook"
type = "http"
url = "http://127.0.0.1:{hook}/hook"
max_attempts = 1

[[routes]]
sinks = ["hook"]
"""
    path = directory / f"receiver-{index}.toml"
    path.write_text(text)
    return path


def dlq(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver.cli", "dlq", *args, "-c", str(config_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(params=["redis", "nats"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    yield from broker_stream(request.param, "test-dlq-")


def test_letters_outlive_their_writers_and_replay_once(
    tmp_path: Path, backend: tuple[str, str]
) -> None:
    kind, stream = backend
    hook_port = free_port()
    ports = [free_port() for _ in range(3)]
    configs = [config(tmp_path, i, p, kind, stream, hook_port) for i, p in enumerate(ports)]
    processes = [ReceiverProcess(c, p) for c, p in zip(configs, ports, strict=True)]
    hook = Hook(hook_port)
    try:
        for process in processes[:2]:
            process.start()
        url = processes[0].base + "/callbacks/metastudio"
        for index in range(LETTERS):  # the hook is down: every event is dead-lettered
            body = callback_body("REPLY_COMMAND_FINISH", f"room-{index}", reply_id=str(index))
            answer = httpx.post(url, content=body, headers=signed_headers(url))
            assert answer.status_code == 200
        for _ in range(100):
            listed = dlq(configs[2], "list")
            if listed.stdout.count("\n") >= LETTERS:
                break
            threading.Event().wait(0.2)
        for index in (0, 1):  # the writers die, and their volumes with them
            processes[index].kill()
            shutil.rmtree(tmp_path / f"data-{index}")
        threading.Event().wait(1.0)  # a store acknowledged as the writer died lands too
        listed = dlq(configs[2], "list")
        assert listed.returncode == 0, listed.stderr
        letters = [orjson.loads(line) for line in listed.stdout.splitlines()]
        # At least once: an event handed over between replicas may be dead-lettered twice.
        assert len({letter["event_id"] for letter in letters}) == LETTERS
        hook.start()
        replays = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "receiver.cli",
                    "dlq",
                    "replay",
                    "--all",
                    "-c",
                    str(configs[2]),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [replay.communicate(timeout=60) for replay in replays]
        replayed = [int(re.search(r"replayed (\d+)", out).group(1)) for out, _ in outputs]  # type: ignore[union-attr]
        # Two replays at once: each letter published once, by one of them.
        assert sum(replayed) == len(hook.received) == len(letters), outputs
        assert dlq(configs[2], "list").stdout.strip() == ""
    finally:
        hook.stop()
        for process in processes:
            if process.process is not None and process.process.poll() is None:
                process.terminate()
