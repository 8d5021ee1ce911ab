"""The HTTP protocol that serves callbacks without ASGI, on a real ``receiver serve``.

What a connection may do besides one request at a time: pipelining (answers in order,
whichever side serves each request), ``Expect: 100-continue``, HTTP/1.0, a body that is
never finished, a path only the ASGI app understands, and the headers of every answer.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from uvicorn.server import ServerState

from receiver.app import ReceiverApp
from receiver.config import load_settings
from receiver.protocol import CallbackProtocol
from receiver.server import uvicorn_config
from tests.helpers import (
    ReceiverProcess,
    callback_body,
    free_port,
    running,
    signed_headers,
    write_config,
)

PATH = "/callbacks/metastudio"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    directory = tmp_path_factory.mktemp("protocol")
    port = free_port()
    config = write_config(directory, port)
    server = (
        'graceful_shutdown_seconds = 5\nbody_timeout_seconds = 1\ntrusted_proxies = ["127.0.0.1"]'
    )
    config.write_text(config.read_text().replace("graceful_shutdown_seconds = 5", server))
    with running(config, port) as process:
        yield process


def request(
    port: int, body: bytes, *, path: str = PATH, extra: str = "", version: str = "1.1"
) -> bytes:
    headers = signed_headers(f"http://127.0.0.1:{port}{PATH}")
    lines = [f"POST {path} HTTP/{version}", f"host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"content-length: {len(body)}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_responses(
    sock: socket.socket, count: int, timeout: float = 10
) -> list[tuple[int, dict[str, str], bytes]]:
    """Read ``count`` HTTP responses (each with a content-length) off ``sock``."""
    sock.settimeout(timeout)
    data = b""
    responses = []
    while len(responses) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return responses
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(data) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        responses.append((status, headers, data[:length]))
        data = data[length:]
    return responses


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_pipelined_requests_are_answered_in_order(receiver: ReceiverProcess) -> None:
    bodies = [callback_body(reply_id=f"pipelined-{n}") for n in range(3)]
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        # a callback, a GET for the ASGI app, then two more callbacks, in one write
        data = request(receiver.port, bodies[0])
        data += f"GET /livez HTTP/1.1\r\nhost: 127.0.0.1:{receiver.port}\r\n\r\n".encode()
        data += request(receiver.port, bodies[1]) + request(receiver.port, bodies[2])
        sock.sendall(data)
        answers = read_responses(sock, 4)
    assert [status for status, _, _ in answers] == [200, 200, 200, 200]
    assert orjson.loads(answers[1][2]) == {"status": "alive"}
    ids = [orjson.loads(body)["id"] for i, (_, _, body) in enumerate(answers) if i != 1]
    assert len(set(ids)) == 3
    assert all(orjson.loads(answers[i][2])["status"] == "accepted" for i in (0, 2, 3))


def test_answer_headers(receiver: ReceiverProcess) -> None:
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(request(receiver.port, callback_body(reply_id="headers")))
        ((status, headers, body),) = read_responses(sock, 1)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert headers["x-request-id"]
    assert "date" in headers and "server" not in headers
    assert "connection" not in headers  # kept alive


def test_keep_alive_serves_many_requests_on_one_connection(receiver: ReceiverProcess) -> None:
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        for n in range(20):
            sock.sendall(request(receiver.port, callback_body(reply_id=f"keep-{n}")))
            ((status, _, body),) = read_responses(sock, 1)
            assert status == 200 and orjson.loads(body)["status"] == "accepted"


@pytest.mark.parametrize("extra", ["", "connection: keep-alive"])
def test_http_1_0_is_answered_and_closed(receiver: ReceiverProcess, extra: str) -> None:
    """As uvicorn serves HTTP/1.0: closed after the answer, even when keep-alive is asked."""
    body = callback_body(reply_id=f"one-oh-{extra}")
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(request(receiver.port, body, version="1.0", extra=extra))
        ((status, headers, _),) = read_responses(sock, 1)
        assert status == 200 and headers["connection"] == "close"
        assert closed_by_server(sock)


@pytest.mark.parametrize("path", [PATH, PATH.replace("metastudio", "meta%73tudio")])
def test_http_1_0_never_gets_100_continue(receiver: ReceiverProcess, path: str) -> None:
    """On either side (native, or the ASGI endpoint for the encoded path)."""
    body = callback_body(reply_id=f"one-oh-continue-{path}")
    data = request(receiver.port, body, path=path, version="1.0", extra="expect: 100-continue")
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(data[: len(data) - len(body)])
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(65536)  # no interim answer: the client sends its body anyway
        sock.sendall(body)
        ((status, _, answer),) = read_responses(sock, 1)
    assert status == 200 and orjson.loads(answer)["status"] == "accepted"


def test_connection_close_is_honoured(receiver: ReceiverProcess) -> None:
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(
            request(receiver.port, callback_body(reply_id="close"), extra="connection: close")
        )
        ((status, headers, _),) = read_responses(sock, 1)
        assert status == 200 and headers["connection"] == "close"
        assert closed_by_server(sock)


def test_expect_100_continue(receiver: ReceiverProcess) -> None:
    body = callback_body(reply_id="continue")
    data = request(receiver.port, body, extra="expect: 100-continue")
    head = data[: len(data) - len(body)]
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(head)
        sock.settimeout(5)
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        rest = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
        sock.sendall(body)
        if rest:  # unlikely: the final answer arrived with the interim one
            pytest.fail(f"answered before the body was sent: {rest!r}")
        ((status, _, answer),) = read_responses(sock, 1)
    assert status == 200 and orjson.loads(answer)["status"] == "accepted"


def test_refused_expect_100_continue_gets_the_error_without_continue(
    receiver: ReceiverProcess,
) -> None:
    lines = [
        f"POST {PATH} HTTP/1.1",
        f"host: 127.0.0.1:{receiver.port}",
        "content-type: application/json",
        "content-length: 10",
        "expect: 100-continue",
    ]
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        ((status, headers, answer),) = read_responses(sock, 1)
        assert status == 401 and orjson.loads(answer)["error"] == "missing_signature"
        assert headers["connection"] == "close"  # the body it declared is never read
        assert closed_by_server(sock)


def test_unfinished_body_gets_408_and_the_connection_is_closed(receiver: ReceiverProcess) -> None:
    body = callback_body(reply_id="unfinished")
    data = request(receiver.port, body)
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(data[:-5])
        started = time.monotonic()
        ((status, headers, answer),) = read_responses(sock, 1)
        assert status == 408 and orjson.loads(answer)["error"] == "body_timeout"
        assert headers["connection"] == "close"
        assert time.monotonic() - started < 4
        assert closed_by_server(sock)


def test_body_split_across_packets_is_accepted(receiver: ReceiverProcess) -> None:
    body = callback_body(reply_id="split")
    data = request(receiver.port, body)
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        for start in range(0, len(data), 50):
            sock.sendall(data[start : start + 50])
            time.sleep(0.01)
        ((status, _, answer),) = read_responses(sock, 1)
    assert status == 200 and orjson.loads(answer)["status"] == "accepted"


def test_disconnect_mid_body_is_counted_and_stores_nothing(receiver: ReceiverProcess) -> None:
    body = callback_body(reply_id="gone-mid-body")
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(request(receiver.port, body)[:-20])
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while 'reason="client_disconnected"' not in _metrics(receiver):
        assert time.monotonic() < deadline, "the disconnect was not counted"
        time.sleep(0.1)
    time.sleep(0.3)
    delivered = (receiver.config.parent / "out.jsonl").read_bytes()
    assert b"gone-mid-body" not in delivered


def test_percent_encoded_path_is_served_by_the_asgi_endpoint(receiver: ReceiverProcess) -> None:
    encoded = PATH.replace("metastudio", "meta%73tudio")
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(request(receiver.port, callback_body(reply_id="encoded"), path=encoded))
        ((status, headers, answer),) = read_responses(sock, 1)
    assert status == 200 and orjson.loads(answer)["status"] == "accepted"
    assert headers["x-request-id"]


def test_forwarded_client_in_the_access_log(receiver: ReceiverProcess) -> None:
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(
            request(
                receiver.port,
                callback_body(reply_id="forwarded"),
                extra="x-forwarded-for: 203.0.113.9, 127.0.0.1",
            )
        )
        ((status, headers, _),) = read_responses(sock, 1)
    assert status == 200
    request_id = headers["x-request-id"]
    deadline = time.monotonic() + 5
    while True:
        lines = [
            orjson.loads(line)
            for line in receiver.logs().splitlines()
            if request_id in line and '"receiver.access"' in line
        ]
        if lines:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert lines[0]["client"] == "203.0.113.9"


def _metrics(receiver: ReceiverProcess) -> str:
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        ((_, _, body),) = read_responses(sock, 1)
    return body.decode()


class FakeTransport(asyncio.Transport):
    """Collects what the protocol writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8999)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_callbacks_are_answered_without_an_asgi_task(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, 8999))
    app = ReceiverApp(settings)
    config = uvicorn_config(settings, app)
    config.load()
    assert issubclass(config.http_protocol_class, CallbackProtocol)
    await app.service.start()
    try:
        state = ServerState()
        protocol = config.http_protocol_class(config=config, server_state=state, app_state={})  # type: ignore[call-arg]
        transport = FakeTransport()
        protocol.connection_made(transport)
        protocol.data_received(request(8999, callback_body(reply_id="native")))
        assert not state.tasks  # no ASGI cycle for a callback
        async with asyncio.timeout(5):
            while b"\r\n\r\n" not in transport.written:
                await asyncio.sleep(0.005)
        head, _, body = transport.written.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and orjson.loads(body)["status"] == "accepted"
        transport.written = b""
        protocol.data_received(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
        assert len(state.tasks) == 1  # everything else goes to the ASGI app
        async with asyncio.timeout(5):
            while b"alive" not in transport.written:
                await asyncio.sleep(0.005)
        protocol.connection_lost(None)
    finally:
        await app.service.stop()


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, 8999))
    app = ReceiverApp(settings)
    config = uvicorn_config(settings, app)
    config.load()
    await app.service.start()
    try:
        protocol = config.http_protocol_class(
            config=config, server_state=ServerState(), app_state={}
        )  # type: ignore[call-arg]
        protocol.timeout_keep_alive = 0.3
        transport = FakeTransport()
        protocol.connection_made(transport)
        protocol.data_received(request(8999, callback_body(reply_id="idle")))
        async with asyncio.timeout(5):
            while b"\r\n\r\n" not in transport.written:
                await asyncio.sleep(0.005)
        await asyncio.sleep(0.15)
        protocol.data_received(request(8999, callback_body(reply_id="idle-2")))  # activity
        await asyncio.sleep(0.25)
        assert not transport.closed  # 0.3 s since the last request, not since the first
        async with asyncio.timeout(2):
            while not transport.closed:
                await asyncio.sleep(0.02)
        protocol.connection_lost(None)
    finally:
        await app.service.stop()
