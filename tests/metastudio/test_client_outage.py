"""The client during an outage, and requests httpx refuses: every failure is a MetaStudioError."""

from __future__ import annotations

import pytest

from receiver.metastudio import InvalidQueryError, MetaStudioError, NotFound, ServerError

from .conftest import ClientFactory, SettingsFactory, SleepRecorder
from .fake_api import Fault, RunningApi

DOWN = Fault(503, {"error_code": "MSS.00000004"})


async def test_an_overlong_url_is_a_non_retryable_metastudio_error(
    api: RunningApi, make_client: ClientFactory, backoff_sleep: SleepRecorder
) -> None:
    client = make_client()
    with pytest.raises(MetaStudioError) as caught:
        await client.list_room_jobs("房" * 30_000)
    assert isinstance(caught.value, InvalidQueryError)
    assert not caught.value.retryable
    assert api.state.seen == []
    assert backoff_sleep.delays == []


@pytest.mark.parametrize("segment", [".", ".."])
async def test_dot_segments_are_refused(
    api: RunningApi, make_client: ClientFactory, segment: str
) -> None:
    with pytest.raises(InvalidQueryError):
        await make_client().list_room_jobs(segment)
    with pytest.raises(InvalidQueryError):
        await make_client().get_job("room", segment)
    assert api.state.seen == []


async def test_once_down_calls_make_one_attempt_until_one_is_answered(
    api: RunningApi,
    make_client: ClientFactory,
    make_settings: SettingsFactory,
    backoff_sleep: SleepRecorder,
) -> None:
    client = make_client(make_settings(max_retries=3))
    api.state.faults.extend([DOWN] * 6)
    with pytest.raises(ServerError):
        await client.list_jobs()
    assert len(api.state.seen) == 4  # the first failure spends the retries
    assert client.api_down
    for expected in (5, 6):
        with pytest.raises(ServerError):
            await client.list_jobs()
        assert len(api.state.seen) == expected  # then one attempt a call
    assert len(backoff_sleep.delays) == 3
    assert (await client.list_jobs()).count == 0
    assert not client.api_down
    api.state.faults.extend([DOWN] * 4)
    with pytest.raises(ServerError):
        await client.list_jobs()  # recovered: retries again
    assert len(api.state.seen) == 11


async def test_a_refusal_shows_the_api_is_up(
    api: RunningApi, make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    client = make_client(make_settings(max_retries=1))
    api.state.faults.extend([DOWN, DOWN, Fault(404, {"error_code": "MSS.000000051"})])
    with pytest.raises(ServerError):
        await client.list_jobs()
    assert client.api_down
    with pytest.raises(NotFound):
        await client.list_jobs()
    assert not client.api_down
