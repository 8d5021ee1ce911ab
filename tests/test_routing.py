import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from receiver.app import ReceiverApp
from receiver.conditions import activation, compile_condition
from receiver.config import ConfigError, RouteSettings, load_settings
from receiver.envelope import build_envelope
from receiver.events import parse_callback
from receiver.routing import Router
from tests.helpers import callback_body, read_jsonl, signed_headers, write_config


def envelope(event_type: str = "RTMP_STREAM_STATE_CHANGE", **fields: Any) -> dict[str, Any]:
    body = orjson.dumps({"event_type": event_type, "message": orjson.dumps(fields).decode()})
    return build_envelope(parse_callback(body), "id-1", 1_800_000_000.0, "https://cb.example/h")


def rtmp(state: str, room: str = "room-1") -> dict[str, Any]:
    return envelope(room_id=room, job_id=f"job-{room}", state=state)


def router(*routes: RouteSettings, errors: list[int] | None = None) -> Router:
    if errors is None:
        return Router(routes)
    return Router(routes, lambda index, _error: errors.append(index))


def test_a_state_condition_picks_the_pager_for_disconnected_only() -> None:
    routes = router(
        RouteSettings(sinks=["archive"]),
        RouteSettings(condition='data.message.state == "DISCONNECTED"', sinks=["pager"]),
    )
    assert routes.sinks_for(rtmp("DISCONNECTED")) == ["archive", "pager"]
    assert routes.sinks_for(rtmp("CONNECTED")) == ["archive"]


@pytest.mark.parametrize(
    ("condition", "matches"),
    [
        ('roomid == "room-7"', True),
        ('roomid != "room-7"', False),
        ('data.message.state in ["DISCONNECTED", "END"]', True),
        ('data.message.state in ["CONNECTED"]', False),
        ("has(data.message.output_url)", False),
        ("has(data.message.state)", True),
        ('type == "com.huaweicloud.metastudio.live.RTMP_STREAM_STATE_CHANGE"', True),
        ('subject.startsWith("room-")', True),
        ('roomid.matches("^room-[0-9]+$")', True),
        ('roomid.matches("^r[0-9]")', False),
        ("data.message.count > 2 && data.message.count <= 3", True),
        ("!(data.message.count >= 4) || false", True),
        ("knowntype", True),
        ("data.job == null", True),
        ('data.enrichment.status == "disabled"', True),
        # CEL's || and && absorb an error: no job here, yet the first operand decides.
        ('true || data.job.state == "LIVING"', True),
        ('!(false && data.job.state == "LIVING")', True),
    ],
)
def test_conditions_over_any_field(condition: str, matches: bool) -> None:
    event = envelope(room_id="room-7", job_id="job-7", state="DISCONNECTED", count=3)
    assert router(RouteSettings(condition=condition, sinks=["s"])).sinks_for(event) == (
        ["s"] if matches else []
    )


def test_patterns_and_condition_must_all_hold() -> None:
    routes = router(
        RouteSettings(event_types=["RTMP_*"], condition='data.message.state == "END"', sinks=["s"])
    )
    assert routes.sinks_for(rtmp("END")) == ["s"]
    other = envelope("REPLY_COMMAND_FINISH", room_id="r", job_id="j", state="END")
    assert routes.sinks_for(other) == []


