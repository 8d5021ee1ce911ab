"""Hostile bodies and unsigned repeats against a real ``receiver serve``.

``token_target`` registers ``…/callbacks/metastudio?t=<token>`` with ``auth.type = NONE``
(the URL carries its own proof); the signed cases use the suite's ``target``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from tests.attacks.support import Target, raw_request, request_bytes
from tests.faults.support import PATH, metric, new_port, receiver_config, scan_for_secrets, started
from tests.helpers import ReceiverProcess, callback_body, read_jsonl

TOKEN = "url-token-" + uuid.uuid4().hex[:20]
# Secrets sent inside callback bodies: none may reach the log, the sink or /metrics.
BODY_SECRETS: list[str] = []


@dataclass
class TokenTarget:
    receiver: ReceiverProcess
    out: Path

    def post(self, body: bytes) -> httpx.Response:
        return httpx.post(
            f"{self.receiver.base}{PATH}?t={TOKEN}",
            content=body,
            headers={"content-type": "application/json"},
            timeout=10,
        )

    def delivered(self, room: str, count: int) -> list[dict[str, object]]:
        """The envelopes of ``room`` in the sink file, once there are ``count`` of them."""
        deadline = time.monotonic() + 15
        while True:
            lines = [line for line in read_jsonl(self.out) if line["roomid"] == room]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)


@pytest.fixture(scope="module")
def token_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenTarget]:
    directory = tmp_path_factory.mktemp("hostile")
    port = new_port()
    config = receiver_config(
        directory,
        port,
        public_url=f"http://127.0.0.1:{port}{PATH}?t={TOKEN}",
        auth=f'type = ["NONE"]\nurl_token_param = "t"\nkeys = ["{TOKEN}"]\n',
    )
    with started(config, port) as receiver:
        yield TokenTarget(receiver, directory / "out.jsonl")
        exposition = httpx.get(f"{receiver.base}/metrics", timeout=5).text
    texts = {"log": receiver.logs(), "metrics": exposition}
    if (directory / "out.jsonl").exists():
        texts["sink"] = (directory / "out.jsonl").read_text()
    assert not scan_for_secrets(texts, [TOKEN, *BODY_SECRETS])
    assert "Traceback" not in texts["log"]


def stream_state(room: str, state: str) -> bytes:
    return callback_body("RTMP_STREAM_STATE_CHANGE", room, state=state, output_url="rtmp://x/live")


class TestUnsignedRepeats:
    """Without a signed proof an equal body is a genuine repeat, never a replay to drop."""

    def test_a_flapping_stream_keeps_every_state(self, token_target: TokenTarget) -> None:
        room = f"room-{uuid.uuid4().hex[:8]}"
        states = ["RECONNECTING", "CONNECTED", "RECONNECTING", "CONNECTED", "RECONNECTING"]
        answers = [token_target.post(stream_state(room, state)) for state in states]
        assert [a.status_code for a in answers] == [200] * len(states)
        assert [a.json()["status"] for a in answers] == ["accepted"] * len(states)
        ids = [a.json()["id"] for a in answers]
        assert len(set(ids)) == len(ids)
        lines = token_target.delivered(room, len(states))
        assert [line["id"] for line in lines] == ids
        assert [line["data"]["message"]["state"] for line in lines] == states  # type: ignore[index]

    def test_the_same_body_twice_gets_two_random_ids(self, token_target: TokenTarget) -> None:
        body = stream_state(f"room-{uuid.uuid4().hex[:8]}", "END")
        first, second = (token_target.post(body).json()["id"] for _ in range(2))
        assert first != second
        assert len(first) == len(second) == 32
        int(first, 16), int(second, 16)  # hex, as signed ids are


class TestSignedDuplicates:
    """A signed request sent again shares its proof: answered duplicate and counted."""

    def test_a_repeated_signed_request_is_counted_by_auth_type(self, target: Target) -> None:
        before = metric(target.base, "receiver_duplicate_callbacks_total", auth_type="MSS_A_HEAD")
        body = stream_state(f"room-{uuid.uuid4().hex[:8]}", "RECONNECTING")
        headers = target.headers()
        first, second = target.post(body, headers), target.post(body, headers)
        assert first.json()["status"] == "accepted"
        assert second.json() == {"status": "duplicate", "id": first.json()["id"]}
        after = metric(target.base, "receiver_duplicate_callbacks_total", auth_type="MSS_A_HEAD")
        assert after == before + 1


def message_body(event_type: str, message: dict[str, object]) -> bytes:
    return orjson.dumps({"event_type": event_type, "message": orjson.dumps(message).decode()})


class TestBoundedFields:
    """Ids, types and messages over their documented limits are refused with a clear code."""

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            (
                message_body("REPLY_COMMAND_FINISH", {"room_id": "r" * 129, "job_id": "j"}),
                "field_too_long",
            ),
            (
                message_body("REPLY_COMMAND_FINISH", {"room_id": "r", "job_id": "j" * 129}),
                "field_too_long",
            ),
            (message_body("SOMETHING_NEW", {"room_id": "r" * 129}), "field_too_long"),
            (message_body("SOMETHING_NEW", {"job_id": "j" * 1000}), "field_too_long"),
            (message_body("E" * 65, {"room_id": "r", "job_id": "j"}), "field_too_long"),
            (
                message_body(
                    "REPLY_COMMAND_FINISH", {"room_id": "r", "job_id": "j", "x": "y" * 33000}
                ),
                "message_too_large",
            ),
            (
                orjson.dumps({"event_type": "X", "message": {"room_id": "r", "x": "y" * 33000}}),
                "message_too_large",
            ),
            (
                b'{"event_type": "X", "message": "{\\"x\\": ' + b"[" * 40 + b"]" * 40 + b'}"}',
                "message_too_deep",
            ),
            (
                b'{"event_type": "X", "message": "{\\"x\\": ' + b"[" * 300 + b"]" * 300 + b'}"}',
                "message_too_deep",
            ),
            (
                b'{"event_type": "X", "message": {"x": ' + b"[" * 300 + b"]" * 300 + b"}}",
                "message_too_deep",
            ),
        ],
        ids=[
            "room_id",
            "job_id",
            "unknown type room_id",
            "unknown type job_id",
            "event_type",
            "message",
            "message as an object",
            "message 40 deep",
            "message 300 deep",
            "message object 300 deep",
        ],
    )
    def test_over_the_limit_is_a_400(
        self, token_target: TokenTarget, body: bytes, code: str
    ) -> None:
        answer = token_target.post(body)
        assert answer.status_code == 400
        assert answer.json()["error"] == code
        assert answer.json()["detail"]

    def test_at_the_limit_is_accepted(self, token_target: TokenTarget) -> None:
        room = "r" * 128
        body = message_body("E" * 64, {"room_id": room, "job_id": "j" * 128, "x": "y" * 32000})
        answer = token_target.post(body)
        assert answer.status_code == 200, answer.text
        (line,) = token_target.delivered(room, 1)
        assert line["jobid"] == "j" * 128


class TestSecretsInMessages:
    """Stream keys and tokens inside a message never reach the sink, the log or /metrics."""

    def test_push_url_keys_and_secret_fields_are_redacted(self, token_target: TokenTarget) -> None:
        stream, auth, srt, token, nested = (f"s{uuid.uuid4().hex}" for _ in range(5))
        BODY_SECRETS.extend([stream, auth, srt, token, nested])
        room = f"room-{uuid.uuid4().hex[:8]}"
        message = {
            "room_id": room,
            "job_id": "j",
            "state": "CONNECTED",
            "output_url": f"rtmp://push.example.com/live/{stream}?auth_key={auth}&txTime=65f",
            "stream_key": stream,
            "backup": {"urls": [f"srt://srt.example.com:9000?streamid={srt}&latency=200"]},
            "note": f"pushing to RTMPS://push.example.com:443/live/{stream} now",
            "report_url": f"https://hooks.example.com/r?token={token}&room={room}",
            "extra": {"deeper": {"pushSecret": nested}},
        }
        answer = token_target.post(message_body("RTMP_STREAM_STATE_CHANGE", message))
        assert answer.status_code == 200, answer.text
        (line,) = token_target.delivered(room, 1)
        data = line["data"]
        assert isinstance(data, dict)
        forwarded = data["message"]
        text = orjson.dumps(line).decode()
        for secret in (stream, auth, srt, token, nested):
            assert secret not in text
        assert forwarded["output_url"] == (
            "rtmp://push.example.com/live/[redacted]?auth_key=[redacted]&txTime=65f"
        )
        assert forwarded["stream_key"] == "[redacted]"
        assert forwarded["backup"]["urls"] == [
            "srt://srt.example.com:9000?streamid=[redacted]&latency=200"
        ]
        assert forwarded["note"] == "pushing to RTMPS://push.example.com:443/live/[redacted] now"
        assert forwarded["report_url"] == (
            f"https://hooks.example.com/r?token=[redacted]&room={room}"
        )
        assert forwarded["extra"] == {"deeper": {"pushSecret": "[redacted]"}}
        assert forwarded["state"] == "CONNECTED"


@pytest.fixture(scope="module")
def text_log_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenTarget]:
    """A NONE receiver logging in text, its access log on, behind a trusted proxy (loopback)."""
    directory = tmp_path_factory.mktemp("textlog")
    port = new_port()
    config = receiver_config(
        directory,
        port,
        public_url=f"http://127.0.0.1:{port}{PATH}?t={TOKEN}",
        auth=f'type = ["NONE"]\nurl_token_param = "t"\nkeys = ["{TOKEN}"]\n',
    )
    config.write_text(config.read_text().replace('format = "json"', 'format = "text"'))
    with started(config, port) as receiver:
        yield TokenTarget(receiver, directory / "out.jsonl")


class TestLogForging:
    """Whatever a request carries, a text-format log record stays one line."""

    def test_a_forwarded_for_header_cannot_forge_an_access_line(
        self, text_log_target: TokenTarget
    ) -> None:
        marker = uuid.uuid4().hex
        # HTTP refuses C0 controls in header values but lets obs-text through: U+0085 (NEL)
        # is a line break to many readers.
        forged = f"203.0.113.9\x85{marker} INFO receiver.access callback status=200"
        port = text_log_target.receiver.port
        request = request_bytes(
            port,
            stream_state(f"room-{marker[:8]}", "END"),
            [
                (b"content-type", b"application/json"),
                (b"x-forwarded-for", forged.encode("latin-1")),
            ],
            target=f"{PATH}?t={TOKEN}",
        )
        answer = raw_request(port, request)
        assert answer.status == 200, answer.body
        deadline = time.monotonic() + 5
        while marker not in (logs := text_log_target.receiver.logs()):
            assert time.monotonic() < deadline, "the access line was not written"
            time.sleep(0.1)
        (line,) = [line for line in logs.split("\n") if marker in line]
        assert len(line.splitlines()) == 1  # \x85 is a line break to str.splitlines
        assert f"client=203.0.113.9\\x85{marker} INFO" in line
