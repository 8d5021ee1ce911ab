"""The job APIs over real HTTP: filters, sorting, paging, errors, administration."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from receiver.metastudio.signing import sign_request
from receiver.simulator import create_api_app, jobs_by_room, parse_rfc3339, rfc3339

from .conftest import AK, PROJECT_ID, SK, serve

LIST = f"/v1/{PROJECT_ID}/smart-live-jobs"


class AkSk(httpx.Auth):
    """Signs every request with the project's AK/SK, as a MetaStudio client does."""

    def __init__(self, ak: str = AK, sk: str = SK) -> None:
        self.ak, self.sk = ak, sk

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sign_request(request, self.ak, self.sk)
        yield request


@pytest.fixture(scope="module")
def base_url(jobs: list[dict[str, Any]]) -> Iterator[str]:
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    headers = {"X-Project-Id": PROJECT_ID}
    with httpx.Client(base_url=base_url, auth=AkSk(), headers=headers) as http:
        yield http


def rooms_url(room_id: str) -> str:
    return f"/v1/{PROJECT_ID}/smart-live-rooms/{room_id}/smart-live-jobs"


def all_pages(client: httpx.Client, url: str, **params: Any) -> list[dict[str, Any]]:
    collected: list[dict[str, Any]] = []
    while True:
        body = client.get(url, params={**params, "offset": len(collected), "limit": 7}).json()
        collected.extend(body["smart_live_jobs"])
        if len(collected) >= body["count"]:
            return collected


def test_default_page(client: httpx.Client, jobs: list[dict[str, Any]]) -> None:
    response = client.get(LIST)
    assert response.status_code == 200
    assert response.headers["X-Request-Id"]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["count"] == len(jobs)
    assert len(body["smart_live_jobs"]) == 10
    by_created = sorted(jobs, key=lambda job: (job["create_time"], job["job_id"]))
    assert body["smart_live_jobs"] == by_created[:10]


def test_paging_walks_every_job_once(client: httpx.Client, jobs: list[dict[str, Any]]) -> None:
    seen = [job["job_id"] for job in all_pages(client, LIST)]
    assert sorted(seen) == sorted(job["job_id"] for job in jobs)
    beyond = client.get(LIST, params={"offset": 1000}).json()
    assert beyond == {"count": len(jobs), "smart_live_jobs": []}
    assert len(client.get(LIST, params={"limit": 100}).json()["smart_live_jobs"]) == len(jobs)


@pytest.mark.parametrize("states", ["PROCESSING", "WAITING,SUCCEED", "FAILED,BLOCKED,WAITING"])
def test_state_filter(client: httpx.Client, jobs: list[dict[str, Any]], states: str) -> None:
    wanted = set(states.split(","))
    found = all_pages(client, LIST, state=states)
    assert found
    assert {job["state"] for job in found} <= wanted
    assert len(found) == sum(job["state"] in wanted for job in jobs)


SORT_FIELD = {"create_time": "create_time", "update_time": "lastupdate_time"}


@pytest.mark.parametrize("sort_key", ["create_time", "update_time", "asset_order"])
@pytest.mark.parametrize("sort_dir", ["asc", "desc"])
def test_sorting(client: httpx.Client, sort_key: str, sort_dir: str) -> None:
    found = client.get(LIST, params={"sort_key": sort_key, "sort_dir": sort_dir, "limit": 100})
    listed = found.json()["smart_live_jobs"]
    if sort_key == "asset_order":
        values: list[Any] = [job["room_name"] for job in listed]
    else:
        values = [parse_rfc3339(job[SORT_FIELD[sort_key]]) for job in listed]
    assert values == sorted(values, reverse=sort_dir == "desc")
    assert len(set(values)) > 1


