"""The console in a real browser: Debian's Chromium driven by Playwright.

Set ``CONSOLE_SCREENSHOTS=docs`` to write the pages' screenshots where the README shows them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.brokers import unavailable
from tests.console.conftest import OPERATOR, VIEWER, tokens_file
from tests.helpers import KEY, free_port, running, write_config

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
]  # fmt: skip
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS", "")


def hook_sink(port: int) -> str:
    return f"""
[[sinks]]
name = "hook"
type = "http"
url = "http://127.0.0.1:{port}/hook"
max_attempts = 1

[[routes]]
event_types = ["REPLY_COMMAND_FINISH"]
sinks = ["hook"]
"""


class Hook:
    """An HTTP endpoint started late: until then, deliveries to it fail (dead letters)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[bytes] = []
        self.server: uvicorn.Server | None = None

    def start(self) -> None:
        async def hook(request: Request) -> Response:
            self.received.append(await request.body())
            return Response(status_code=204)

        app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True).start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True


@pytest.fixture
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        unavailable("Debian's chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def shot(page: object, name: str, tmp_path: Path) -> None:
    directory = Path(SHOTS) if SHOTS else tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(directory / f"console-{name}.png"), full_page=True)  # type: ignore[attr-defined]


def send(url: str, count: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "receiver.cli", "simulate", "send", "--url", url, "--key", KEY,
         "--auth", "MSS_A_HEAD", "--scenario", "live-session", "--rooms", "3",
         "--count", str(count)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def login(browser: object, admin: str, token: str) -> object:
    context = browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{admin}/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{admin}/")
    return page


def test_an_operator_watches_filters_opens_and_replays_a_viewer_is_refused(
    browser: object, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    port, admin_port, hook_port = free_port(), free_port(), free_port()
    tokens = tokens_file(tmp_path)
    extra = (
        hook_sink(hook_port)
        + f'\n[admin]\nenabled = true\nport = {admin_port}\ntokens_file = "{tokens}"\n'
    )
    hook = Hook(hook_port)
    with running(write_config(tmp_path, port, extra=extra), port) as receiver:
        admin = f"http://127.0.0.1:{admin_port}"
        callbacks = f"{receiver.base}/callbacks/metastudio"

        page = login(browser, admin, OPERATOR)
        expect(page.locator("#role")).to_have_text("operator")
        page.goto(f"{admin}/events")
        page.wait_for_timeout(300)  # the live tail connects
        send(callbacks, 12)
        rows = page.locator("#events tbody tr")
        expect(rows).to_have_count(12, timeout=15_000)
        expect(page.locator("#events tbody tr td.outcome-delivered").first).to_be_visible()
        shot(page, "events", tmp_path)

        page.goto(f"{admin}/events?type=RTMP_STREAM_STATE_CHANGE")
        expect(rows.first).to_be_visible(timeout=10_000)
        types = rows.locator("td:nth-child(3)").all_inner_texts()
        assert types and set(types) == {"RTMP_STREAM_STATE_CHANGE"}

        rows.first.locator("td:nth-child(3) a").click()
        expect(page.locator("#envelope")).to_contain_text('"specversion": "1.0"')
        expect(page.locator("#deliveries")).to_contain_text("delivered")
        assert "stream_key" not in page.content() or "[redacted]" in page.content()

        page.goto(f"{admin}/rooms")
        tiles = page.locator("#room-wall .tile")
        expect(tiles).to_have_count(3, timeout=10_000)
        expect(page.locator("#room-wall .tile.state-connected").first).to_be_visible()
        shot(page, "rooms", tmp_path)
        tiles.first.click()
        expect(page.locator("#timeline tbody tr").first).to_be_visible()

        page.goto(f"{admin}/")
        expect(page.locator("#depth")).to_have_text("0", timeout=10_000)
        page.wait_for_timeout(2500)  # one more poll draws the rate line
        shot(page, "overview", tmp_path)

        page.goto(f"{admin}/dead-letters")
        letters = page.locator("#letters tbody tr")
        expect(letters.first).to_be_visible(timeout=10_000)
        before = letters.count()
        assert before >= 1
        shot(page, "dead-letters", tmp_path)

        viewer = login(browser, admin, VIEWER)
        viewer.goto(f"{admin}/dead-letters")
        viewer.locator("#letters tbody tr button.replay").first.click()
        expect(viewer.locator("#notice")).to_contain_text("Replay refused")
        expect(viewer.locator("#letters tbody tr")).to_have_count(before)

        hook.start()
        try:
            page.locator("#letters tbody tr button.replay").first.click()
            expect(page.locator("#notice")).to_contain_text("replayed")
            expect(letters).to_have_count(before - 1)
            assert len(hook.received) == 1
        finally:
            hook.stop()

        page.goto(f"{receiver.base}/rooms")
        assert "Live rooms" not in page.content()  # the callback port has no console
        assert page.evaluate("document.body.innerText").find("not_found") >= 0


@pytest.mark.skipif(shutil.which("node") is None, reason="no node")
def test_console_script_has_no_syntax_error() -> None:
    script = Path(__file__).parents[2] / "receiver" / "console" / "static" / "console.js"
    subprocess.run(["node", "--check", str(script)], check=True, timeout=30)
