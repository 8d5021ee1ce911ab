"""Limits before authentication, on a real ``receiver serve`` over raw sockets.

The request target and headers are bounded as they arrive (414, 431), a head must be
complete within the header deadline (408), a refusal before the body is complete closes
the connection (nothing more is read), and uvicorn's concurrency limit answers 503.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import orjson
import pytest

from tests.helpers import (
    ReceiverProcess,
    callback_body,
    free_port,
    running,
    signed_headers,
    write_config,
)
from tests.test_protocol import closed_by_server, read_responses, request

PATH = "/callbacks/metastudio"
MAX_URL = 1024
MAX_HEADERS = 2048
HEADER_TIMEOUT = 1.0
OFFERED = 24 * 1024 * 1024  # what a client tries to send (the 13 MB request line)
READ_BOUND = 12 * 1024 * 1024  # the socket buffers on both sides, with room to spare


def _serve(tmp_path_factory: pytest.TempPathFactory, server: str) -> Iterator[ReceiverProcess]:
    directory = tmp_path_factory.mktemp("limits")
    port = free_port()
    config = write_config(directory, port)
    lines = f"graceful_shutdown_seconds = 5\n{server}"
    config.write_text(config.read_text().replace("graceful_shutdown_seconds = 5", lines))
    with running(config, port) as process:
        yield process


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    yield from _serve(
        tmp_path_factory,
        f"max_url_bytes = {MAX_URL}\nmax_header_bytes = {MAX_HEADERS}\n"
        f"header_timeout_seconds = {HEADER_TIMEOUT}\nbody_timeout_seconds = 1\n"
        "max_body_bytes = 4096",
    )


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    return sock


def sent_before_refusal(sock: socket.socket, first: bytes, filler: bytes) -> int:
    """Send ``first``, then ``filler`` repeatedly up to OFFERED bytes; bytes sent until the
    server stopped reading (reset the connection) or OFFERED if it read them all."""
    sock.settimeout(10)
    sent = 0
    with contextlib.suppress(OSError):
        sock.sendall(first)
        sent = len(first)
        while sent < OFFERED:
            sock.sendall(filler)
            sent += len(filler)
    return sent


def head(port: int, target: str = PATH, extra: list[str] | None = None) -> list[str]:
    headers = signed_headers(f"http://127.0.0.1:{port}{PATH}")
    lines = [f"POST {target} HTTP/1.1", f"host: 127.0.0.1:{port}"]
    return lines + [f"{name}: {value}" for name, value in headers.items()] + (extra or [])


def test_url_over_the_limit_gets_414_and_close(receiver: ReceiverProcess) -> None:
    with connect(receiver.port) as sock:
        sock.sendall(f"POST {PATH}?pad={'a' * MAX_URL}".encode())  # the line is never ended
        ((status, headers, body),) = read_responses(sock, 1)
        assert status == 414 and orjson.loads(body)["error"] == "url_too_long"
        assert headers["connection"] == "close"
        assert closed_by_server(sock)


def test_an_endless_request_line_is_not_read(receiver: ReceiverProcess) -> None:
    with connect(receiver.port) as sock:
        sent = sent_before_refusal(sock, f"GET {PATH}?".encode(), b"a" * 65536)
    assert sent < READ_BOUND, f"{sent} bytes of request line were read"


def test_headers_over_the_limit_get_431_and_close(receiver: ReceiverProcess) -> None:
    padding = [f"x-pad-{n}: {'b' * 100}" for n in range(MAX_HEADERS // 100)]
    data = "\r\n".join(head(receiver.port, extra=padding)) + "\r\n"  # the head never ends
    with connect(receiver.port) as sock:
        sock.sendall(data.encode())
        ((status, headers, body),) = read_responses(sock, 1)
        assert status == 431 and orjson.loads(body)["error"] == "headers_too_large"
        assert headers["connection"] == "close"
        assert closed_by_server(sock)


def test_a_header_over_the_limit_gets_431_before_it_ends(receiver: ReceiverProcess) -> None:
    """httptools hands a header over only once it is complete: the raw head is counted."""
    data = "\r\n".join(head(receiver.port)) + "\r\nx-pad: "
    with connect(receiver.port) as sock:
        sock.sendall(data.encode())
        time.sleep(0.1)  # the head has begun in a read of its own
        sock.sendall(b"c" * (MAX_URL + 2 * MAX_HEADERS + 1))
        ((status, headers, body),) = read_responses(sock, 1)
        assert status == 431 and orjson.loads(body)["error"] == "headers_too_large"
        assert headers["connection"] == "close"
        assert closed_by_server(sock)


def test_an_endless_header_is_not_read(receiver: ReceiverProcess) -> None:
    first = ("\r\n".join(head(receiver.port)) + "\r\nx-pad: ").encode()
    with connect(receiver.port) as sock:
        sent = sent_before_refusal(sock, first, b"c" * 65536)
    assert sent < READ_BOUND, f"{sent} bytes of one header were read"


def test_heads_within_the_limits_are_served(receiver: ReceiverProcess) -> None:
    padding = f"x-pad: {'d' * (MAX_HEADERS - 600)}"
    callback = request(receiver.port, callback_body(reply_id="within-limits"), extra=padding)
    health = f"GET /livez?pad={'e' * (MAX_URL - 200)} HTTP/1.1\r\nhost: x\r\n{padding}\r\n\r\n"
    with connect(receiver.port) as sock:
        for data in (callback, health.encode()):
            for start in range(0, len(data), 100):  # in many reads: none is counted twice
                sock.sendall(data[start : start + 100])
                time.sleep(0.002)
            ((status, _, _),) = read_responses(sock, 1)
            assert status == 200


def test_slow_headers_get_408_within_the_deadline(receiver: ReceiverProcess) -> None:
    with connect(receiver.port) as sock:
        started = time.monotonic()
        sock.sendall(f"POST {PATH} HTTP/1.1\r\n".encode())
        sock.settimeout(0.25)
        answered = b""
        for _ in range(40):  # one byte of a header name every 0.25 s: the head never ends
            with contextlib.suppress(OSError):
                sock.sendall(b"x")
            with contextlib.suppress(TimeoutError):
                answered += sock.recv(65536)
            if answered:
                break
        took = time.monotonic() - started
        assert answered.startswith(b"HTTP/1.1 408 "), answered
        assert b"header_timeout" in answered and b"connection: close" in answered
        assert took < HEADER_TIMEOUT + 1.5, f"answered after {took:.1f} s"
        assert closed_by_server(sock)


def test_a_silent_connection_is_closed_at_the_deadline(receiver: ReceiverProcess) -> None:
    with connect(receiver.port) as sock:
        started = time.monotonic()
        sock.settimeout(HEADER_TIMEOUT + 3)
        assert sock.recv(65536) == b""  # closed, with nothing to answer
        assert time.monotonic() - started < HEADER_TIMEOUT + 1.5


def test_the_first_head_deadline_runs_from_the_connection(receiver: ReceiverProcess) -> None:
    with connect(receiver.port) as sock:
        started = time.monotonic()
        time.sleep(HEADER_TIMEOUT * 0.8)  # silent at first, then the head begins
        sock.sendall(f"POST {PATH} HTTP/1.1\r\n".encode())
        ((status, _, body),) = read_responses(sock, 1, timeout=HEADER_TIMEOUT + 3)
        took = time.monotonic() - started
    assert status == 408 and orjson.loads(body)["error"] == "header_timeout"
    assert took < HEADER_TIMEOUT * 1.7, f"answered {took:.1f} s after the connection"


def test_slow_headers_on_a_kept_alive_connection_get_408(receiver: ReceiverProcess) -> None:
    with connect(receiver.port) as sock:
        sock.sendall(request(receiver.port, callback_body(reply_id="before-slow-head")))
        ((status, _, _),) = read_responses(sock, 1)
        assert status == 200
        started = time.monotonic()
        sock.sendall(f"POST {PATH} HTTP/1.1\r\nhost: x\r\n".encode())
        ((status, headers, body),) = read_responses(sock, 1, timeout=HEADER_TIMEOUT + 3)
        assert status == 408 and orjson.loads(body)["error"] == "header_timeout"
        assert headers["connection"] == "close"
        assert time.monotonic() - started < HEADER_TIMEOUT + 1.5
        assert closed_by_server(sock)


@pytest.mark.parametrize("target", [PATH, PATH.replace("metastudio", "meta%73tudio")])
def test_a_declared_huge_body_gets_413_and_is_not_read(
    receiver: ReceiverProcess, target: str
) -> None:
    """On either side: the native path, or the ASGI endpoint for the encoded path."""
    extra = [f"content-length: {1 << 30}"]
    data = "\r\n".join(head(receiver.port, target, extra)) + "\r\n\r\n"
    with connect(receiver.port) as sock:
        sock.sendall(data.encode())
        ((status, headers, body),) = read_responses(sock, 1)
        assert status == 413 and orjson.loads(body)["error"] == "body_too_large"
        assert headers["connection"] == "close"
        sent = sent_before_refusal(sock, b"", b"f" * 65536)
    assert sent < READ_BOUND, f"{sent} bytes of a refused body were read"


def test_a_chunked_body_over_the_limit_gets_413_and_is_not_read(
    receiver: ReceiverProcess,
) -> None:
    data = "\r\n".join(head(receiver.port, extra=["transfer-encoding: chunked"])) + "\r\n\r\n"
    chunk = b"10000\r\n" + b"g" * 65536 + b"\r\n"
    with connect(receiver.port) as sock:
        reader_saw: list[bytes] = []
        reader = threading.Thread(target=lambda: reader_saw.append(_read_all(sock)))
        reader.start()
        sent = sent_before_refusal(sock, data.encode(), chunk)
        reader.join(10)
    assert sent < READ_BOUND, f"{sent} bytes of a body over the limit were read"
    assert not reader_saw or not reader_saw[0] or reader_saw[0].startswith(b"HTTP/1.1 413 ")


def _read_all(sock: socket.socket) -> bytes:
    received = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    yield from _serve(tmp_path_factory, "limit_concurrency = 3")


@pytest.mark.parametrize("target", [PATH, "/livez"])
def test_requests_over_the_concurrency_limit_get_503(limited: ReceiverProcess, target: str) -> None:
    """uvicorn's rule: 503 once the connections reach the limit (this one included)."""
    body = callback_body(reply_id=f"over-limit-{target}")
    data = (
        request(limited.port, body)
        if target == PATH
        else f"GET {target} HTTP/1.1\r\nhost: x\r\n\r\n".encode()
    )
    with connect(limited.port), connect(limited.port), connect(limited.port) as sock:
        time.sleep(0.2)  # all three are accepted
        sock.sendall(data)
        ((status, headers, _),) = read_responses(sock, 1)
        assert status == 503 and headers["connection"] == "close"
        assert closed_by_server(sock)
    time.sleep(0.2)
    with connect(limited.port) as sock:  # under the limit again
        sock.sendall(data)
        ((status, _, _),) = read_responses(sock, 1)
        assert status == 200
