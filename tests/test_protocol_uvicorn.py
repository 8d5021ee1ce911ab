"""The uvicorn internals :mod:`receiver.protocol` builds on, checked on the installed uvicorn.

The protocol subclasses uvicorn's private ``HttpToolsProtocol`` and drives its request
cycle, pipeline and flow control directly. pyproject.toml pins uvicorn to the range these
were read from; a uvicorn outside it, or one that renamed or re-shaped any of them, fails
here with the name of what changed instead of misbehaving on a live connection.
"""

from __future__ import annotations

import asyncio
import inspect
import tomllib
from collections import deque
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from tests.test_protocol import FakeTransport

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

#: The methods the protocol overrides or calls, with their parameters (``self`` left out).
PROTOCOL_METHODS = {
    "connection_made": ["transport"],
    "connection_lost": ["exc"],
    "data_received": ["data"],
    "on_message_begin": [],
    "on_url": ["url"],
    "on_header": ["name", "value"],
    "on_headers_complete": [],
    "on_body": ["body"],
    "on_message_complete": [],
    "on_response_complete": [],
    "shutdown": [],
}

#: Per-connection state the protocol reads or writes, set by ``__init__``/``connection_made``.
PROTOCOL_ATTRIBUTES = [
    "loop",
    "parser",
    "transport",
    "flow",
    "client",
    "cycle",
    "pipeline",
    "server_state",
    "connections",
    "tasks",
    "limit_concurrency",
    "timeout_keep_alive",
    "expect_100_continue",
    "url",
    "headers",
    "scope",
]


def test_installed_uvicorn_is_in_the_pinned_range() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (pin,) = [Requirement(d) for d in dependencies if Requirement(d).name == "uvicorn"]
    assert any(spec.operator == "<" for spec in pin.specifier), f"uvicorn is not pinned: {pin}"
    assert pin.specifier.contains(version("uvicorn")), (
        f"uvicorn {version('uvicorn')} is outside {pin.specifier}: check receiver/protocol.py "
        "against its httptools protocol before widening the pin"
    )


@pytest.mark.parametrize("name", list(PROTOCOL_METHODS))
def test_protocol_methods_keep_their_signatures(name: str) -> None:
    method = getattr(HttpToolsProtocol, name, None)
    assert callable(method), f"HttpToolsProtocol.{name} is gone"
    parameters = list(inspect.signature(method).parameters)[1:]
    assert parameters == PROTOCOL_METHODS[name], f"HttpToolsProtocol.{name}{parameters}"


async def test_protocol_state_is_where_the_subclass_expects_it() -> None:
    config = Config(app=lambda *_: None, limit_concurrency=7)
    config.load()
    state = ServerState()
    protocol = HttpToolsProtocol(config=config, server_state=state, app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.on_message_begin()
    missing = [name for name in PROTOCOL_ATTRIBUTES if not hasattr(protocol, name)]
    assert not missing, f"HttpToolsProtocol no longer sets {missing}"
    assert protocol.limit_concurrency == 7
    assert protocol.connections is state.connections and protocol in state.connections
    assert protocol.tasks is state.tasks
    assert isinstance(protocol.pipeline, deque) and isinstance(protocol.flow, FlowControl)
    assert callable(protocol.flow.resume_reading) and callable(protocol.flow.pause_reading)
    assert isinstance(state.default_headers, list) and isinstance(state.total_requests, int)
    assert protocol.url == b"" and protocol.headers == [] and not protocol.expect_100_continue
    assert protocol.scope["headers"] is protocol.headers
    for name in ("get_method", "get_http_version", "should_keep_alive", "should_upgrade"):
        assert callable(getattr(protocol.parser, name, None)), f"parser.{name} is gone"
    protocol.connection_lost(None)


async def test_on_headers_complete_builds_the_cycle_from_url_headers_and_expect() -> None:
    """The fallback to ASGI hands uvicorn a head the subclass parsed itself."""
    config = Config(app=lambda *_: None)
    config.load()
    state = ServerState()
    protocol = HttpToolsProtocol(config=config, server_state=state, app_state={})
    protocol.connection_made(FakeTransport())
    protocol.data_received(b"GET /x?y=1 HTTP/1.1\r\nhost: h\r\nexpect: 100-continue\r\n\r\n")
    cycle = protocol.cycle
    assert isinstance(cycle, RequestResponseCycle)
    assert cycle.scope["path"] == "/x" and cycle.scope["query_string"] == b"y=1"
    assert cycle.waiting_for_100_continue and cycle.keep_alive
    assert len(state.tasks) == 1
    for task in state.tasks:
        task.cancel()
    await asyncio.sleep(0)
    protocol.connection_lost(None)


def test_request_cycle_keeps_its_shape() -> None:
    parameters = list(inspect.signature(RequestResponseCycle.__init__).parameters)
    for name in ("keep_alive", "expect_100_continue", "on_response"):
        assert name in parameters, f"RequestResponseCycle({name}=...) is gone"
    source = inspect.getsource(RequestResponseCycle.__init__)
    for attribute in ("self.response_complete", "self.keep_alive"):
        assert attribute in source, f"RequestResponseCycle.{attribute[5:]} is gone"


def test_status_lines_and_trusted_hosts() -> None:
    for status in (408, 413, 414, 431, 503):
        assert httptools_impl.STATUS_LINE[status].startswith(b"HTTP/1.1 %d " % status)
    assert httptools_impl.STATUS_LINE[200] == b"HTTP/1.1 200 OK\r\n"
    hosts = ProxyHeadersMiddleware(lambda *_: None, ["127.0.0.1"]).trusted_hosts
    assert "127.0.0.1" in hosts and "10.0.0.1" not in hosts
    assert hosts.get_trusted_client_address("203.0.113.9, 127.0.0.1")[0] == "203.0.113.9"
