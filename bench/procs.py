"""Processes under test: start, wait until they answer, CPU time, RSS, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def clean_env() -> dict[str, str]:
    """The environment without ``RECEIVER_*`` overrides (the generated config decides)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RECEIVER_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError):
                    children = Path(f"/proc/{current}/task/{task}/children").read_text()
                    todo.extend(int(child) for child in children.split())
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads) and its descendants."""
    total = 0
    for member in descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{member}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            # fields[0] is field 3 (state): utime is field 14, stime field 15
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` and its descendants."""
    total = 0
    for member in descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * _PAGE
    return total


@dataclass
class Server:
    """A started server process and where it listens."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, then SIGKILL; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start(
    name: str, argv: list[str], port: int, log_path: Path, ready_path: str, timeout: float = 30.0
) -> Server:
    """Start ``argv`` (output to ``log_path``) and wait until GET ``ready_path`` answers."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=clean_env(), stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(name, process, port, log_path)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
            try:
                if client.get(server.base_url + ready_path).status_code < 500:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"{name} did not answer in {timeout} s:\n{server.log_tail()}")
            time.sleep(0.1)


def python() -> str:
    """The interpreter running the benchmark (the project's virtualenv)."""
    return sys.executable


def start_baseline(port: int, log_path: Path) -> Server:
    """The bare Starlette app under uvicorn with the receiver's options (one worker)."""
    argv = [
        python(),
        "-m",
        "uvicorn",
        "bench.baseline:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--lifespan",
        "on",
        "--proxy-headers",
        "--forwarded-allow-ips",
        "127.0.0.1",
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
    ]
    # A GET on the POST-only route answers 405: the server is up.
    return start("baseline", argv, port, log_path, "/callbacks/metastudio")


def start_receiver(config: Path, port: int, log_path: Path) -> Server:
    """``receiver serve --config FILE``: its JSON logs (access log included) go to a file."""
    argv = [python(), "-m", "receiver.cli", "serve", "--config", str(config)]
    return start("receiver", argv, port, log_path, "/readyz")


def start_simulator(port: int, jobs: int, log_path: Path, ak: str, sk: str, project: str) -> Server:
    """``receiver simulate api``: the local MetaStudio job API."""
    argv = [
        python(),
        "-m",
        "receiver.cli",
        "simulate",
        "api",
        "--port",
        str(port),
        "--project-id",
        project,
        "--ak",
        ak,
        "--sk",
        sk,
        "--jobs",
        str(jobs),
        "--seed",
        "bench",
    ]
    return start("simulator", argv, port, log_path, "/_sim/stats")
