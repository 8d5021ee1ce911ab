"""Pydantic models of the envelopes the receiver publishes, one per event type.

They describe what :func:`receiver.envelope.build_envelope`, the enrichment step and the
job watcher write; the JSON Schemas under ``docs/schemas/`` are generated from them, and
the test suite validates every envelope it publishes against those schemas.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from receiver.envelope import TYPE_PREFIX
from receiver.reconcile.events import JobStateChanged

# MetaStudio may send an id or a title as a number; the envelope keeps the value it sent.
Text = str | int
# RFC 3339 in UTC or with an offset; the pattern holds also where ``format`` is not checked.
Timestamp = Annotated[
    str,
    Field(
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$",
        json_schema_extra={"format": "date-time"},
    ),
]


class Enrichment(BaseModel):
    """How ``data.job`` was found (``disabled`` when enrichment is off)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["disabled", "ok", "not_found", "mismatch", "unavailable"]
    source: Literal["cache", "api", "list"] | None = None
    looked_up_at: Timestamp | None = None
    error: str | None = None


class _Message(BaseModel):
    """A decoded callback message, secrets redacted; keys MetaStudio adds are kept."""

    model_config = ConfigDict(extra="allow")

    room_id: Text
    job_id: Text


class ShootScriptSwitchMessage(_Message):
    """The live room moved to another script paragraph."""

    scene_script_name: Text | None = None
    shoot_script_sequence_no: Text | None = None
    shoot_script_title: Text | None = None
    live_id: Text | None = None


class RtmpStreamStateChangeMessage(_Message):
    """The RTMP push stream changed state (``output_url`` has its stream key redacted)."""

    output_url: Text | None = None
    state: Text | None = Field(
        None, description="CONNECTING, CONNECTED, DISCONNECTED, RECONNECTING or END"
    )


class ReplyCommandFinishMessage(_Message):
    """An interactive reply finished playing."""

    reply_id: Text | None = None


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job: dict[str, Any] | None = Field(
        None, description="The live job from MetaStudio's list API, secrets removed"
    )
    enrichment: Enrichment


class ShootScriptSwitchData(_Data):
    event_type: Literal["SHOOT_SCRIPT_SWITCH"]
    message: ShootScriptSwitchMessage


class RtmpStreamStateChangeData(_Data):
    event_type: Literal["RTMP_STREAM_STATE_CHANGE"]
    message: RtmpStreamStateChangeMessage


class ReplyCommandFinishData(_Data):
    event_type: Literal["REPLY_COMMAND_FINISH"]
    message: ReplyCommandFinishMessage


class UnknownEventData(_Data):
    event_type: str = Field(min_length=1, max_length=64)
    message: dict[str, Any]


class _Envelope(BaseModel):
    """The CloudEvents 1.0 attributes every envelope carries (structured JSON mode)."""

    model_config = ConfigDict(extra="forbid")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    subject: str
    time: Timestamp
    datacontenttype: Literal["application/json"]
    roomid: str = Field(description="The callback's room_id (empty when it had none)")
    jobid: str = Field(description="The callback's job_id (empty when it had none)")
    traceparent: str | None = Field(None, description="W3C trace context, when tracing is on")


class ShootScriptSwitchEnvelope(_Envelope):
    """A ``SHOOT_SCRIPT_SWITCH`` callback."""

    type: Literal["com.huaweicloud.metastudio.live.SHOOT_SCRIPT_SWITCH"]
    knowntype: Literal[True]
    data: ShootScriptSwitchData


class RtmpStreamStateChangeEnvelope(_Envelope):
    """A ``RTMP_STREAM_STATE_CHANGE`` callback."""

    type: Literal["com.huaweicloud.metastudio.live.RTMP_STREAM_STATE_CHANGE"]
    knowntype: Literal[True]
    data: RtmpStreamStateChangeData


class ReplyCommandFinishEnvelope(_Envelope):
    """A ``REPLY_COMMAND_FINISH`` callback."""

    type: Literal["com.huaweicloud.metastudio.live.REPLY_COMMAND_FINISH"]
    knowntype: Literal[True]
    data: ReplyCommandFinishData


class UnknownEventEnvelope(_Envelope):
    """A callback of a type MetaStudio added after this receiver was built (fields unchecked)."""

    type: str = Field(pattern="^" + TYPE_PREFIX.replace(".", r"\."))
    knowntype: Literal[False]
    data: UnknownEventData


class JobStateChangedEnvelope(_Envelope):
    """A job state change seen by the job watcher in MetaStudio's list API."""

    type: Literal["com.receiver.reconcile.job.state_changed"]
    source: Literal["/metastudio/v1/smart-live-jobs"]
    knowntype: Literal[True]
    data: JobStateChanged


Envelope = (
    ShootScriptSwitchEnvelope
    | RtmpStreamStateChangeEnvelope
    | ReplyCommandFinishEnvelope
    | UnknownEventEnvelope
    | JobStateChangedEnvelope
)

# The schema name of each envelope model (``docs/schemas/<name>.schema.json``).
ENVELOPE_MODELS: dict[str, type[_Envelope]] = {
    "shoot-script-switch": ShootScriptSwitchEnvelope,
    "rtmp-stream-state-change": RtmpStreamStateChangeEnvelope,
    "reply-command-finish": ReplyCommandFinishEnvelope,
    "unknown-event": UnknownEventEnvelope,
    "job-state-changed": JobStateChangedEnvelope,
}
