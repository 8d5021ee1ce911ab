"""The receiver as a real process on loopback: HTTPS, kill -9 and SIGTERM."""

import asyncio
import gc
import ssl
import time
from pathlib import Path

import httpx
import pytest
import trustme

from receiver.app import ReceiverApp
from receiver.config import load_settings
from receiver.server import graceful_timeout, tune_gc, uvicorn_config
from tests.helpers import (
    ReceiverProcess,
    callback_body,
    free_port,
    read_jsonl,
    running,
    signed_headers,
    write_config,
)

PATH = "/callbacks/metastudio"


@pytest.fixture
def tls(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return ca, cert_path, key_path


async def wait_lines(path: Path, count: int, timeout: float = 20) -> list[dict[str, object]]:
    async with asyncio.timeout(timeout):
        while len(lines := read_jsonl(path)) < count:
            await asyncio.sleep(0.05)
    return lines


async def test_https_signed_callbacks_reach_the_sink(
    tmp_path: Path, tls: tuple[trustme.CA, Path, Path]
) -> None:
    ca, cert, key = tls
    port = free_port()
    config = write_config(tmp_path, port, tls=(cert, key))
    url = f"https://127.0.0.1:{port}{PATH}"
    with (
        ca.cert_pem.tempfile() as ca_file,
        running(
            config, port, scheme="https", verify=ssl.create_default_context(cafile=ca_file)
        ) as receiver,
    ):
        async with httpx.AsyncClient(verify=receiver.verify, base_url=receiver.base) as http:  # type: ignore[arg-type]
            responses = [
                await http.post(
                    PATH, content=callback_body(reply_id=str(n)), headers=signed_headers(url)
                )
                for n in range(10)
            ]
        assert [r.status_code for r in responses] == [200] * 10
        lines = await wait_lines(tmp_path / "out.jsonl", 10)
        assert {line["id"] for line in lines} == {r.json()["id"] for r in responses}
        assert "hwSecret" not in receiver.logs() and "x-hw-mss-secret" not in receiver.logs()


async def test_kill_9_loses_no_acknowledged_event(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    url = f"http://127.0.0.1:{port}{PATH}"
    receiver = ReceiverProcess(config, port)
    receiver.start()
    acknowledged: set[str] = set()

    async def post(http: httpx.AsyncClient, n: int) -> None:
        try:
            response = await http.post(
                PATH,
                content=callback_body(room=f"room-{n % 7}", reply_id=str(n)),
                headers=signed_headers(url),
            )
        except httpx.HTTPError:
            return
        if response.status_code == 200:
            acknowledged.add(response.json()["id"])

    async with httpx.AsyncClient(base_url=receiver.base, timeout=5) as http:
        sender = asyncio.gather(*(post(http, n) for n in range(400)))
        while len(acknowledged) < 100:
            await asyncio.sleep(0.005)
        receiver.kill()
        await sender
    assert len(acknowledged) >= 100
    receiver.start()
    try:
        lines = await wait_lines(tmp_path / "out.jsonl", len(acknowledged))
        await asyncio.sleep(0.5)
        delivered = [line["id"] for line in read_jsonl(tmp_path / "out.jsonl")]
        assert acknowledged <= set(delivered)
        assert len(delivered) == len(set(delivered)), "an event reached the sink twice"
        assert len(lines) >= len(acknowledged)
    finally:
        receiver.terminate()


async def test_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    url = f"http://127.0.0.1:{port}{PATH}"
    receiver = ReceiverProcess(config, port)
    receiver.start()
    async with httpx.AsyncClient(base_url=receiver.base) as http:
        for n in range(20):
            assert (
                await http.post(
                    PATH, content=callback_body(reply_id=str(n)), headers=signed_headers(url)
                )
            ).status_code == 200
    started = time.monotonic()
    assert receiver.terminate() == 0
    assert time.monotonic() - started < 30
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 20
    assert '"receiver stopped"' in receiver.logs()


def test_tune_gc_freezes_start_up_objects_and_widens_the_young_generation() -> None:
    threshold = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold()[0] == 50_000
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.parametrize(("seconds", "timeout"), [(0.0, 0), (0.2, 1), (1.0, 1), (2.5, 3)])
def test_a_drain_below_a_second_is_still_bounded(seconds: float, timeout: int) -> None:
    assert graceful_timeout(seconds) == timeout


@pytest.mark.parametrize(("setting", "limit"), [(0, None), (64, 64)])
def test_limit_concurrency_reaches_uvicorn(tmp_path: Path, setting: int, limit: int | None) -> None:
    settings = load_settings(write_config(tmp_path, 8999), server={"limit_concurrency": setting})
    assert uvicorn_config(settings, ReceiverApp(settings)).limit_concurrency == limit
