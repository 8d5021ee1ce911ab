"""Query validation: good values normalised, bad ones refused with the parameter named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from receiver.metastudio import InvalidQueryError, JobsQuery, ListJobsQuery


def test_every_parameter_becomes_a_string_param() -> None:
    query = ListJobsQuery.parse(
        offset=20,
        limit=100,
        state="waiting, processing",
        sort_key="create_time",
        sort_dir="desc",
        create_since="2024-05-01T00:00:00Z",
        create_until=datetime(2024, 5, 2, 8, 0, tzinfo=timezone(timedelta(hours=8))),
        room_name="直播间",
    )
    assert query.to_params() == {
        "offset": "20",
        "limit": "100",
        "state": "WAITING,PROCESSING",
        "sort_key": "create_time",
        "sort_dir": "desc",
        "create_since": "2024-05-01T00:00:00Z",
        "create_until": "2024-05-02T00:00:00Z",
        "room_name": "直播间",
    }


def test_unset_parameters_are_not_sent() -> None:
    assert ListJobsQuery().to_params() == {}
    assert JobsQuery.parse(limit=1).to_params() == {"limit": "1"}


def test_state_accepts_a_list_and_drops_duplicates() -> None:
    query = JobsQuery.parse(state=["FAILED", "BLOCKED", "FAILED"])
    assert query.state == ("FAILED", "BLOCKED")
    assert query.to_params() == {"state": "FAILED,BLOCKED"}


def test_boundaries_are_accepted() -> None:
    assert JobsQuery.parse(offset=0, limit=1).offset == 0
    assert JobsQuery.parse(offset=2_147_483_647, limit=100).limit == 100
    assert JobsQuery.parse(create_since="2024-05-01T08:00:00.123+08:00").create_since


@pytest.mark.parametrize(
    ("params", "bad", "hint"),
    [
        ({"offset": -1}, "offset", "greater than or equal to 0"),
        ({"offset": 2_147_483_648}, "offset", "less than or equal to 2147483647"),
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 101}, "limit", "less than or equal to 100"),
        ({"limit": "ten"}, "limit", "integer"),
        ({"state": "WAITING,CREATING"}, "state", "unknown state 'CREATING'"),
        ({"state": "WAITING,,FAILED"}, "state", "empty state"),
        ({"sort_key": "name"}, "sort_key", "create_time"),
        ({"sort_dir": "up"}, "sort_dir", "'asc' or 'desc'"),
        ({"create_since": "2024-05-01"}, "create_since", "RFC 3339"),
        ({"create_until": "2024-13-01T00:00:00Z"}, "create_until", "not a valid date"),
        ({"create_since": datetime(2024, 5, 1)}, "create_since", "time zone"),
        ({"page": 2}, "page", "unknown query parameter"),
    ],
)
def test_bad_values_name_the_parameter(params: dict[str, Any], bad: str, hint: str) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        ListJobsQuery.parse(**params)
    assert caught.value.params == (bad,)
    assert str(caught.value).startswith(f"{bad}: ")
    assert hint in str(caught.value)


def test_several_bad_values_are_all_reported() -> None:
    with pytest.raises(InvalidQueryError) as caught:
        ListJobsQuery.parse(limit=0, sort_dir="sideways")
    assert set(caught.value.params) == {"limit", "sort_dir"}


def test_room_name_is_not_a_room_list_parameter() -> None:
    with pytest.raises(InvalidQueryError) as caught:
        JobsQuery.parse(room_name="x")
    assert caught.value.params == ("room_name",)


def test_create_window_must_be_in_order() -> None:
    since = datetime(2024, 5, 2, tzinfo=UTC)
    with pytest.raises(InvalidQueryError, match="create_since is later than create_until"):
        JobsQuery.parse(create_since=since, create_until=since - timedelta(seconds=1))


def test_with_page_keeps_the_filters() -> None:
    query = ListJobsQuery.parse(state="FAILED", room_name="a")
    page = query.with_page(30, 10)
    assert page.to_params() == {"offset": "30", "limit": "10", "state": "FAILED", "room_name": "a"}
