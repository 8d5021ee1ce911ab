"""Misrouted jobs: a job whose callbacks go elsewhere than this receiver, or unaccepted."""

from __future__ import annotations

from collections.abc import Collection

from receiver.metastudio.models import SmartLiveJob
from receiver.redaction import redact_url


def misrouting(job: SmartLiveJob, callback_url: str, accepted_auth: Collection[str]) -> str:
    """Why the job's callbacks do not reach us as accepted; empty when they do.

    URLs are compared without their query (which may carry a token) and shown redacted.
    """
    config = job.live_event_callback_config
    if config is None or not config.live_event_type_callback_url:
        return "no callback URL"
    url = config.live_event_type_callback_url
    if url.split("?", 1)[0].rstrip("/") != callback_url.split("?", 1)[0].rstrip("/"):
        return f"callbacks go to {redact_url(url, every_value=True)} with {config.auth_type}"
    if config.auth_type is not None and config.auth_type not in accepted_auth:
        return f"auth_type {config.auth_type} is not accepted"
    return ""
