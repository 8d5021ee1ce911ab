"""The job objects of the MetaStudio smart-live APIs.

Every model keeps fields it does not know (``extra="allow"``): the provider adds fields
without notice, and a receiver that forwards jobs must not silently drop them. Times stay
the RFC 3339 strings the provider sends. Reprs hide secret-looking fields.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from receiver.metastudio.query import JobsQuery, ListJobsQuery
from receiver.redaction import REDACTED, is_secret_name, redact_job

__all__ = [
    "CoStreamerConfig",
    "ErrorInfo",
    "JobsQuery",
    "ListJobsQuery",
    "ListJobsResponse",
    "LiveEventCallbackConfig",
    "LiveJobLog",
    "PlatformLiveInfo",
    "RtcCallbackConfig",
    "RtcRoomInfo",
    "RtcUser",
    "SmartLiveJob",
    "VoiceConfig",
    "redact_job",
]


class OpenModel(BaseModel):
    """A provider object: unknown fields kept, secrets hidden from ``repr``."""

    model_config = ConfigDict(extra="allow")

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name is not None and is_secret_name(name) and value not in (None, ""):
                yield name, REDACTED
            else:
                yield name, value


class ErrorInfo(OpenModel):
    """Why a job failed (``ErrorResponse``)."""

    error_code: str | None = None
    error_msg: str | None = None


class RtcUser(OpenModel):
    """A user of the job's RTC room; ``signature`` is its RTC token (a secret)."""

    user_type: str | None = None
    user_id: str | None = None
    signature: str | None = None
    ctime: int | None = None


class RtcRoomInfo(OpenModel):
    """The RTC room of an interactive job (``RTCRoomInfoList``)."""

    app_id: str | None = None
    room_id: str | None = None
    users: list[RtcUser] = Field(default_factory=list)


class LiveEventCallbackConfig(OpenModel):
    """Where and how MetaStudio posts live events; ``key`` signs them (a secret)."""

    live_event_type_callback_url: str | None = None
    auth_type: str | None = None
    key: str | None = None
    callback_event_type: list[str] | None = None


class RtcCallbackConfig(OpenModel):
    """RTC event subscription (``RTCLiveEventCallBackConfig``)."""

    rtc_callback_event_type: list[str] | None = None


class VoiceConfig(OpenModel):
    """Voice of the co-streamer."""

    voice_asset_id: str | None = None
    speed: int | None = None
    pitch: int | None = None
    volume: int | None = None


class CoStreamerConfig(OpenModel):
    """Co-streamer settings."""

    voice_config: VoiceConfig | None = None
    streamer_action: str | None = None


class LiveJobLog(OpenModel):
    """Where the job's interaction records are stored."""

    interaction_records_url: str | None = None


class PlatformLiveInfo(OpenModel):
    """The live platform the job is linked to (``PlatformLiveDetailInfo``)."""

    platform_id: str | None = None
    platform: str | None = None
    account: str | None = None
    live_id: str | None = None


class SmartLiveJob(OpenModel):
    """One digital-human live job (``SmartLiveJob``; also the single-job answer)."""

    job_id: str | None = None
    room_id: str | None = None
    room_name: str | None = None
    state: str | None = None
    duration: float | None = None
    start_time: str | None = None
    end_time: str | None = None
    error_info: ErrorInfo | None = None
    create_time: str | None = None
    lastupdate_time: str | None = None
    rtc_room_info: RtcRoomInfo | None = None
    live_event_report_url: str | None = None
    live_event_callback_config: LiveEventCallbackConfig | None = None
    rtc_callback_config: RtcCallbackConfig | None = None
    stream_duration: float | None = None
    block_reason: str | None = None
    cover_url: str | None = None
    co_streamer_config: CoStreamerConfig | None = None
    live_job_log: LiveJobLog | None = None
    relation_live_platform_info: PlatformLiveInfo | None = None
    used_resource_type: str | None = None
    is_ai_mark_on: bool | None = None

    def redacted(self) -> dict[str, Any]:
        """The job as JSON-ready data, secrets removed (fields never sent stay absent)."""
        return redact_job(self.model_dump(mode="json", exclude_unset=True))


class ListJobsResponse(OpenModel):
    """One page of a job list: ``count`` is the total over all pages."""

    count: int = 0
    smart_live_jobs: list[SmartLiveJob] = Field(default_factory=list)
