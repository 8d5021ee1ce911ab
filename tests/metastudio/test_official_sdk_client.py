"""The official (synchronous) MetaStudio SDK against the fake server.

The fake server verifies signatures with ``receiver.metastudio.signing``, so a request the
official SDK signs being accepted shows the verifier side matches the official signer on
the wire, as the client side is shown to match in ``test_signing``.
"""

from __future__ import annotations

import pytest
from huaweicloudsdkcore.auth.credentials import (  # type: ignore[import-untyped]
    BasicCredentials,
)
from huaweicloudsdkcore.exceptions import exceptions  # type: ignore[import-untyped]
from huaweicloudsdkmetastudio.v1 import (  # type: ignore[import-untyped]
    ListSmartLiveJobsRequest,
    MetaStudioClient,
    ShowSmartLiveRequest,
)

from .fake_api import AK, PROJECT_ID, SK, RunningApi, make_job


def _sdk(api: RunningApi, sk: str = SK) -> MetaStudioClient:
    client: MetaStudioClient = (
        MetaStudioClient.new_builder()
        .with_credentials(BasicCredentials(AK, sk, PROJECT_ID))
        .with_endpoint(api.url)
        .build()
    )
    return client


def test_official_sdk_list_request_is_accepted(api: RunningApi) -> None:
    api.state.jobs = [make_job(i) for i in range(5)]
    request = ListSmartLiveJobsRequest(
        offset=1, limit=2, state="WAITING,PROCESSING", sort_dir="asc", room_name="直播间 room"
    )
    response = _sdk(api).list_smart_live_jobs(request)
    assert response.count == 5
    assert [job.job_id for job in response.smart_live_jobs] == ["job-0001", "job-0002"]
    assert api.state.query_of()["room_name"] == "直播间 room"
    assert api.state.seen[-1].headers["x-project-id"] == PROJECT_ID


def test_official_sdk_show_request_is_accepted(api: RunningApi) -> None:
    api.state.jobs = [make_job(7)]
    response = _sdk(api).show_smart_live(ShowSmartLiveRequest(room_id="room-1", job_id="job-0007"))
    assert response.job_id == "job-0007"


def test_official_sdk_with_a_wrong_key_is_refused(api: RunningApi) -> None:
    with pytest.raises(exceptions.ClientRequestException) as caught:
        _sdk(api, sk="wrong").list_smart_live_jobs(ListSmartLiveJobsRequest())
    assert caught.value.status_code == 401
    assert caught.value.error_msg == "verify aksk signature fail"
