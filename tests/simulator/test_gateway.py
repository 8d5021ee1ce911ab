"""The simulated gateway: AK/SK and token authentication, IAM, fault injection."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from receiver.metastudio.signing import sign_request
from receiver.simulator import TokenBucket, create_api_app

from .conftest import AK, PROJECT_ID, SK, TOKEN, serve

LIST = f"/v1/{PROJECT_ID}/smart-live-jobs"
PASSWORD_IDENTITY = {
    "auth": {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": "ops", "password": "pw", "domain": {"name": "tenant"}}},
        },
        "scope": {"project": {"id": PROJECT_ID}},
    }
}


@pytest.fixture(scope="module")
def base_url(jobs: list[dict[str, Any]]) -> Iterator[str]:
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK, token=TOKEN)) as url:
        yield url


def signed(
    base_url: str,
    path: str = LIST,
    *,
    ak: str = AK,
    sk: str = SK,
    project_id: str | None = PROJECT_ID,
    now: datetime | None = None,
    params: dict[str, Any] | None = None,
) -> httpx.Request:
    headers = {"X-Project-Id": project_id} if project_id else {}
    request = httpx.Request("GET", base_url + path, params=params, headers=headers)
    sign_request(request, ak, sk, now=now)
    return request


def send(request: httpx.Request) -> httpx.Response:
    with httpx.Client() as http:
        return http.send(request)


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code
    assert body["error_msg"]
    assert body["request_id"] == response.headers["X-Request-Id"]


def test_signed_request_passes(base_url: str) -> None:
    params = {"room_name": "直播间 spring sale", "state": "PROCESSING,WAITING", "limit": 3}
    response = send(signed(base_url, params=params))
    assert response.status_code == 200, response.text


def test_tampered_signature(base_url: str) -> None:
    request = signed(base_url)
    value = request.headers["Authorization"]
    last = value[-1]
    request.headers["Authorization"] = value[:-1] + ("0" if last != "0" else "1")
    assert_refused(send(request), 401, "APIGW.0301")


def test_tampered_query(base_url: str) -> None:
    request = signed(base_url, params={"limit": 5})
    request.url = request.url.copy_with(query=b"limit=6")
    assert_refused(send(request), 401, "APIGW.0301")


def test_wrong_secret_key_and_unknown_access_key(base_url: str) -> None:
    assert_refused(send(signed(base_url, sk="not-the-sk")), 401, "APIGW.0301")
    assert_refused(send(signed(base_url, ak="OTHERAK")), 401, "APIGW.0301")


@pytest.mark.parametrize("minutes", [-16, 16])
def test_clock_skew_over_15_minutes(base_url: str, minutes: int) -> None:
    when = datetime.now(UTC) + timedelta(minutes=minutes)
    assert_refused(send(signed(base_url, now=when)), 401, "APIGW.0303")


def test_clock_skew_within_15_minutes(base_url: str) -> None:
    when = datetime.now(UTC) - timedelta(minutes=10)
    assert send(signed(base_url, now=when)).status_code == 200


def test_missing_authentication(base_url: str) -> None:
    assert_refused(httpx.get(base_url + LIST), 401, "APIGW.0301")
    garbled = httpx.get(base_url + LIST, headers={"Authorization": "Basic abc"})
    assert_refused(garbled, 401, "APIGW.0301")


def test_project_id_header(base_url: str) -> None:
    assert_refused(send(signed(base_url, project_id=None)), 401, "APIGW.0301")
    assert_refused(send(signed(base_url, project_id="f" * 32)), 401, "APIGW.0301")


def test_token_from_fake_iam(base_url: str) -> None:
    issued = httpx.post(f"{base_url}/v3/auth/tokens", json=PASSWORD_IDENTITY)
    assert issued.status_code == 201
    token = issued.headers["X-Subject-Token"]
    assert token == TOKEN
    expires = datetime.fromisoformat(issued.json()["token"]["expires_at"])
    assert expires > datetime.now(UTC) + timedelta(hours=23)
    listed = httpx.get(base_url + LIST, headers={"X-Auth-Token": token})
    assert listed.status_code == 200
    assert listed.json()["count"] > 0
    assert_refused(httpx.get(base_url + LIST, headers={"X-Auth-Token": "x"}), 401, "APIGW.0301")


def test_iam_wants_a_password_identity(base_url: str) -> None:
    body = {"auth": {"identity": {"methods": ["token"], "token": {"id": "t"}}}}
    assert httpx.post(f"{base_url}/v3/auth/tokens", json=body).status_code == 400
    assert httpx.post(f"{base_url}/v3/auth/tokens", content=b"{").status_code == 400


def test_token_refused_when_none_configured(jobs: list[dict[str, Any]]) -> None:
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK)) as url:
        assert_refused(httpx.get(url + LIST, headers={"X-Auth-Token": "t"}), 401, "APIGW.0301")
        assert httpx.post(f"{url}/v3/auth/tokens", json=PASSWORD_IDENTITY).status_code == 401


def test_fail_rate_one_fails_every_call(jobs: list[dict[str, Any]]) -> None:
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK, fail_rate=1.0, latency_ms=5)) as url:
        for _ in range(3):
            response = send(signed(url))
            assert response.status_code == 500
            assert response.json() == {"error_code": "MSS.00000004", "error_msg": "Internal Error"}


def test_fail_rate_is_partial_and_seeded(jobs: list[dict[str, Any]]) -> None:
    outcomes = []
    for _ in range(2):
        with serve(create_api_app(jobs, PROJECT_ID, AK, SK, fail_rate=0.5, seed=9)) as url:
            outcomes.append([send(signed(url)).status_code for _ in range(20)])
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 500}


def test_rate_limit_answers_429_without_retry_after(jobs: list[dict[str, Any]]) -> None:
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK, rate_limit=2)) as url:
        responses = [send(signed(url)) for _ in range(12)]
        stats = httpx.get(f"{url}/_sim/stats").json()
    throttled = [r for r in responses if r.status_code == 429]
    assert throttled
    assert responses[0].status_code == 200
    for response in throttled:
        assert response.json()["error_code"] == "APIGW.0308"
        assert "retry-after" not in response.headers
    assert stats["statuses"]["429"] == len(throttled)


def test_token_bucket_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(2, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] = 0.5
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] = 10.0
    assert [bucket.take() for _ in range(3)] == [True, True, False]
