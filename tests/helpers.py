"""Shared test helpers: signed callbacks, configs, and a receiver run as a real process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson

from receiver.signatures import hex_time, sign
from tests.envelope_schema import assert_valid_envelope

KEY = "test-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def callback_body(
    event_type: str = "REPLY_COMMAND_FINISH", room: str = "room-1", **fields: str
) -> bytes:
    message = {"room_id": room, "job_id": fields.pop("job_id", f"job-{room}"), **fields}
    return orjson.dumps({"event_type": event_type, "message": orjson.dumps(message).decode()})


def signed_headers(url: str, key: str = KEY, when: float | None = None) -> dict[str, str]:
    stamp = hex_time(time.time() if when is None else when)
    return {
        "x-hw-mss-secret": sign(key, url, stamp),
        "x-hw-mss-time": stamp,
        "content-type": "application/json",
    }


def write_config(
    directory: Path,
    port: int,
    *,
    extra: str = "",
    auth: str | None = None,
    tls: tuple[Path, Path] | None = None,
) -> Path:
    scheme = "https" if tls else "http"
    tls_lines = f'tls_certfile = "{tls[0]}"\ntls_keyfile = "{tls[1]}"\n' if tls else ""
    auth_block = auth or f'type = ["MSS_A", "MSS_A_HEAD"]\nkeys = ["{KEY}"]\n'
    text = f"""
[server]
host = "127.0.0.1"
port = {port}
public_url = "{scheme}://127.0.0.1:{port}/callbacks/metastudio"
graceful_shutdown_seconds = 5
{tls_lines}
[auth]
{auth_block}
[intake]
path = "{directory / "intake.db"}"

[dead_letters]
path = "{directory / "dead.db"}"

[logging]
format = "json"

[[sinks]]
name = "out"
type = "jsonl"
path = "{directory / "out.jsonl"}"

[[routes]]
sinks = ["out"]
{extra}
"""
    path = directory / "receiver.toml"
    path.write_text(text)
    return path


class ReceiverProcess:
    """``receiver serve`` in a child process, with its output captured to a file."""

    def __init__(
        self,
        config: Path,
        port: int,
        *,
        scheme: str = "http",
        verify: object = False,
        module: str = "receiver.cli",
        serve_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.config, self.port, self.scheme, self.verify = config, port, scheme, verify
        # the module run, extra arguments to `serve`, variables added
        self.module, self.serve_args, self.env = module, serve_args, env or {}
        self.log_path = config.parent / f"receiver-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
        env.update(self.env)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.module,
                "serve",
                "--config",
                str(self.config),
                *self.serve_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"receiver exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (
                    httpx.get(f"{self.base}/readyz", verify=self.verify, timeout=1).status_code
                    == 200
                ):  # type: ignore[arg-type]
                    return
            time.sleep(0.05)
        self.kill()  # a receiver that never became ready must not outlive the test
        raise RuntimeError("receiver did not become ready")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running(config: Path, port: int, **kwargs: object) -> Iterator[ReceiverProcess]:
    receiver = ReceiverProcess(config, port, **kwargs)  # type: ignore[arg-type]
    receiver.start()
    try:
        yield receiver
    finally:
        if receiver.process and receiver.process.poll() is None:
            receiver.terminate()


def read_jsonl(path: Path) -> list[dict[str, object]]:
    """The lines of a jsonl file; every envelope among them must follow its schema."""
    if not path.exists():
        return []
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    for line in lines:
        if isinstance(line, dict) and "specversion" in line:
            assert_valid_envelope(line)
    return lines
