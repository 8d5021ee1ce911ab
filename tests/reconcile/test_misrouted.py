"""Which jobs send their callbacks elsewhere, or with an auth type not accepted."""

from __future__ import annotations

from receiver.metastudio.models import SmartLiveJob
from receiver.reconcile.misrouted import misrouting

OURS = "https://receiver.example/callbacks/metastudio"


def job(url: str | None, auth: str = "HMAC_SHA256") -> SmartLiveJob:
    config = {"live_event_type_callback_url": url, "auth_type": auth, "key": "s3cret"}
    return SmartLiveJob(job_id="j", live_event_callback_config=config)


def test_our_url_with_an_accepted_auth_is_not_misrouted() -> None:
    assert misrouting(job(OURS + "?x=1"), OURS, ["HMAC_SHA256"]) == ""


def test_another_url_an_unaccepted_auth_or_none_is_reported() -> None:
    other = misrouting(job("https://other.example/cb?token=abc", "NONE"), OURS, ["NONE"])
    assert other.startswith("callbacks go to https://other.example/cb")
    assert "abc" not in other
    assert misrouting(job(OURS, "NONE"), OURS, ["HMAC_SHA256"]) == "auth_type NONE is not accepted"
    assert misrouting(job(None), OURS, ["NONE"]) == "no callback URL"
