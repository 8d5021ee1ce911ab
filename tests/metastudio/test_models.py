"""Job models keep unknown fields; redaction removes every secret."""

from __future__ import annotations

import copy

from receiver.metastudio import REDACTED, ListJobsResponse, SmartLiveJob, redact_job
from receiver.redaction import is_secret_name

from .fake_api import make_job


def test_unknown_fields_are_kept_at_every_level() -> None:
    raw = make_job(1)
    raw["rtc_room_info"]["users"][0]["new_user_field"] = 7
    raw["live_event_callback_config"]["retry_policy"] = "x"
    job = SmartLiveJob.model_validate(raw)
    dumped = job.model_dump(mode="json", exclude_unset=True)
    assert dumped["future_field"] == {"nested": True}
    assert dumped["rtc_room_info"]["users"][0]["new_user_field"] == 7
    assert dumped["live_event_callback_config"]["retry_policy"] == "x"
    assert job.rtc_room_info is not None
    assert job.rtc_room_info.users[0].user_type == "PLAYER"


def test_list_response_parses_the_documented_example() -> None:
    page = ListJobsResponse.model_validate_json(
        b'{"count":1,"smart_live_jobs":[{"job_id":"26f06524","state":"WAITING",'
        b'"start_time":"2022-01-18T16:29:36Z","end_time":"2022-01-18T16:30:36Z","duration":60}]}'
    )
    assert page.count == 1
    assert page.smart_live_jobs[0].duration == 60.0


def test_redact_job_removes_documented_and_secret_looking_fields() -> None:
    raw = make_job(3)
    raw["co_streamer_config"] = {"voice_config": {"voice_asset_id": "v", "apiKey": "k"}}
    raw["vendor"] = {"deep": [{"Access_Token": "t", "keep": "me"}], "SK": "s", "task": "t2"}
    raw["cover_url"] = "https://obs.example.com/c.jpg?AccessKeyId=AK1&Signature=S1&Expires=9"
    original = copy.deepcopy(raw)

    clean = redact_job(raw)

    assert raw == original, "the input is not modified"
    assert clean["live_event_callback_config"]["key"] == REDACTED
    assert clean["rtc_room_info"]["users"][0]["signature"] == REDACTED
    assert clean["co_streamer_config"]["voice_config"]["apiKey"] == REDACTED
    assert clean["vendor"]["deep"][0] == {"Access_Token": REDACTED, "keep": "me"}
    assert clean["vendor"]["SK"] == REDACTED
    assert clean["vendor"]["task"] == "t2"
    callback_url = clean["live_event_callback_config"]["live_event_type_callback_url"]
    assert "url-secret" not in callback_url
    assert callback_url.startswith("https://receiver.example.com/cb?token=")
    assert "S1" not in clean["cover_url"] and "AK1" not in clean["cover_url"]
    assert "Expires=9" in clean["cover_url"]
    text = repr(clean)
    for secret in ("callback-key-secret", "rtc-sig-secret", "url-secret"):
        assert secret not in text
    assert clean["job_id"] == raw["job_id"]
    assert clean["future_field"] == {"nested": True}


def test_empty_secrets_stay_empty() -> None:
    clean = redact_job({"live_event_callback_config": {"key": ""}, "token": None})
    assert clean == {"live_event_callback_config": {"key": ""}, "token": None}


def test_model_redacted_and_repr_hide_secrets() -> None:
    job = SmartLiveJob.model_validate(make_job(5, client_secret="extra-secret"))
    assert job.redacted()["live_event_callback_config"]["key"] == REDACTED
    assert job.redacted()["client_secret"] == REDACTED
    text = repr(job)
    assert "job-0005" in text
    for secret in ("callback-key-secret", "rtc-sig-secret", "extra-secret"):
        assert secret not in text


def test_secret_name_matching_uses_words() -> None:
    for name in (
        "key",
        "stream_key",
        "hwSecret",
        "X-Auth-Token",
        "password",
        "ak",
        "sk",
        "credentials",
        "rtcSignature",
        "accesskey",
    ):
        assert is_secret_name(name), name
    for name in ("task", "speak", "monkey", "auth_type", "job_id", "desk", "asset_order"):
        assert not is_secret_name(name), name
