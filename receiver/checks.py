"""``receiver check``: the configuration, every sink's reachability and one MetaStudio call."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from receiver.config import Settings
from receiver.metastudio.client import MetaStudioClient
from receiver.metastudio.errors import MetaStudioError
from receiver.sinks import build_sink

Report = Callable[[str, bool, str], None]


async def _check_sink(settings: Settings, name: str, wait_seconds: float) -> tuple[bool, str]:
    config = next(item for item in settings.sinks if item.name == name)
    try:
        sink = build_sink(config)
        await sink.start()
    except Exception as error:
        return False, f"{type(error).__name__}: {error}"
    try:
        deadline = time.monotonic() + wait_seconds
        while not sink.is_ready():
            if time.monotonic() > deadline:
                return False, f"not reachable within {wait_seconds:g} s"
            await asyncio.sleep(0.1)
        return True, "reachable"
    finally:
        with contextlib.suppress(Exception):
            await sink.close()


async def run_checks(settings: Settings, report: Report, wait_seconds: float = 5.0) -> bool:
    """Check every sink and, when configured, one authenticated list call; True if all pass."""
    passed = True
    for sink in settings.sinks:
        ok, detail = await _check_sink(settings, sink.name, wait_seconds)
        report(f"sink {sink.name} ({sink.type})", ok, detail)
        passed &= ok
    if settings.metastudio.project_id:
        try:
            async with MetaStudioClient(settings.metastudio) as client:
                page = await client.list_jobs(limit=1)
            report("metastudio list call", True, f"{page.count} jobs in the project")
        except (MetaStudioError, ValueError) as error:
            report("metastudio list call", False, str(error))
            passed = False
    else:
        report("metastudio list call", True, "skipped: metastudio.project_id not set")
    return passed
