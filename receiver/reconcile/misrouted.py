"""Misrouted jobs: a job whose callbacks go elsewhere than this receiver, or unaccepted."""

from __future__ import annotations

from collections.abc import Collection

from receiver.metastudio.models import SmartLiveJob
from receiver.redaction import REDACTED, redact_url

# The ``reason`` label of ``receiver_reconcile_misrouted_jobs_total``: a fixed set.
REASONS = ("no_url", "other_url", "auth_not_accepted")


def classify(
    job: SmartLiveJob, callback_url: str, accepted_auth: Collection[str]
) -> tuple[str, str]:
    """``(reason, why)``: one of :data:`REASONS` and the sentence; ``("", "")`` when routed.

    URLs are compared without their query (which may carry a token) and shown redacted,
    with control characters replaced.
    """
    config = job.live_event_callback_config
    if config is None or not config.live_event_type_callback_url:
        return "no_url", "no callback URL"
    url = config.live_event_type_callback_url
    auth = printable(str(config.auth_type))
    if url.split("?", 1)[0].rstrip("/") != callback_url.split("?", 1)[0].rstrip("/"):
        shown = printable(redact_url(url.split("?", 1)[0]))
        if "?" in url:
            shown += "?" + REDACTED
        return "other_url", f"callbacks go to {shown} with {auth}"
    if config.auth_type is not None and config.auth_type not in accepted_auth:
        return "auth_not_accepted", f"auth_type {auth} is not accepted"
    return "", ""


def misrouting(job: SmartLiveJob, callback_url: str, accepted_auth: Collection[str]) -> str:
    """Why the job's callbacks do not reach us as accepted; empty when they do."""
    return classify(job, callback_url, accepted_auth)[1]


def printable(text: str, limit: int = 256) -> str:
    """``text`` with control characters shown as ``?``, cut at ``limit`` characters."""
    shown = "".join("?" if not ch.isprintable() else ch for ch in text[:limit])
    return shown + ("…" if len(text) > limit else "")
