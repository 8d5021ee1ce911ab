"""``receiver asyncapi``: the document of a deployment, valid under the AsyncAPI parser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from receiver.cli import main
from receiver.config import load_settings
from receiver.contract.asyncapi import asyncapi_document
from tests.brokers import unavailable

ROOT = Path(__file__).resolve().parents[2]
PARSER_VERSION = "3.6.6"
PARSER_DIR = Path(
    os.environ.get("ASYNCAPI_PARSER_DIR", Path.home() / ".cache" / "receiver-asyncapi-parser")
)
SCRIPT = Path(__file__).with_name("asyncapi_parse.cjs")


@pytest.fixture(scope="module")
def parser() -> Path:
    """The ``node_modules`` holding ``@asyncapi/parser`` (installed with npm when missing)."""
    modules = PARSER_DIR / "node_modules"
    if shutil.which("node") is None:
        unavailable("node is not installed")
    if not (modules / "@asyncapi" / "parser" / "package.json").is_file():
        if shutil.which("npm") is None:
            unavailable("npm is not installed")
        PARSER_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(PARSER_DIR), "--no-audit", "--no-fund",
             f"@asyncapi/parser@{PARSER_VERSION}"],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
    return modules


def parse(parser: Path, document: Path) -> dict[str, Any]:
    result = subprocess.run(
        ["node", str(SCRIPT), str(document)],
        env={**os.environ, "NODE_PATH": str(parser)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    report: dict[str, Any] = json.loads(result.stdout)
    assert (result.returncode == 0) == report["valid"], result.stderr
    return report


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "receiver.toml"
    base = (
        '[server]\npublic_url = "https://cb.example.com/callbacks/metastudio"\n'
        '[auth]\ntype = ["MSS_A_HEAD"]\nkeys = ["k-0123456789abcdef"]\n'
        f'[intake]\npath = "{tmp_path}/intake.db"\n'
        f'[dead_letters]\npath = "{tmp_path}/dead.db"\n'
    )
    path.write_text(base + text)
    return path


BINARY = """
[[sinks]]
name = "hook"
type = "http"
url = "https://hooks.example.com/in?token=tok-SECRET-1"
secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="
payload = "data"

[[sinks]]
name = "amqp"
type = "rabbitmq"
url = "amqp://user:pw-SECRET-2@mq.example.com:5672/live"
routing_key = "{event_type}.{room_id}"
payload = "message"

[[sinks]]
name = "archive"
type = "jsonl"
path = "out.jsonl"

[[routes]]
event_types = ["RTMP_STREAM_STATE_CHANGE"]
sinks = ["hook", "amqp"]

[[routes]]
sinks = ["archive"]
"""


def test_the_brokers_example_is_valid_under_the_official_parser(
    parser: Path, tmp_path: Path
) -> None:
    out = tmp_path / "asyncapi.json"
    assert main(["asyncapi", "-c", str(ROOT / "examples" / "brokers.toml"), "-o", str(out)]) == 0
    report = parse(parser, out)
    assert report["valid"], report["errors"]
    document = json.loads(out.read_text())
    assert set(document["channels"]) == {"nats", "rabbitmq", "redis", "kafka"}
    nats = document["channels"]["nats"]
    assert nats["address"] == "metastudio.live.{event_type}.{room_id}"
    assert set(nats["parameters"]) == {"event_type", "room_id"}
    assert len(nats["messages"]) == 5  # a "*" route: the three types, new ones, job states
    assert document["channels"]["rabbitmq"]["bindings"]["amqp"]["exchange"]["name"] == (
        "metastudio"
    )
    message = document["components"]["messages"]["kafka.RtmpStreamStateChange"]
    assert message["contentType"].startswith("application/cloudevents+json")
    assert message["bindings"]["kafka"]["key"]["description"] == "the room id"
    assert message["payload"] == {"$ref": "#/components/schemas/RtmpStreamStateChangeEnvelope"}


def test_binary_sinks_routes_and_secrets(parser: Path, tmp_path: Path) -> None:
    document = asyncapi_document(load_settings(write_config(tmp_path, BINARY)))
    text = json.dumps(document)
    assert "SECRET" not in text and "c2VjcmV0" not in text and "user" not in text
    assert set(document["channels"]) == {"hook", "amqp"}  # a file has no network peer
    hook = document["channels"]["hook"]
    assert hook["address"] == "/in"
    assert list(hook["messages"]) == ["RtmpStreamStateChange"]  # only what its route sends
    message = document["components"]["messages"]["hook.RtmpStreamStateChange"]
    assert message["contentType"] == "application/json"
    assert message["payload"] == {"$ref": "#/components/schemas/RtmpStreamStateChangeData"}
    headers = message["headers"]["properties"]
    assert {"ce-id", "ce-type", "ce-subject", "ce-time", "webhook-signature"} <= set(headers)
    amqp = document["components"]["messages"]["amqp.RtmpStreamStateChange"]
    assert amqp["payload"] == {"$ref": "#/components/schemas/RtmpStreamStateChangeMessage"}
    assert document["channels"]["amqp"]["bindings"]["amqp"]["exchange"]["vhost"] == "live"
    out = tmp_path / "binary.json"
    out.write_text(text)
    report = parse(parser, out)
    assert report["valid"], report["errors"]


def test_the_parser_refuses_a_broken_document(parser: Path, tmp_path: Path) -> None:
    document = asyncapi_document(load_settings(ROOT / "examples" / "brokers.toml"))
    document["operations"]["publish.nats"]["action"] = "push"
    out = tmp_path / "broken.json"
    out.write_text(json.dumps(document))
    assert not parse(parser, out)["valid"]


def test_a_bad_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nport = -1\n")
    assert main(["asyncapi", "-c", str(path)]) == 2
    assert "config error" in capsys.readouterr().err