@pytest.mark.parametrize(
    "fields",
    [
        {"room_id": "r", "job_id": "j"},  # no state: a missing key
        {"room_id": "r", "job_id": "j", "state": 5},  # a number compared with a string
    ],
)
def test_a_condition_that_errs_does_not_match_and_is_counted_and_logged_once(
    fields: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[int] = []
    routes = router(
        RouteSettings(sinks=["all"]),
        RouteSettings(condition='data.message.state == "END"', sinks=["end"]),
        errors=errors,
    )
    event = envelope("UNDOCUMENTED", **fields)
    with caplog.at_level(logging.WARNING, "receiver.routing"):
        assert routes.sinks_for(event) == ["all"]
        assert routes.sinks_for(event) == ["all"]
    assert errors == [1, 1]
    warnings = [r for r in caplog.records if r.name == "receiver.routing"]
    assert len(warnings) == 1
    assert warnings[0].route == 1  # type: ignore[attr-defined]
    assert "X" not in warnings[0].error  # type: ignore[attr-defined]


def test_an_integer_beyond_int64_elsewhere_in_the_body_does_not_stop_a_route() -> None:
    errors: list[int] = []
    routes = router(
        RouteSettings(condition='data.message.state == "END"', sinks=["s"]), errors=errors
    )
    event = envelope(room_id="r", job_id="j", state="END", n=2**63 + 5)
    assert routes.sinks_for(event) == ["s"]
    assert errors == []


def test_a_condition_that_is_not_a_bool_does_not_match() -> None:
    errors: list[int] = []
    routes = router(RouteSettings(condition="data.message", sinks=["s"]), errors=errors)
    assert routes.sinks_for(rtmp("END")) == []
    assert errors == [0]


def test_a_guarded_condition_over_the_job_matches_without_enrichment() -> None:
    errors: list[int] = []
    condition = 'data.enrichment.status == "ok" && data.job.state == "LIVING"'
    routes = router(RouteSettings(condition=condition, sinks=["s"]), errors=errors)
    event = rtmp("END")
    assert routes.sinks_for(event) == []
    event["data"]["job"] = {"state": "LIVING"}
    event["data"]["enrichment"] = {"status": "ok"}
    assert routes.sinks_for(event) == ["s"]
    assert errors == []


def test_routes_without_conditions_still_take_the_shortcut() -> None:
    routes = router(RouteSettings(sinks=["a"]), RouteSettings(sinks=["b", "a"]))
    assert routes.sinks_for(rtmp("END")) == ["a", "b"]


def _config(tmp_path: Path, condition: str) -> Path:
    path = tmp_path / "receiver.toml"
    path.write_text(
        '[[sinks]]\nname = "out"\ntype = "jsonl"\npath = "out.jsonl"\n'
        '[[routes]]\nsinks = ["out"]\n[[routes]]\nsinks = ["out"]\n'
        f'[[routes]]\ncondition = {orjson.dumps(condition).decode()}\nsinks = ["out"]\n'
    )
    return path


@pytest.mark.parametrize(
    "condition",
    [
        "data.message.state ==",
        'roomid == "a" &&& true',
        "roomid # 1",
        '"unterminated',
        "data.message.list.exists(x, x == 1)",
        'data.message.list.map(x, x + 1).all(y, y > 0) || roomid == "a"',
    ],
)
def test_a_bad_condition_is_a_start_up_error_naming_the_route(
    tmp_path: Path, condition: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_config(tmp_path, condition))
    assert "routes[2].condition" in str(caught.value)
    assert repr(condition) in str(caught.value)


def test_only_the_named_fields_are_presented_to_a_condition() -> None:
    event = envelope(room_id="r", job_id="j", state="END", other={"deep": [1, 2]})
    condition = compile_condition('has(data.message.state) && data.message.state == "END"')
    values = activation(event, condition.paths)
    assert set(values) == {"data"}
    assert set(values["data"]) == {"message"}
    assert set(values["data"]["message"]) == {"state"}
    assert condition.holds(values)
    assert not compile_condition("has(data.message.nope)").holds(
        activation(event, [("data", "message", "nope")])
    )


def test_a_good_condition_loads(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, 'data.message.state == "END"'))
    assert settings.routes[2].condition == 'data.message.state == "END"'


def test_the_helper_body_routes_by_its_message_fields() -> None:
    event = build_envelope(
        parse_callback(callback_body(reply_id="r-9")), "id", 1_800_000_000.0, "src"
    )
    routes = router(RouteSettings(condition='data.message.reply_id == "r-9"', sinks=["s"]))
    assert routes.sinks_for(event) == ["s"]


async def test_the_service_counts_condition_errors_per_route(tmp_path: Path) -> None:
    extra = (
        f'[[sinks]]\nname = "pager"\ntype = "jsonl"\npath = "{tmp_path / "pager.jsonl"}"\n'
        '[[routes]]\ncondition = \'data.message.state == "END"\'\nsinks = ["pager"]\n'
    )
    app = ReceiverApp(load_settings(write_config(tmp_path, 8998, extra=extra)))
    await app.service.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8998") as http:
            url = "http://127.0.0.1:8998/callbacks/metastudio"
            for body in (callback_body(), callback_body("RTMP_STREAM_STATE_CHANGE", state="END")):
                response = await http.post(
                    "/callbacks/metastudio", content=body, headers=signed_headers(url)
                )
                assert response.status_code == 200
            async with asyncio.timeout(10):
                while (
                    len(read_jsonl(tmp_path / "out.jsonl")) < 2
                    or len(read_jsonl(tmp_path / "pager.jsonl")) < 1
                ):
                    await asyncio.sleep(0.01)
            metrics = (await http.get("/metrics")).text
    finally:
        await app.service.stop()
    assert len(read_jsonl(tmp_path / "pager.jsonl")) == 1
    assert 'receiver_route_condition_errors_total{route="1"} 1.0' in metrics
