"""Forged and malformed callbacks against a real ``receiver serve``: the right 4xx, never a 500.

The target registers ``.../callbacks/metastudio?tenant=acme`` with MSS_A and MSS_A_HEAD,
a 4 KiB body limit and a 1 s body deadline (see ``conftest.target``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.attacks.support import (
    BODY_TIMEOUT,
    MAX_BODY,
    RawResponse,
    Target,
    error_code,
    raw_request,
    refused,
    request_bytes,
)
from tests.faults.support import LEDGER, PATH
from tests.helpers import callback_body, read_jsonl


def body() -> bytes:
    return callback_body(reply_id=uuid.uuid4().hex)


def with_headers(**changes: str | None) -> Callable[[Target], httpx.Response]:
    def send(target: Target) -> httpx.Response:
        headers = target.headers()
        for name, value in changes.items():
            name = name.replace("_", "-")
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
        return target.post(body(), headers)

    return send


def signed_at(offset: float) -> Callable[[Target], httpx.Response]:
    return lambda target: target.post(body(), target.headers(when=time.time() + offset))


def mss_a(query: Callable[[str], str]) -> Callable[[Target], httpx.Response]:
    """An MSS_A request whose genuine query is rewritten by ``query``."""

    def send(target: Target) -> httpx.Response:
        changed = query(target.mss_a_query())
        return target.post(body(), {"content-type": "application/json"}, f"{PATH}?{changed}")

    return send


HEADER_CASES: dict[str, tuple[Callable[[Target], httpx.Response], int, str]] = {
    "wrong key": (
        lambda t: t.post(body(), t.headers(key="not-the-key")),
        401,
        "bad_signature",
    ),
    "no proof at all": (
        with_headers(x_hw_mss_secret=None, x_hw_mss_time=None),
        401,
        "missing_signature",
    ),
    "secret missing": (with_headers(x_hw_mss_secret=None), 401, "missing_signature"),
    "time missing": (with_headers(x_hw_mss_time=None), 401, "missing_signature"),
    "empty secret": (with_headers(x_hw_mss_secret=""), 401, "missing_signature"),
    "stale time": (signed_at(-600), 401, "signature_expired"),
    "future time": (signed_at(600), 401, "signature_from_future"),
    "secret not hex": (with_headers(x_hw_mss_secret="z" * 64), 401, "malformed_signature"),
    "secret too short": (with_headers(x_hw_mss_secret="ab" * 16), 401, "malformed_signature"),
    "secret too long": (with_headers(x_hw_mss_secret="ab" * 33), 401, "malformed_signature"),
    "time not hex": (with_headers(x_hw_mss_time="12:00"), 401, "malformed_signature"),
    "time negative": (with_headers(x_hw_mss_time="-65000000"), 401, "malformed_signature"),
    "time overlong": (with_headers(x_hw_mss_time="f" * 40), 401, "malformed_signature"),
    "time 0x prefix": (with_headers(x_hw_mss_time="0x6900aa00"), 401, "malformed_signature"),
    "MSS_A query changed": (
        mss_a(lambda q: q.replace("tenant=acme", "tenant=evil")),
        401,
        "query_mismatch",
    ),
    "MSS_A query parameter added": (mss_a(lambda q: q + "&admin=1"), 401, "query_mismatch"),
    "MSS_A query parameter dropped": (
        mss_a(lambda q: q.replace("tenant=acme&", "")),
        401,
        "query_mismatch",
    ),
    "MSS_A query parameter repeated": (mss_a(lambda q: q + "&tenant=acme"), 401, "query_mismatch"),
    "MSS_A secret not hex": (
        mss_a(lambda q: q.split("hwSecret=")[0] + "hwSecret=" + "g" * 64 + "&hwTime=1"),
        401,
        "malformed_signature",
    ),
    "MSS_A secret non-ASCII": (
        mss_a(lambda q: q.split("hwSecret=")[0] + "hwSecret=" + "%C3%A9" * 32 + "&hwTime=1"),
        401,
        "malformed_signature",
    ),
    "signed headers on another path": (
        lambda t: t.post(body(), t.headers(), "/callbacks/other?tenant=acme"),
        404,
        "not_found",
    ),
    "signed headers on the path with a slash": (
        lambda t: t.post(body(), t.headers(), PATH + "/?tenant=acme"),
        404,
        "not_found",
    ),
    "wrong content type": (with_headers(content_type="text/plain"), 415, "unsupported_media_type"),
    "form content type": (
        with_headers(content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    ),
    "xml content type": (
        with_headers(content_type="application/xml"),
        415,
        "unsupported_media_type",
    ),
}


@pytest.mark.parametrize("case", list(HEADER_CASES))
def test_forged_or_malformed_proof_is_refused(target: Target, case: str) -> None:
    send, status, code = HEADER_CASES[case]
    response = send(target)
    refused(response.status_code, error_code(response), status, code)


BODY_CASES: dict[str, tuple[bytes, int, str]] = {
    "not JSON": (b"{not json", 400, "invalid_json"),
    "empty body": (b"", 400, "invalid_json"),
    "JSON array": (b"[1, 2]", 400, "invalid_event"),
    "JSON string": (b'"REPLY_COMMAND_FINISH"', 400, "invalid_event"),
    "no event_type": (b'{"message": "{}"}', 400, "invalid_event"),
    "event_type not a string": (b'{"event_type": 5, "message": "{}"}', 400, "invalid_event"),
    "event_type too long": (
        b'{"event_type": "' + b"A" * 100 + b'", "message": "{}"}',
        400,
        "field_too_long",
    ),
    "message not JSON": (b'{"event_type": "X", "message": "{oops"}', 400, "invalid_json"),
    "message a number": (b'{"event_type": "X", "message": 5}', 400, "invalid_event"),
    "message holds a list": (b'{"event_type": "X", "message": "[1]"}', 400, "invalid_event"),
    "room_id missing": (
        b'{"event_type": "REPLY_COMMAND_FINISH", "message": "{\\"job_id\\": \\"j\\"}"}',
        400,
        "invalid_event",
    ),
    "room_id an object": (
        b'{"event_type": "REPLY_COMMAND_FINISH", '
        b'"message": "{\\"room_id\\": {}, \\"job_id\\": \\"j\\"}"}',
        400,
        "invalid_event",
    ),
    "deeply nested body": (b"[" * 2000 + b"]" * 2000, 400, "invalid_json"),
    "nested object 500 deep": (b'{"a":' * 500 + b"1" + b"}" * 500, 400, "invalid_event"),
    "deeply nested message": (
        b'{"event_type": "X", "message": "' + b"[" * 1200 + b"]" * 1200 + b'"}',
        400,
        "invalid_json",
    ),
    "invalid UTF-8": (b'{"event_type": "\xff\xfe", "message": "{}"}', 400, "invalid_json"),
    "NaN": (b'{"event_type": "X", "message": NaN}', 400, "invalid_json"),
    "duplicate keys": (
        b'{"event_type": "X", "event_type": 5, "message": "{}"}',
        400,
        "invalid_event",
    ),
}


@pytest.mark.parametrize("case", list(BODY_CASES))
def test_malformed_body_is_refused(target: Target, case: str) -> None:
    payload, status, code = BODY_CASES[case]
    response = target.post(payload, target.headers())
    refused(response.status_code, error_code(response), status, code)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_refused(target: Target, method: str) -> None:
    url = f"{target.base}{target.target}"
    response = httpx.request(method, url, headers=target.headers(), timeout=5)
    refused(response.status_code, error_code(response), 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


def test_exact_replay_is_a_duplicate_stored_once(target: Target) -> None:
    payload, headers = body(), target.headers()
    first = target.post(payload, headers)
    replays = [target.post(payload, headers) for _ in range(5)]
    assert first.status_code == 200 and first.json()["status"] == "accepted"
    for replay in replays:
        refused_as = replay.json()
        assert replay.status_code == 200 and refused_as == {
            "status": "duplicate",
            "id": first.json()["id"],
        }
    deadline = time.monotonic() + 10
    while first.json()["id"] not in {line["id"] for line in read_jsonl(target.out)}:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)
    stored = [line for line in read_jsonl(target.out) if line["id"] == first.json()["id"]]
    assert len(stored) == 1


def test_genuine_mss_a_request_is_accepted(target: Target) -> None:
    """The control for the MSS_A cases: the unchanged query passes."""
    query = target.mss_a_query()
    response = target.post(body(), {"content-type": "application/json"}, f"{PATH}?{query}")
    assert response.status_code == 200 and response.json()["status"] == "accepted"


NON_ASCII = [
    ("secret Latin-1 bytes", [(b"x-hw-mss-secret", b"\xe9" * 64)]),
    ("secret UTF-8 bytes", [(b"x-hw-mss-secret", "é".encode() * 32)]),
    ("time high bytes", [(b"x-hw-mss-time", b"\xff\xfe\xfd")]),
]


@pytest.mark.parametrize("case", [name for name, _ in NON_ASCII])
def test_non_ascii_header_values_are_refused(target: Target, case: str) -> None:
    changed = dict(NON_ASCII)[case]
    headers = {k.encode(): v.encode() for k, v in target.headers().items()}
    headers.update(changed)
    response = raw_request(target.port, request_bytes(target.port, body(), list(headers.items())))
    assert response.status != 0, "the connection closed without an answer"
    refused(response.status, error_code(response), 401, "malformed_signature")


def test_oversized_body_by_content_length(target: Target) -> None:
    response = target.post(b"x" * (MAX_BODY + 1), target.headers())
    refused(response.status_code, error_code(response), 413, "body_too_large")


def test_oversized_declared_length_without_the_body(target: Target) -> None:
    data = request_bytes(target.port, b"", target.headers(), length=10**12)
    response = raw_request(target.port, data)
    refused(response.status, error_code(response), 413, "body_too_large")


def test_oversized_chunked_body(target: Target) -> None:
    def chunks() -> object:
        for _ in range(10):
            yield b"x" * 1024

    response = httpx.post(
        f"{target.base}{target.target}",
        content=chunks(),
        headers=target.headers(),
        timeout=10,  # type: ignore[arg-type]
    )
    refused(response.status_code, error_code(response), 413, "body_too_large")


def test_chunked_body_within_limit_is_accepted(target: Target) -> None:
    payload = body()
    response = httpx.post(
        f"{target.base}{target.target}",
        content=iter([payload[:10], payload[10:]]),
        headers=target.headers(),
        timeout=10,
    )
    assert response.status_code == 200


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1e3", b"0x10"])
def test_bad_content_length_is_refused_by_the_parser_or_the_endpoint(
    target: Target, value: bytes
) -> None:
    headers = [(k.encode(), v.encode()) for k, v in target.headers().items()]
    data = request_bytes(target.port, b"", [*headers, (b"content-length", value)])
    response = raw_request(target.port, data)
    print(f"content-length {value!r}: {response.status or 'closed'}")
    LEDGER_check_parser_refusal(response)


def LEDGER_check_parser_refusal(response: RawResponse) -> None:
    """The HTTP parser refuses some requests before the app: 400/431, or just closes."""
    refused_status = 400 if response.status == 0 else response.status
    refused(refused_status, None, refused_status, None)
    assert response.status in (0, 400, 413, 431), response


def test_slow_body_gets_408_within_the_deadline(target: Target) -> None:
    payload = body()
    head = request_bytes(target.port, b"", target.headers(), length=len(payload))
    started = time.monotonic()
    # Headers, then one byte every 0.3 s: the body never completes within the deadline.
    dribble = [(0.3, payload[i : i + 1]) for i in range(12)]
    response = raw_request(target.port, head, then=dribble)
    took = time.monotonic() - started
    refused(response.status, error_code(response), 408, "body_timeout")
    assert took < BODY_TIMEOUT + 4.0, f"answered after {took:.1f} s"


def test_body_that_stops_arriving_gets_408(target: Target) -> None:
    payload = body()
    head = request_bytes(target.port, b"", target.headers(), length=len(payload) + 100)
    started = time.monotonic()
    response = raw_request(target.port, head + payload)
    refused(response.status, error_code(response), 408, "body_timeout")
    assert time.monotonic() - started < BODY_TIMEOUT + 3.0


@pytest.mark.parametrize(
    "size",
    [
        16 * 1024,
        128 * 1024,
        1024 * 1024,
    ],
)
def test_huge_headers_never_cause_a_server_error(target: Target, size: int) -> None:
    headers = [(k.encode(), v.encode()) for k, v in target.headers().items()]
    headers.append((b"x-padding", b"a" * size))
    response = raw_request(target.port, request_bytes(target.port, body(), headers))
    print(f"{size} bytes of headers: {response.status or 'closed'}")
    LEDGER.add(
        attacks_tried=1,
        attacks_refused=int(response.status in (0, 400, 431)),
        server_errors=int(response.status >= 500),
    )
    assert response.status < 500
    if size <= 16 * 1024:  # h11's default limit: a header this size may be served
        assert response.status in (0, 200, 400, 431), response
    else:  # 128 KiB and more of headers are refused (server.max_header_bytes, 16 KiB)
        assert response.status in (0, 400, 431), f"{size} bytes of headers answered {response}"
