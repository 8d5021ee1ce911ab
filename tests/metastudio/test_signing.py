"""SDK-HMAC-SHA256 signing: the published vectors and the official SDK's signer."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import pytest
from huaweicloudsdkcore.sdk_request import SdkRequest  # type: ignore[import-untyped]
from huaweicloudsdkcore.signer.signer import Signer  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.metastudio.signing import (
    EMPTY_BODY_SHA256,
    canonical_query,
    canonical_request,
    encode_query,
    parse_authorization,
    sign_request,
    signature,
    string_to_sign,
)

VECTOR_HOST = "service.endpoint.myhuaweicloud.com"
VECTOR_DATE = "20200608T023900Z"
VECTOR_MOMENT = datetime(2020, 6, 8, 2, 39, 0, tzinfo=UTC)
GET_SIGNATURE = "cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842"
POST_SIGNATURE = "436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f"
QUERY_VECTOR = (
    "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123"
    "&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
)


def _vector_canonical(method: str, body: bytes) -> str:
    headers = {"Host": VECTOR_HOST, "X-Sdk-Date": VECTOR_DATE}
    return canonical_request(method, "/resources", "size=1", headers, ["host", "x-sdk-date"], body)


def test_get_vector_canonical_request_and_signature() -> None:
    canonical = _vector_canonical("GET", b"")
    assert canonical == (
        f"GET\n/resources/\nsize=1\nhost:{VECTOR_HOST}\nx-sdk-date:{VECTOR_DATE}\n\n"
        f"host;x-sdk-date\n{EMPTY_BODY_SHA256}"
    )
    assert string_to_sign(VECTOR_DATE, canonical).startswith(f"SDK-HMAC-SHA256\n{VECTOR_DATE}\n")
    assert signature("SecretKey", VECTOR_DATE, canonical) == GET_SIGNATURE


def test_post_vector_signature() -> None:
    canonical = _vector_canonical("POST", b'{"name":"test","id":1}')
    assert signature("SecretKey", VECTOR_DATE, canonical) == POST_SIGNATURE


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [("GET", b"", GET_SIGNATURE), ("POST", b'{"name":"test","id":1}', POST_SIGNATURE)],
)
def test_sign_request_reproduces_vectors(method: str, body: bytes, expected: str) -> None:
    request = httpx.Request(method, f"https://{VECTOR_HOST}/resources?size=1", content=body)
    sign_request(request, "AccessKey", "SecretKey", now=VECTOR_MOMENT)
    assert request.headers["X-Sdk-Date"] == VECTOR_DATE
    assert request.headers["Authorization"] == (
        f"SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, Signature={expected}"
    )
    # The wire path keeps no trailing slash: it exists only in the canonical form.
    assert request.url.path == "/resources"


def test_query_vector_from_python_values() -> None:
    params = {
        "limit": 1,
        "enable": True,
        "test": "一 (&=?!#%.*)",
        "path": "/tmp/123",
        "multi": [1, 2, 3],
    }
    assert canonical_query(encode_query(params)) == QUERY_VECTOR
    assert encode_query(params) == QUERY_VECTOR


def test_canonical_query_sorts_and_reencodes_raw_queries() -> None:
    assert canonical_query("b=2&a=%7e&a=1&flag&c=x%20y") == "a=1&a=~&b=2&c=x%20y&flag="
    assert canonical_query("") == ""
    assert canonical_query("plus=a+b") == "plus=a%2Bb"


def test_encode_query_drops_none_and_lowercases_false() -> None:
    assert encode_query({"a": None, "b": False, "c": ("x", "y")}) == "b=false&c=x&c=y"


def test_sign_request_signs_own_headers_but_not_transport_ones() -> None:
    request = httpx.Request(
        "GET",
        "https://metastudio.cn-north-4.myhuaweicloud.com/v1/p/smart-live-jobs?limit=5",
        headers={
            "X-Project-Id": "p",
            "Content-Type": "application/json",
            "Accept-Encoding": "gzip",
            "X_Custom": "underscore names are never signed",
        },
    )
    sign_request(request, "ak", "sk", now=VECTOR_MOMENT)
    parsed = parse_authorization(request.headers["Authorization"])
    assert parsed is not None
    assert parsed[1] == ["content-type", "host", "x-project-id", "x-sdk-date"]


def test_parse_authorization() -> None:
    value = f"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature={GET_SIGNATURE}"
    assert parse_authorization(value) == ("AK1", ["host", "x-sdk-date"], GET_SIGNATURE)
    assert parse_authorization("Bearer abc") is None
    assert parse_authorization("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host") is None
    assert parse_authorization(value.replace(GET_SIGNATURE, "not-hex")) is None
    assert parse_authorization(value.replace("host;x-sdk-date", "host;;x")) is None


def _official_authorization(
    method: str, path: str, query: list[tuple[str, object]], headers: dict[str, str], body: bytes
) -> str:
    request = SdkRequest(
        method=method,
        schema="https",
        host=VECTOR_HOST,
        resource_path=path,
        query_params=query,
        header_params=dict(headers),
        body=body,
    )
    signed = Signer(SimpleNamespace(ak="AccessKey", sk="SecretKey")).sign(request)
    value: str = signed.header_params["Authorization"]
    return value


def _ours(
    method: str, path: str, query: list[tuple[str, object]], headers: dict[str, str], body: bytes
) -> str:
    params: dict[str, list[object]] = {}
    for name, value in query:
        params.setdefault(name, []).append(value)
    wire_query = encode_query(params)
    url = f"https://{VECTOR_HOST}{path}" + (f"?{wire_query}" if wire_query else "")
    extra = {k: v for k, v in headers.items() if k != "X-Sdk-Date"}
    request = httpx.Request(method, url, headers=extra, content=body)
    sign_request(request, "AccessKey", "SecretKey", now=VECTOR_MOMENT)
    return request.headers["Authorization"]


def test_matches_official_sdk_on_a_metastudio_list_request() -> None:
    headers = {
        "X-Sdk-Date": VECTOR_DATE,
        "Content-Type": "application/json",
        "X-Project-Id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "X-App-UserId": "shop-42",
    }
    query: list[tuple[str, object]] = [
        ("limit", 100),
        ("offset", 200),
        ("state", "WAITING,PROCESSING"),
        ("room_name", "直播 间 (a&b)"),
        ("create_since", "2024-05-01T00:00:00Z"),
    ]
    path = "/v1/0a1b2c3d4e5f60718293a4b5c6d7e8f9/smart-live-jobs"
    ours = _ours("GET", path, query, headers, b"")
    assert ours == _official_authorization("GET", path, query, headers, b"")


def test_matches_official_sdk_on_a_post_with_body() -> None:
    headers = {"X-Sdk-Date": VECTOR_DATE, "Content-Type": "application/json;charset=UTF-8"}
    body = '{"room":"直播","n":1}'.encode()
    path = "/v1/p/smart-live-rooms/r 1/smart-live-jobs"
    assert _ours("POST", path, [], headers, body) == _official_authorization(
        "POST", path, [], headers, body
    )


_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(
    query=st.lists(st.tuples(st.text(min_size=1, max_size=8).filter(str.isprintable), _text)),
    segment=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%"),
        min_size=1,
        max_size=10,
    ).filter(lambda text: text.strip(".") != ""),
)
def test_matches_official_sdk_on_arbitrary_queries_and_paths(
    query: list[tuple[str, str]], segment: str
) -> None:
    headers = {"X-Sdk-Date": VECTOR_DATE, "X-Project-Id": "p"}
    path = f"/v1/p/rooms/{segment}"
    ours = _ours("GET", path, list(query), headers, b"")
    assert ours == _official_authorization("GET", path, list(query), headers, b"")
