"""What the fault and attack suites share: configs, a load generator, metrics, the ledger.

Every test runs ``receiver serve`` as a real child process on a free loopback port and
talks to it over real sockets. The ledger adds up, over the whole run, the faults injected
and the requests tried, and is printed as a table at the end of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import KEY, ReceiverProcess, free_port, read_jsonl, signed_headers

PATH = "/callbacks/metastudio"
LONG_ENV = "RELIABILITY_LONG"

# ---------------------------------------------------------------------------------------
# Short (CI) and long profiles


@dataclass(frozen=True)
class Profile:
    """How hard each fault is pushed: the short profile runs in CI, the long one by hand."""

    long: bool
    kills: int
    cut_seconds: float
    api_fault_seconds: float
    concurrency: int
    fuzz_examples: int
    schemathesis_examples: int
    sigterm_rounds: int


SHORT = Profile(False, 2, 5.0, 5.0, 8, 300, 40, 1)
LONG = Profile(True, 5, 30.0, 30.0, 16, 2000, 300, 3)


def add_long_option(parser: pytest.Parser) -> None:
    """``--long``: the long reliability run (both suites' conftests call this)."""
    with contextlib.suppress(ValueError):  # already added by the other suite's conftest
        parser.addoption(
            "--long",
            action="store_true",
            default=False,
            help=f"run the fault and attack suites with their long parameters (also {LONG_ENV}=1)",
        )


def is_long(config: pytest.Config) -> bool:
    try:
        option = bool(config.getoption("--long"))
    except ValueError:  # the option was registered too late to be parsed
        option = False
    return option or os.environ.get(LONG_ENV, "") not in ("", "0", "false", "no")


def profile_of(config: pytest.Config) -> Profile:
    return LONG if is_long(config) else SHORT


# ---------------------------------------------------------------------------------------
# The ledger: figures of the whole run


@dataclass
class Ledger:
    """Totals over the run; the summary table is printed once at the end."""

    counts: Counter[str] = field(default_factory=Counter)
    printed: bool = False

    def add(self, **figures: int) -> None:
        for name, value in figures.items():
            self.counts[name] += value

    ROWS = (
        ("faults_injected", "faults injected"),
        ("callbacks_sent", "callbacks sent under fault"),
        ("acknowledged", "acknowledged (2xx)"),
        ("lost", "acknowledged but lost (must be 0)"),
        ("duplicates", "duplicates delivered"),
        ("refused_503", "refused 503 with Retry-After"),
        ("attacks_tried", "forged/malformed requests tried"),
        ("attacks_refused", "forged/malformed requests refused"),
        ("forged_accepted", "forged/malformed requests answered 2xx (must be 0)"),
        ("forgeries_flagged", "forged bodies on a reused signature, flagged"),
        ("forgeries_unflagged", "forged bodies naming a real job in its room (residual)"),
        ("server_errors", "responses 500 (must be 0)"),
        ("schemathesis_cases", "schemathesis generated cases"),
        ("fuzz_inputs", "hypothesis fuzz inputs"),
        ("secret_scans", "texts scanned for secrets"),
        ("secret_hits", "secret leaks found (must be 0)"),
    )

    def table(self, long: bool) -> list[str]:
        width = max(len(label) for _, label in self.ROWS)
        lines = [f"reliability summary ({'long' if long else 'short'} run)"]
        lines.append("-" * (width + 12))
        for key, label in self.ROWS:
            lines.append(f"{label:<{width}}  {self.counts.get(key, 0):>9}")
        return lines


LEDGER = Ledger()


def print_summary(config: pytest.Config, reporter: Any) -> None:
    """The terminal summary hook of both suites: print the ledger once if it saw anything."""
    if LEDGER.printed or not LEDGER.counts:
        return
    LEDGER.printed = True
    reporter.write_sep("=", "reliability summary")
    for line in LEDGER.table(is_long(config)):
        reporter.write_line(line)
    target = os.environ.get("RELIABILITY_SUMMARY_JSON")
    if target:
        Path(target).write_bytes(orjson.dumps(dict(LEDGER.counts), option=orjson.OPT_INDENT_2))


# ---------------------------------------------------------------------------------------
# Configuration of a receiver under test


def receiver_config(
    directory: Path,
    port: int,
    *,
    sinks: str | None = None,
    routes: str = '[[routes]]\nsinks = ["out"]\n',
    auth: str | None = None,
    public_url: str | None = None,
    server: str = "",
    intake: str = "",
    pipeline: str = "",
    extra: str = "",
    intake_dir: Path | None = None,
) -> Path:
    """Write a receiver TOML file into ``directory`` and return its path."""
    url = public_url or f"http://127.0.0.1:{port}{PATH}"
    auth_block = auth or f'type = ["MSS_A", "MSS_A_HEAD"]\nkeys = ["{KEY}"]\n'
    sink_block = sinks or (
        f'[[sinks]]\nname = "out"\ntype = "jsonl"\npath = "{directory / "out.jsonl"}"\n'
    )
    text = f"""
[server]
host = "127.0.0.1"
port = {port}
public_url = "{url}"
graceful_shutdown_seconds = 10
{server}

[auth]
{auth_block}

[intake]
path = "{(intake_dir or directory) / "intake.db"}"
{intake}

[pipeline]
{pipeline}

[dead_letters]
path = "{directory / "dead.db"}"

[logging]
format = "json"
level = "DEBUG"

{sink_block}
{routes}
{extra}
"""
    path = directory / "receiver.toml"
    path.write_text(text)
    return path


PATIENT_RETRY = """
[pipeline.retry]
max_attempts = 100000
max_age_seconds = 3600
initial_backoff_seconds = 0.05
max_backoff_seconds = 0.5
"""


@contextlib.contextmanager
def started(config: Path, port: int) -> Iterator[ReceiverProcess]:
    """A receiver process, stopped with SIGTERM (then SIGKILL) if the test left it running."""
    receiver = ReceiverProcess(config, port)
    receiver.start(timeout=30)
    try:
        yield receiver
    finally:
        stop(receiver)


def stop(receiver: ReceiverProcess) -> None:
    process = receiver.process
    if process is not None and process.poll() is None:
        try:
            receiver.terminate(timeout=30)
        except Exception:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def serving(config: Path, port: int) -> AsyncIterator[ReceiverProcess]:
    """:func:`started` for async tests: the event loop (and any proxy on it) keeps running."""
    receiver = ReceiverProcess(config, port)
    await asyncio.to_thread(receiver.start, 30)
    try:
        yield receiver
    finally:
        await asyncio.to_thread(stop, receiver)


def new_port() -> int:
    return free_port()


# ---------------------------------------------------------------------------------------
# Load


@dataclass
class Load:
    """A bounded async sender: ``concurrency`` workers posting signed, distinct callbacks.

    Every answer is recorded: the ids acknowledged with 2xx, statuses, transport errors.
    ``stop()`` ends it; ``limit`` caps the number of callbacks.
    """

    base: str
    url: str
    concurrency: int = 8
    rooms: int = 7
    key: str = KEY
    limit: int | None = None
    tag: str = "load"
    connection_close: bool = False
    pause: float = 0.0  # seconds each worker waits between callbacks
    event_type: str = "REPLY_COMMAND_FINISH"
    extra_fields: dict[str, str] = field(default_factory=dict)
    jobs: list[tuple[str, str]] = field(default_factory=list)  # (room_id, job_id) to use
    acked: dict[str, int] = field(default_factory=dict)
    duplicates_answered: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    reset: list[int] = field(default_factory=list)  # numbers sent but never answered
    retry_after_missing: int = 0
    sent: int = 0
    _numbers: Iterator[int] = field(default_factory=itertools.count)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def body(self, n: int) -> bytes:
        if self.jobs:
            room, job = self.jobs[n % len(self.jobs)]
        else:
            room, job = f"room-{n % self.rooms}", f"job-room-{n % self.rooms}"
        message: dict[str, Any] = {"room_id": room, "job_id": job, **self.extra_fields}
        if self.event_type == "REPLY_COMMAND_FINISH":
            message["reply_id"] = f"{self.tag}-{n}"
        else:
            message["seq"] = f"{self.tag}-{n}"
        return orjson.dumps(
            {"event_type": self.event_type, "message": orjson.dumps(message).decode()}
        )

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._worker()) for _ in range(self.concurrency)]

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    async def run(self) -> None:
        """Start, and return when ``limit`` callbacks were sent."""
        self.start()
        await asyncio.gather(*self._tasks)

    async def wait_acked(self, count: int, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.acked) < count:
                await asyncio.sleep(0.01)

    async def _worker(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0 if self.connection_close else 4)
        async with httpx.AsyncClient(base_url=self.base, timeout=15, limits=limits) as http:
            while not self._stopping.is_set():
                n = next(self._numbers)
                if self.limit is not None and n >= self.limit:
                    return
                await self._post(http, n)
                if self.pause:
                    await asyncio.sleep(self.pause)

    async def _post(self, http: httpx.AsyncClient, n: int) -> None:
        headers = signed_headers(self.url, self.key)
        if self.connection_close:
            headers["connection"] = "close"
        self.sent += 1
        try:
            response = await http.post(PATH, content=self.body(n), headers=headers)
        except httpx.HTTPError as error:
            self.errors[type(error).__name__] += 1
            if not isinstance(error, httpx.ConnectError):
                self.reset.append(n)
            await asyncio.sleep(0.02)  # the receiver is down or restarting
            return
        self.statuses[str(response.status_code)] += 1
        if 200 <= response.status_code < 300:
            answer = response.json()
            if answer["status"] == "duplicate":
                self.duplicates_answered += 1
            self.acked[answer["id"]] = n
            return
        with contextlib.suppress(ValueError, AttributeError):
            self.codes[str(response.json().get("error"))] += 1
        if response.status_code == 503:
            if "retry-after" not in response.headers:
                self.retry_after_missing += 1
            await asyncio.sleep(0.05)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("5")) - int(
            self.statuses.get("503", 0)
        )

    def record(self, faults: int = 0) -> None:
        """Add this load's figures to the run's ledger."""
        LEDGER.add(
            faults_injected=faults,
            callbacks_sent=self.sent,
            acknowledged=len(self.acked),
            refused_503=self.statuses.get("503", 0),
            server_errors=self.server_errors,
        )


