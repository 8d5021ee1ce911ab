"""The HTTP surface in process: every acceptance and rejection with its status and code."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from receiver.app import ReceiverApp
from receiver.config import load_settings
from receiver.signatures import hex_time, sign
from tests.helpers import KEY, callback_body, read_jsonl, signed_headers, write_config

URL = "http://127.0.0.1:8999/callbacks/metastudio"
PATH = "/callbacks/metastudio"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[ReceiverApp]:
    receiver = ReceiverApp(load_settings(write_config(tmp_path, 8999)))
    await receiver.service.start()
    yield receiver
    await receiver.service.stop()


@pytest.fixture
async def client(app: ReceiverApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8999") as http:
        yield http


async def wait_for_lines(path: Path, count: int) -> list[dict[str, object]]:
    async with asyncio.timeout(10):
        while len(lines := read_jsonl(path)) < count:
            await asyncio.sleep(0.01)
    return lines


async def test_signed_callback_becomes_an_envelope(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    body = callback_body("RTMP_STREAM_STATE_CHANGE", "room-9", state="CONNECTED", stream_key="sk-1")
    response = await client.post(PATH, content=body, headers=signed_headers(URL))
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    (envelope,) = await wait_for_lines(tmp_path / "out.jsonl", 1)
    assert envelope["specversion"] == "1.0"
    assert envelope["id"] == response.json()["id"]
    assert envelope["type"] == "com.huaweicloud.metastudio.live.RTMP_STREAM_STATE_CHANGE"
    assert envelope["subject"] == envelope["roomid"] == "room-9"
    assert envelope["jobid"] == "job-room-9"
    assert envelope["source"] == URL
    assert envelope["datacontenttype"] == "application/json"
    assert str(envelope["time"]).endswith("Z")
    assert envelope["data"] == {
        "event_type": "RTMP_STREAM_STATE_CHANGE",
        "message": {
            "room_id": "room-9",
            "job_id": "job-room-9",
            "state": "CONNECTED",
            "stream_key": "[redacted]",
        },
        "job": None,
        "enrichment": {"status": "disabled"},
    }


async def test_mss_a_query_signature(client: httpx.AsyncClient) -> None:
    stamp = hex_time(time.time())
    response = await client.post(
        f"{PATH}?hwSecret={sign(KEY, URL, stamp)}&hwTime={stamp}",
        content=callback_body(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text


async def test_exact_replay_is_answered_but_stored_once(
    client: httpx.AsyncClient, app: ReceiverApp, tmp_path: Path
) -> None:
    headers = signed_headers(URL)
    body = callback_body(reply_id="r1")
    first = await client.post(PATH, content=body, headers=headers)
    again = await client.post(PATH, content=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == {"status": "duplicate", "id": first.json()["id"]}
    other = await client.post(PATH, content=callback_body(reply_id="r2"), headers=headers)
    assert other.json()["status"] == "accepted"
    await wait_for_lines(tmp_path / "out.jsonl", 2)
    await asyncio.sleep(0.1)
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 2


async def test_unknown_event_type_is_accepted_and_flagged(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    response = await client.post(
        PATH, content=callback_body("BRAND_NEW"), headers=signed_headers(URL)
    )
    assert response.status_code == 200
    (envelope,) = await wait_for_lines(tmp_path / "out.jsonl", 1)
    assert envelope["knowntype"] is False


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "code"),
    [
        (
            "POST",
            PATH,
            {"content-type": "application/json"},
            callback_body(),
            401,
            "missing_signature",
        ),
        ("POST", PATH, "wrong-signature", callback_body(), 401, "bad_signature"),
        (
            "POST",
            PATH,
            {"x-hw-mss-secret": "zz", "x-hw-mss-time": "1"},
            callback_body(),
            401,
            "malformed_signature",
        ),
        ("POST", PATH, "stale", callback_body(), 401, "signature_expired"),
        ("POST", PATH + "?extra=1", "signed", callback_body(), 401, "query_mismatch"),
        ("POST", PATH, "signed", b"{not json", 400, "invalid_json"),
        ("POST", PATH, "signed", b'{"event_type": "X"}', 400, "invalid_event"),
        (
            "POST",
            PATH,
            "signed",
            b'{"event_type":"X","message":"' + b"[" * 3000 + b'"}',
            400,
            "invalid_json",
        ),
        ("POST", PATH, "signed", b"x" * 70_000, 413, "body_too_large"),
        ("POST", PATH, "signed-text", callback_body(), 415, "unsupported_media_type"),
        ("GET", PATH, "signed", b"", 405, "method_not_allowed"),
        ("PUT", PATH, "signed", callback_body(), 405, "method_not_allowed"),
        ("GET", "/nowhere", {}, b"", 404, "not_found"),
        ("POST", "/livez", {}, b"", 405, "method_not_allowed"),
    ],
)
async def test_rejections(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: object,
    body: bytes,
    status: int,
    code: str,
) -> None:
    if headers == "signed":
        headers = signed_headers(URL)
    elif headers == "wrong-signature":
        headers = {"x-hw-mss-secret": "0" * 64, "x-hw-mss-time": hex_time(time.time())}
    elif headers == "stale":
        headers = signed_headers(URL, when=time.time() - 600)
    elif headers == "signed-text":
        headers = signed_headers(URL) | {"content-type": "text/plain"}
    response = await client.request(method, path, content=body, headers=headers)  # type: ignore[arg-type]
    assert response.status_code == status
    payload = response.json()
    assert payload["error"] == code and payload["detail"]


async def test_content_length_over_limit_is_refused_before_reading(
    client: httpx.AsyncClient,
) -> None:
    headers = signed_headers(URL) | {"content-length": "999999"}
    response = await client.post(PATH, content=b"{}", headers=headers)
    assert response.status_code == 413


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/livez")).json() == {"status": "alive"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["intake"] is True
    await client.post(PATH, content=callback_body(), headers=signed_headers(URL))
    await client.post(PATH, content=callback_body(), headers={"content-type": "application/json"})
    text = (await client.get("/metrics")).text
    assert 'receiver_callbacks_total{outcome="accepted",reason="ok"} 1.0' in text
    assert 'receiver_callbacks_total{outcome="rejected",reason="missing_signature"} 1.0' in text
    assert (
        'receiver_signature_matches_total{auth_type="MSS_A_HEAD",rule="host_path_query"} 1.0'
        in text
    )


async def test_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert PATH in document["paths"] and "post" in document["paths"][PATH]


async def test_full_intake_answers_503_with_retry_after(tmp_path: Path) -> None:
    config = write_config(tmp_path, 8999, extra="")
    config.write_text(config.read_text().replace("[intake]\n", "[intake]\nmax_pending = 1\n"))
    app = ReceiverApp(load_settings(config))
    await app.service.intake.start()  # intake only: nothing drains it
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8999"
    ) as http:
        first = await http.post(
            PATH, content=callback_body(reply_id="1"), headers=signed_headers(URL)
        )
        second = await http.post(
            PATH, content=callback_body(reply_id="2"), headers=signed_headers(URL)
        )
    assert first.status_code == 200
    assert second.status_code == 503 and second.headers["retry-after"]
    assert second.json()["error"] == "intake_full"
    await app.service.intake.close()


async def test_access_log_never_shows_the_signature(
    client: httpx.AsyncClient,
    app: ReceiverApp,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    stamp = hex_time(time.time())
    secret = sign(KEY, URL, stamp)
    with caplog.at_level("INFO"):
        response = await client.post(
            f"{PATH}?hwSecret={secret}&hwTime={stamp}",
            content=callback_body(),
            headers={"content-type": "application/json"},
        )
    assert app.service.access_log is not None
    app.service.access_log.close()  # flushed and written out by its thread
    (line,) = [
        orjson.loads(text)
        for text in capfd.readouterr().err.splitlines()
        if "receiver.access" in text
    ]
    assert line["path"] == PATH and line["status"] == 200
    assert line["event_id"] == response.json()["id"]
    assert line["request_id"] == response.headers["x-request-id"]
    ours = [r for r in caplog.records if r.name.startswith(("receiver", "uvicorn"))]
    assert secret not in str(line) and all(secret not in str(r.__dict__) for r in ours)


async def test_key_file_rotation_without_restart(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("first-key\n")
    config = write_config(tmp_path, 8999, auth=f'type = "MSS_A_HEAD"\nkeys_file = "{keys}"\n')
    app = ReceiverApp(load_settings(config))
    await app.service.start()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8999"
    ) as http:
        assert (
            await http.post(
                PATH, content=callback_body(reply_id="a"), headers=signed_headers(URL, "first-key")
            )
        ).status_code == 200
        assert (
            await http.post(
                PATH, content=callback_body(reply_id="b"), headers=signed_headers(URL, "second-key")
            )
        ).status_code == 401
        keys.write_text("second-key\n")
        assert app.service.reload_keys()
        assert (
            await http.post(
                PATH, content=callback_body(reply_id="c"), headers=signed_headers(URL, "second-key")
            )
        ).status_code == 200
        assert (
            await http.post(
                PATH, content=callback_body(reply_id="d"), headers=signed_headers(URL, "first-key")
            )
        ).status_code == 401
    await app.service.stop()


def test_rfc3339_matches_datetime() -> None:
    from datetime import UTC, datetime

    from receiver.envelope import rfc3339

    moments = (0.0, 1.9999, 1_750_000_000.123, 1_750_000_000.9995, 1_750_000_000.9999996)
    for moment in (*moments, 2_000_000_000.5, 1.5, 2_000_000_000.25):
        expected = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
        assert rfc3339(moment) == expected.replace("+00:00", "Z")
