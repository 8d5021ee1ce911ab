import asyncio
import threading
import time

import orjson

from receiver.accesslog import AccessLog


async def test_lines_are_buffered_then_written_in_one_go() -> None:
    written: list[bytes] = []
    log = AccessLog("json", written.append, flush_seconds=0.05)
    log.line({"status": 200, "path": "/p"})
    log.line({"status": 401, "path": "/p"})
    assert written == []
    async with asyncio.timeout(5):
        while not written:
            await asyncio.sleep(0.02)
    (chunk,) = written
    first, second = (orjson.loads(line) for line in chunk.splitlines())
    assert first["logger"] == "receiver.access" and first["status"] == 200
    assert second["status"] == 401 and second["time"].endswith("Z")


def test_text_format_and_explicit_flush() -> None:
    written: list[bytes] = []
    log = AccessLog("text", written.append)
    log.line({"status": 200, "event_id": "e1"})
    log.close()
    assert written[0].decode().endswith("INFO receiver.access callback status=200 event_id=e1\n")


async def test_a_stalled_log_pipe_never_stalls_the_loop() -> None:
    release = threading.Event()
    written: list[bytes] = []
    dropped: list[int] = []

    def stuck(data: bytes) -> None:  # a log collector that stopped reading
        release.wait()
        written.append(data)

    log = AccessLog("json", stuck, max_pending_bytes=4096, on_drop=dropped.append)
    started = time.monotonic()
    for n in range(2000):
        log.line({"status": 200, "n": n})
        log.flush()
    assert time.monotonic() - started < 5  # guards a hang: each flush would block for ever
    assert sum(dropped) > 0
    release.set()
    log.close()
    kept = [orjson.loads(line)["n"] for chunk in written for line in chunk.splitlines()]
    assert kept == sorted(kept) and len(kept) + sum(dropped) == 2000


def test_text_format_escapes_control_characters() -> None:
    written: list[bytes] = []
    log = AccessLog("text", written.append)
    log.line({"status": 200, "client": "10.0.0.1\n2026 INFO receiver.access forged\x85"})
    log.close()
    text = written[0].decode()
    assert text.count("\n") == 1 and len(text.splitlines()) == 1
    assert "client=10.0.0.1\\n2026 INFO receiver.access forged\\x85\n" in text


def test_json_lines_are_documents_in_the_log_shape() -> None:
    written: list[bytes] = []
    log = AccessLog("json", written.append)
    log.line({"status": 200, "path": "/p\n", "client": '"x"'})
    log.line({})
    log.close()
    full, empty = (orjson.loads(line) for line in written[0].splitlines())
    assert list(full) == ["time", "level", "logger", "message", "status", "path", "client"]
    assert full["path"] == "/p\n" and full["client"] == '"x"' and full["level"] == "INFO"
    assert empty == {k: full[k] for k in ("time", "level", "logger", "message")} | {
        "time": empty["time"]
    }
