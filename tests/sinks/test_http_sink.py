"""HttpSink against a real Starlette app served by uvicorn, and the webhook signature."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.envelope import MEDIA_TYPE
from receiver.sink_settings import HttpSinkSettings
from receiver.sinks.base import DeliveryError
from receiver.sinks.common import redact_url, scrub
from receiver.sinks.factory import build_sink
from receiver.sinks.http import HttpSink, sign_webhook, verify_webhook
from tests.brokers import free_port, make_event
from tests.sinks.consumer import binary_event, read_http, read_http_binary, traced_event

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Endpoint:
    url: str
    secret: str = SECRET
    requests: list[Received] = field(default_factory=list)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    """A webhook receiver: ``POST /status/<code>`` records the request and answers ``code``."""
    state = Endpoint(url="")

    async def hook(request: Request) -> Response:
        body = await request.body()
        verified = verify_webhook(state.secret, request.headers, body)
        state.requests.append(Received(dict(request.headers), body, verified))
        return Response(status_code=request.path_params["status"])

    app = Starlette(routes=[Route("/status/{status:int}", hook, methods=["POST"])])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def http_settings(url: str, secret: str | None = SECRET) -> HttpSinkSettings:
    return HttpSinkSettings(
        name="hook",
        type="http",
        url=url,
        secret=SecretStr(secret) if secret is not None else None,
        timeout_seconds=5.0,
    )


async def test_delivers_a_signed_request_that_verifies(endpoint: Endpoint) -> None:
    endpoint.requests.clear()
    sink = build_sink(http_settings(endpoint.url + "/status/204"))
    envelope, body = make_event("room-1", 1)
    await sink.start()
    try:
        await sink.publish(envelope, body)
    finally:
        await sink.close()
    [request] = endpoint.requests
    assert request.verified
    assert request.body == body
    assert request.headers["content-type"] == MEDIA_TYPE
    assert request.headers["webhook-id"] == envelope["id"]
    assert request.headers["webhook-signature"].startswith("v1,")
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 600


async def test_a_cloudevents_sdk_reads_the_request_in_structured_mode(
    endpoint: Endpoint,
) -> None:
    endpoint.requests.clear()
    sink = HttpSink(http_settings(endpoint.url + "/status/204"))
    envelope, body = traced_event("room-1", 1)
    try:
        await sink.publish(envelope, body)
    finally:
        await sink.close()
    [request] = endpoint.requests
    read_http(request.headers, request.body, envelope)


async def test_a_raw_string_secret_signs_with_its_utf8_bytes(endpoint: Endpoint) -> None:
    endpoint.requests.clear()
    endpoint.secret = "plain shared secret"
    sink = HttpSink(http_settings(endpoint.url + "/status/200", secret="plain shared secret"))
    try:
        await sink.publish(*make_event("room-1", 1))
    finally:
        await sink.close()
        endpoint.secret = SECRET
    assert endpoint.requests[0].verified


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (503, True), (429, True), (408, True), (400, False), (404, False)],
)
async def test_error_statuses(endpoint: Endpoint, status: int, retryable: bool) -> None:
    sink = HttpSink(http_settings(f"{endpoint.url}/status/{status}"))
    try:
        with pytest.raises(DeliveryError) as caught:
            await sink.publish(*make_event("room-1", 1))
    finally:
        await sink.close()
    assert caught.value.retryable is retryable
    assert str(status) in caught.value.detail
    assert sink.is_ready()


async def test_transport_error_is_retryable_and_hides_credentials() -> None:
    url = f"http://user:s3cret-pass@127.0.0.1:{free_port()}/hook?token=t0ken-value"
    sink = HttpSink(http_settings(url))
    try:
        with pytest.raises(DeliveryError) as caught:
            await sink.publish(*make_event("room-1", 1))
    finally:
        await sink.close()
    assert caught.value.retryable
    assert not sink.is_ready()
    for text in (caught.value.detail, repr(sink)):
        assert "s3cret-pass" not in text
        assert "t0ken-value" not in text
        assert SECRET not in text


def test_signature_matches_the_standard_webhooks_example() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = sign_webhook(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_rejects_tampering_wrong_secret_and_stale_time() -> None:
    body = b'{"a": 1}'
    now = 1_700_000_000
    headers = {
        "Webhook-Id": "evt-1",
        "Webhook-Timestamp": str(now),
        "Webhook-Signature": "v1,bogus " + sign_webhook(SECRET, "evt-1", now, body),
    }
    assert verify_webhook(SECRET, headers, body, now=now + 10)
    assert not verify_webhook(SECRET, headers, body + b" ", now=now)
    assert not verify_webhook(
        "whsec_" + base64.b64encode(b"other").decode(), headers, body, now=now
    )
    assert not verify_webhook(SECRET, headers, body, now=now + 3600)
    assert verify_webhook(SECRET, headers, body, now=now + 3600, tolerance_seconds=None)
    assert not verify_webhook(SECRET, {**headers, "Webhook-Timestamp": "soon"}, body, now=now)
    assert not verify_webhook(SECRET, {}, body)


def test_malformed_whsec_secret_is_a_setting_error() -> None:
    with pytest.raises(ValueError, match="base64"):
        HttpSink(http_settings("http://127.0.0.1:1/", secret="whsec_not base64!"))


def test_redaction_helpers() -> None:
    assert redact_url("amqp://guest:pw@host:5672/vh") == "amqp://***@host:5672/vh"
    assert redact_url("nats://token@127.0.0.1:4222") == "nats://***@127.0.0.1:4222"
    assert redact_url("https://h/p?sig=abc") == "https://h/p?***"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    text = "failed amqp://guest:pw-123@host/ with pw-123"
    assert "pw-123" not in scrub(text, "amqp://guest:pw-123@host/")


ROOM = "直播间 1"  # percent-encoded in ce- headers


def expected_body(envelope: dict[str, Any], payload: str) -> Any:
    return envelope["data"]["message"] if payload == "message" else envelope["data"]


@pytest.mark.parametrize("payload", ["data", "message"])
async def test_binary_mode_sends_the_data_with_ce_headers_and_a_signature_over_it(
    endpoint: Endpoint, payload: str
) -> None:
    endpoint.requests.clear()
    settings = http_settings(endpoint.url + "/status/204").model_copy(update={"payload": payload})
    sink = HttpSink(settings)
    envelope, body = binary_event(ROOM, 1)
    try:
        await sink.publish(envelope, body)
    finally:
        await sink.close()
    [request] = endpoint.requests
    assert request.verified  # Standard Webhooks: the signature covers the body sent
    assert orjson.loads(request.body) == expected_body(envelope, payload)
    assert request.headers["webhook-id"] == envelope["id"]
    read_http_binary(request.headers, request.body, envelope, expected_body(envelope, payload))
