"""``receiver check``: the configuration, every sink's reachability and one MetaStudio call."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from receiver.config import Settings
from receiver.metastudio.client import MetaStudioClient
from receiver.metastudio.errors import MetaStudioError
from receiver.reconcile.listing import misrouted_lines
from receiver.sinks import build_sink

# (what, passed: True, False or None for a warning that does not fail the check, detail)
Report = Callable[[str, bool | None, str], None]


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
            passed &= await _check_routing(settings, report)
        except (MetaStudioError, ValueError) as error:
            report("metastudio list call", False, str(error))
            passed = False
    else:
        report("metastudio list call", True, "skipped: metastudio.project_id not set")
    return passed


async def _check_routing(settings: Settings, report: Report) -> bool:
    """List the jobs once; warn of each whose callbacks do not reach this receiver."""
    accepted = [kind.value for kind in settings.auth.type]
    try:
        async with MetaStudioClient(settings.metastudio) as client:
            jobs = client.iter_jobs(limit=100, sort_key="update_time", sort_dir="desc")
            seen, lines = await misrouted_lines(jobs, settings.server.callback_url, accepted)
    except (MetaStudioError, ValueError) as error:
        report("misrouted jobs", False, str(error))
        return False
    report("misrouted jobs", None if lines else True, f"{len(lines)} of {seen} jobs listed")
    for line in lines:
        report("misrouted job", None, line)
    return True