# ---------------------------------------------------------------------------------------
# Reading back what was stored and delivered


def metrics(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by (sample name, sorted labels)."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric(base: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for (sample, found), value in metrics(base).items():
        if sample == name and set(labels.items()) <= set(found):
            total += value
    return total


async def wait_drained(base: str, timeout: float = 60.0) -> None:
    """Wait until /metrics says the intake is empty (the gauge refreshes every 2 s)."""
    deadline = time.monotonic() + timeout
    zero_since: float | None = None
    while True:
        depth = await asyncio.to_thread(metric, base, "receiver_intake_depth")
        if depth == 0:
            zero_since = zero_since or time.monotonic()
            if time.monotonic() - zero_since > 2.5:  # two refreshes in a row
                return
        else:
            zero_since = None
        assert time.monotonic() < deadline, f"intake depth still {depth} after {timeout} s"
        await asyncio.sleep(0.25)


def jsonl_ids(path: Path) -> list[str]:
    return [str(line["id"]) for line in read_jsonl(path)]


async def wait_for_ids(read: Any, wanted: Iterable[str], timeout: float = 60.0) -> list[str]:
    """Poll ``read()`` (a list of delivered ids) until it covers ``wanted``."""
    wanted = set(wanted)
    deadline = time.monotonic() + timeout
    while True:
        ids = await read()
        if wanted <= set(ids):
            return list(ids)
        if time.monotonic() > deadline:
            return list(ids)
        await asyncio.sleep(0.25)


def intake_ids(db_path: Path) -> set[str]:
    """Event ids pending in an intake file (read-only, beside the running writer)."""
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return {row[0] for row in db.execute("SELECT event_id FROM events")}


def dead_letter_ids(db_path: Path) -> list[str]:
    if not db_path.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        try:
            return [row[0] for row in db.execute("SELECT event_id FROM dead_letters")]
        except sqlite3.OperationalError:
            return []


# ---------------------------------------------------------------------------------------
# Secrets


def scan_for_secrets(texts: dict[str, str], secrets: Iterable[str]) -> list[str]:
    """Where any secret occurs in any text: ``["<text name>: <secret prefix>..."]``."""
    hits = []
    wanted = [secret for secret in secrets if secret]
    for name, text in texts.items():
        for secret in wanted:
            if secret in text:
                hits.append(f"{name}: {secret[:4]}...")
    LEDGER.add(secret_scans=len(texts), secret_hits=len(hits))
    return hits


def job_secrets(jobs: Iterable[dict[str, Any]]) -> list[str]:
    """The secrets a MetaStudio job object carries: the callback key and RTC signatures."""
    found = []
    for job in jobs:
        found.append(job["live_event_callback_config"]["key"])
        found.extend(user["signature"] for user in job["rtc_room_info"]["users"])
        report_url = str(job.get("live_event_report_url") or "")
        if "token=" in report_url:
            found.append(report_url.split("token=", 1)[1])
    return found


# ---------------------------------------------------------------------------------------
# Brokers read back


async def nats_ids(stream: str) -> list[str]:
    """Every event id stored in a JetStream stream, in stream order (repeats kept)."""
    import nats

    from tests.brokers import NATS_URL

    client = await nats.connect(NATS_URL)
    try:
        js = client.jetstream()
        try:
            info = await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return []
        total = info.state.messages
        config = nats.js.api.ConsumerConfig(ack_policy=nats.js.api.AckPolicy.NONE)
        consumer = await js.pull_subscribe("", stream=stream, config=config)
        ids: list[str] = []
        try:
            while len(ids) < total:
                try:
                    batch = await consumer.fetch(min(1000, total - len(ids)), timeout=2)
                except nats.errors.TimeoutError:
                    break
                ids.extend(str(orjson.loads(message.data or b"{}")["id"]) for message in batch)
        finally:
            await consumer.unsubscribe()
        return ids
    finally:
        await client.close()


async def delete_nats_stream(stream: str) -> None:
    import nats

    from tests.brokers import NATS_URL

    client = await nats.connect(NATS_URL)
    try:
        with contextlib.suppress(Exception):
            await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


async def redis_ids(stream: str) -> list[str]:
    """Every event id in a Redis stream (repeats kept)."""
    import redis.asyncio as aioredis

    from tests.brokers import REDIS_URL

    client = aioredis.from_url(REDIS_URL)
    try:
        entries = await client.xrange(stream)
        return [fields[b"id"].decode() for _entry, fields in entries]
    finally:
        await client.aclose()


async def delete_redis_keys(stream: str) -> None:
    import redis.asyncio as aioredis

    from tests.brokers import REDIS_URL

    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{{{stream}}}*")]
        await client.delete(stream, *keys)
    finally:
        await client.aclose()


# ---------------------------------------------------------------------------------------
# The MetaStudio simulator behind enrichment

SIM_PROJECT = "70b76aa0c8f54253880af501cd2a1b3c"
SIM_AK = "RELIABILITYACCESSKEY"
SIM_SK = "reliability-secret-key-0123456789abcdef"
SIM_SEED = 11


def enrichment_config(
    sim_url: str,
    *,
    on_not_found: str = "forward",
    on_mismatch: str = "forward",
    deadline_seconds: float = 1.0,
    timeout_seconds: float = 0.5,
    max_retries: int = 1,
) -> str:
    """The [metastudio] and [enrichment] sections pointing at a simulator."""
    return f"""
[metastudio]
endpoint = "{sim_url}"
project_id = "{SIM_PROJECT}"
ak = "{SIM_AK}"
sk = "{SIM_SK}"
timeout_seconds = {timeout_seconds}
max_retries = {max_retries}
rate_limit_per_second = 50

[enrichment]
enabled = true
deadline_seconds = {deadline_seconds}
negative_ttl_seconds = 1
sweep_interval_seconds = 2
on_not_found = "{on_not_found}"
on_mismatch = "{on_mismatch}"
"""


# ---------------------------------------------------------------------------------------
# A downstream HTTP endpoint for the http sink


class Capture:
    """An ASGI app that stores the id of every envelope POSTed to it and answers 200."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.ids.append(str(orjson.loads(body)["id"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def read(self) -> list[str]:
        return list(self.ids)


def http_sink(port: int) -> str:
    return (
        f'[[sinks]]\nname = "out"\ntype = "http"\nurl = "http://127.0.0.1:{port}/events"\n'
        "timeout_seconds = 2\n"
    )