def test_create_time_window(client: httpx.Client, jobs: list[dict[str, Any]]) -> None:
    times = sorted(parse_rfc3339(job["create_time"]) for job in jobs)
    since, until = times[10], times[30]
    found = all_pages(
        client,
        LIST,
        create_since=rfc3339(since),
        create_until=(until + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S+08:00"),
    )
    assert len(found) == 21
    assert all(since <= parse_rfc3339(job["create_time"]) <= until for job in found)


def test_room_name_is_fuzzy_and_case_insensitive(
    client: httpx.Client, jobs: list[dict[str, Any]]
) -> None:
    name = jobs[0]["room_name"]
    needle = name.split("直播间 ")[1].upper()
    found = all_pages(client, LIST, room_name=needle)
    assert found
    assert all(needle.casefold() in job["room_name"].casefold() for job in found)
    assert len(found) == sum(needle.casefold() in job["room_name"].casefold() for job in jobs)
    exact = all_pages(client, LIST, room_name=name)
    assert {job["room_id"] for job in exact} == {jobs[0]["room_id"]}


def test_one_rooms_jobs(client: httpx.Client, jobs: list[dict[str, Any]]) -> None:
    room_id, room_jobs = max(jobs_by_room(jobs).items(), key=lambda item: len(item[1]))
    assert len(room_jobs) > 1
    body = client.get(
        rooms_url(room_id), params={"sort_dir": "desc", "room_name": "no such room"}
    ).json()
    assert body["count"] == len(room_jobs)
    assert {job["room_id"] for job in body["smart_live_jobs"]} == {room_id}
    created = [job["create_time"] for job in body["smart_live_jobs"]]
    assert created == sorted(created, reverse=True)
    limited = client.get(rooms_url(room_id), params={"limit": 1}).json()
    assert limited["count"] == len(room_jobs)
    assert len(limited["smart_live_jobs"]) == 1


def test_one_job(client: httpx.Client, jobs: list[dict[str, Any]]) -> None:
    job = jobs[5]
    response = client.get(f"{rooms_url(job['room_id'])}/{job['job_id']}")
    assert response.status_code == 200
    assert response.json() == job
    assert response.headers["X-Request-Id"]


def test_not_found_bodies(client: httpx.Client, jobs: list[dict[str, Any]]) -> None:
    other_room = next(j["room_id"] for j in jobs if j["room_id"] != jobs[0]["room_id"])
    for url in (
        rooms_url("0" * 32),
        f"{rooms_url(jobs[0]['room_id'])}/{'0' * 32}",
        f"{rooms_url(other_room)}/{jobs[0]['job_id']}",
    ):
        response = client.get(url)
        assert response.status_code == 404
        assert response.json()["error_code"] == "MSS.00000005"
        assert response.headers["X-Request-Id"]
    unknown = client.get(f"/v1/{PROJECT_ID}/no-such-api")
    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "APIGW.0101"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"offset": "-1"},
        {"offset": "2147483648"},
        {"sort_key": "name"},
        {"sort_dir": "up"},
        {"state": "RUNNING"},
        {"create_since": "yesterday"},
        {"create_until": "2025-13-01"},
    ],
)
def test_bad_parameters(client: httpx.Client, params: dict[str, str]) -> None:
    response = client.get(LIST, params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "MSS.00000003"
    assert body["error_msg"].startswith("Invalid")


def test_other_project_in_path_is_refused(client: httpx.Client) -> None:
    response = client.get("/v1/0123456789abcdef0123456789abcdef/smart-live-jobs")
    assert response.status_code == 403
    assert response.json()["error_code"] == "APIGW.0302"


def test_counters(jobs: list[dict[str, Any]]) -> None:
    app = create_api_app(jobs, PROJECT_ID, AK, SK)
    headers = {"X-Project-Id": PROJECT_ID}
    with serve(app) as url, httpx.Client(base_url=url, auth=AkSk(), headers=headers) as http:
        http.get(LIST)
        http.get(LIST, params={"limit": 0})
        http.get(rooms_url(jobs[0]["room_id"]))
        http.get(f"{rooms_url(jobs[0]['room_id'])}/{jobs[0]['job_id']}")
        stats = httpx.get(f"{url}/_sim/stats").json()
    assert stats["calls"] == {"list_jobs": 2, "list_room_jobs": 1, "show_job": 1}
    assert stats["statuses"] == {"200": 3, "400": 1}
    assert app.state.stats.calls["list_jobs"] == 2


def test_changing_a_jobs_state(jobs: list[dict[str, Any]]) -> None:
    job = next(job for job in jobs if job["state"] == "PROCESSING")
    app = create_api_app(jobs, PROJECT_ID, AK, SK)
    headers = {"X-Project-Id": PROJECT_ID}
    with serve(app) as url, httpx.Client(base_url=url, auth=AkSk(), headers=headers) as http:
        changed = httpx.post(f"{url}/_sim/jobs/{job['job_id']}/state", json={"state": "SUCCEED"})
        assert changed.status_code == 200
        assert changed.json()["state"] == "SUCCEED"
        now = http.get(f"{rooms_url(job['room_id'])}/{job['job_id']}").json()
        assert now["state"] == "SUCCEED"
        assert now["end_time"]
        assert parse_rfc3339(now["end_time"]) > parse_rfc3339(now["start_time"])
        bad = httpx.post(f"{url}/_sim/jobs/{job['job_id']}/state", json={"state": "DONE"})
        assert bad.status_code == 400
        assert bad.json()["error_code"] == "MSS.00000003"
        gone = httpx.post(f"{url}/_sim/jobs/{'0' * 32}/state", json={"state": "SUCCEED"})
        assert gone.status_code == 404
    assert job["state"] == "PROCESSING", "the app works on its own copy of the jobs"


def test_setting_a_jobs_error_and_callback_config(jobs: list[dict[str, Any]]) -> None:
    job = next(job for job in jobs if job["state"] == "PROCESSING")
    config = {"auth_type": "NONE", "live_event_type_callback_url": "https://other.example/cb"}
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK)) as url:
        target = f"{url}/_sim/jobs/{job['job_id']}/state"
        body = {
            "state": "FAILED",
            "error_info": {"error_code": "MSS.1", "error_msg": "stream lost"},
            "live_event_callback_config": config,
        }
        changed = httpx.post(target, json=body).json()
        assert changed["error_info"]["error_code"] == "MSS.1"
        assert changed["live_event_callback_config"] == config
        bad = httpx.post(target, json={"state": "FAILED", "error_info": "x"})
        assert bad.status_code == 400
        assert "error_info" in bad.json()["error_msg"]


def test_repeated_state_parameter_is_a_list(
    client: httpx.Client, jobs: list[dict[str, Any]]
) -> None:
    found = client.get(LIST, params=[("state", "FAILED"), ("state", "BLOCKED"), ("limit", "100")])
    expected = sum(job["state"] in ("FAILED", "BLOCKED") for job in jobs)
    assert found.json()["count"] == expected


def test_app_user_id_must_be_ascii(client: httpx.Client) -> None:
    assert client.get(LIST, headers={"X-App-UserId": "user-1"}).status_code == 200
    refused = client.get(LIST, headers={b"X-App-UserId": "用户".encode()})
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "MSS.00000003"
