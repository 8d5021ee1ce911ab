"""Attack suite helpers: the target receiver, raw HTTP over a socket, and the verdict check."""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import orjson

from receiver.signatures import hex_time, sign
from tests.faults.support import LEDGER, PATH
from tests.helpers import KEY, ReceiverProcess

MAX_BODY = 4096
BODY_TIMEOUT = 1.0


@dataclass
class Target:
    receiver: ReceiverProcess
    url: str  # as registered, with its query
    out: Path

    @property
    def port(self) -> int:
        return self.receiver.port

    @property
    def base(self) -> str:
        return self.receiver.base

    def headers(self, key: str = KEY, when: float | None = None) -> dict[str, str]:
        stamp = hex_time(time.time() if when is None else when)
        return {
            "x-hw-mss-secret": sign(key, self.url, stamp),
            "x-hw-mss-time": stamp,
            "content-type": "application/json",
        }

    def mss_a_query(self, key: str = KEY, when: float | None = None) -> str:
        """The query MetaStudio sends with MSS_A: the registered one plus hwSecret/hwTime."""
        stamp = hex_time(time.time() if when is None else when)
        registered = self.url.split("?", 1)[1]
        proof = urlencode({"hwSecret": sign(key, self.url, stamp), "hwTime": stamp})
        return f"{registered}&{proof}"

    @property
    def target(self) -> str:
        """The request target of the registered URL: path and query."""
        return f"{PATH}?{self.url.split('?', 1)[1]}"

    def post(self, body: bytes, headers: dict[str, str], path: str = "") -> httpx.Response:
        url = f"{self.base}{path or self.target}"
        return httpx.post(url, content=body, headers=headers, timeout=10)


@dataclass
class RawResponse:
    status: int  # 0: the connection closed without an answer
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        value = orjson.loads(self.body)
        assert isinstance(value, dict)
        return value


def raw_request(
    port: int,
    data: bytes,
    *,
    then: list[tuple[float, bytes]] = (),
    timeout: float = 10,  # type: ignore[assignment]
) -> RawResponse:
    """Send ``data`` as is (then each ``(delay, bytes)`` of ``then``); read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        for delay, more in then:
            time.sleep(delay)
            with contextlib.suppress(OSError):  # the server may have answered and closed
                sock.sendall(more)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            headers = _headers(head)
            length = int(headers.get("content-length", "0") or 0)
            while len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            if head:
                status = int(head.split(b" ", 2)[1])
                return RawResponse(status, headers, body)
    return RawResponse(0, {}, b"")


def _headers(head: bytes) -> dict[str, str]:
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return headers


def request_bytes(
    port: int,
    body: bytes,
    headers: dict[str, str] | list[tuple[bytes, bytes]],
    *,
    method: str = "POST",
    target: str = PATH + "?tenant=acme",
    length: int | None = None,
) -> bytes:
    """A complete HTTP/1.1 request; header values may be raw bytes (list of pairs)."""
    pairs: list[tuple[bytes, bytes]] = (
        [(k.encode(), v.encode()) for k, v in headers.items()]
        if isinstance(headers, dict)
        else list(headers)
    )
    lines = [f"{method} {target} HTTP/1.1".encode(), f"host: 127.0.0.1:{port}".encode()]
    lines += [name + b": " + value for name, value in pairs]
    if length is not None or body:
        lines.append(f"content-length: {len(body) if length is None else length}".encode())
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def refused(status: int, code: str | None, expected_status: int, expected_code: str | None) -> None:
    """Count one forged or malformed request in the ledger and check its verdict."""
    LEDGER.add(
        attacks_tried=1,
        attacks_refused=int(400 <= status < 500),
        server_errors=int(status >= 500),
        forged_accepted=int(200 <= status < 300),
    )
    assert status < 500, f"server error {status}"
    assert (status, code) == (expected_status, expected_code), (
        f"got {status} {code}, expected {expected_status} {expected_code}"
    )


def error_code(response: httpx.Response | RawResponse) -> str | None:
    try:
        value = response.json()
    except ValueError:
        return None
    code = value.get("error") if isinstance(value, dict) else None
    return str(code) if code is not None else None
