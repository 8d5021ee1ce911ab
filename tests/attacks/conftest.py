"""Attack and bad-input suite: ``--long`` (or RELIABILITY_LONG=1) switches to the long parameters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.attacks.support import BODY_TIMEOUT, MAX_BODY, Target
from tests.faults.support import (
    PATH,
    Profile,
    add_long_option,
    new_port,
    print_summary,
    profile_of,
    receiver_config,
    scan_for_secrets,
    started,
)
from tests.helpers import KEY


def pytest_addoption(parser: pytest.Parser) -> None:
    add_long_option(parser)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    print_summary(config, terminalreporter)


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> Profile:
    """The short (CI) or long parameters of this run."""
    return profile_of(pytestconfig)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One ``receiver serve`` per module: MSS_A and MSS_A_HEAD, a registered URL with a
    query, a 4 KiB body limit and a 1 s body deadline. On teardown its log, sink file and
    /metrics are scanned for the key, and the log for unhandled errors."""
    directory = tmp_path_factory.mktemp("attacks")
    port = new_port()
    url = f"http://127.0.0.1:{port}{PATH}?tenant=acme"
    config = receiver_config(
        directory,
        port,
        public_url=url,
        auth=f'type = ["MSS_A", "MSS_A_HEAD"]\nkeys = ["{KEY}"]\ntolerance_seconds = 60\n',
        server=f"max_body_bytes = {MAX_BODY}\nbody_timeout_seconds = {BODY_TIMEOUT}",
    )
    with started(config, port) as receiver:
        yield Target(receiver, url, directory / "out.jsonl")
        exposition = httpx.get(f"{receiver.base}/metrics", timeout=5).text
    logs = receiver.logs()
    texts = {"log": logs, "metrics": exposition}
    if (directory / "out.jsonl").exists():
        texts["sink"] = (directory / "out.jsonl").read_text()
    assert not scan_for_secrets(texts, [KEY])
    assert '"unhandled error"' not in logs
    assert "Traceback" not in logs
