"""``receiver jobs list``: query MetaStudio's live jobs from the command line.

Output is JSON (secrets redacted) or, with ``--table``, one line per job.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

import orjson

from receiver import tables
from receiver.config import ConfigError, load_settings
from receiver.metastudio.client import MetaStudioClient
from receiver.metastudio.errors import InvalidQueryError, MetaStudioError
from receiver.metastudio.query import JOB_STATES, SORT_KEYS, JobsQuery, ListJobsQuery

TABLE_COLUMNS = ("job_id", "room_id", "room_name", "state", "create_time", "duration")
_QUERY_FLAGS = (
    "offset",
    "limit",
    "state",
    "sort_key",
    "sort_dir",
    "create_since",
    "create_until",
    "room_name",
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``jobs list`` to a parser's subcommands."""
    jobs = commands.add_parser("jobs", help="query MetaStudio live jobs")
    actions = jobs.add_subparsers(dest="jobs_command", required=True)
    lister = actions.add_parser("list", help="list live jobs (the tenant's, or one room's)")
    lister.add_argument(
        "--config", "-c", default=None, help="TOML file (default: $RECEIVER_CONFIG or built-in)"
    )
    lister.add_argument("--offset", type=int, help="first job to return (default 0)")
    lister.add_argument("--limit", type=int, help="jobs per page, 1-100 (default 10)")
    lister.add_argument("--state", help=f"comma-separated states: {','.join(JOB_STATES)}")
    lister.add_argument("--sort-key", choices=SORT_KEYS)
    lister.add_argument("--sort-dir", choices=("asc", "desc"))
    lister.add_argument("--create-since", help="created at or after (RFC 3339)")
    lister.add_argument("--create-until", help="created at or before (RFC 3339)")
    lister.add_argument("--room-name", help="fuzzy room name match (tenant-wide list only)")
    lister.add_argument("--room-id", help="list this room's jobs instead of the tenant's")
    lister.add_argument("--all", action="store_true", help="follow every page")
    lister.add_argument("--table", action="store_true", help="print a table instead of JSON")
    lister.set_defaults(func=list_jobs_command)


def _query(args: argparse.Namespace) -> JobsQuery:
    params = {name: getattr(args, name) for name in _QUERY_FLAGS}
    given = {name: value for name, value in params.items() if value is not None}
    if args.room_id is not None:
        if "room_name" in given:
            raise InvalidQueryError([("room_name", "cannot be combined with --room-id")])
        return JobsQuery.parse(**given)
    return ListJobsQuery.parse(**given)


async def _fetch(
    client: MetaStudioClient, query: JobsQuery, room_id: str | None, every_page: bool
) -> tuple[int, list[dict[str, Any]]]:
    if every_page:
        if room_id is not None:
            jobs = [job async for job in client.iter_room_jobs(room_id, query)]
        else:
            assert isinstance(query, ListJobsQuery)
            jobs = [job async for job in client.iter_jobs(query)]
        return len(jobs), [job.redacted() for job in jobs]
    if room_id is not None:
        page = await client.list_room_jobs(room_id, query)
    else:
        assert isinstance(query, ListJobsQuery)
        page = await client.list_jobs(query)
    return page.count, [job.redacted() for job in page.smart_live_jobs]


def print_table(count: int, jobs: list[dict[str, Any]], out: TextIO) -> None:
    """One aligned line per job, then the total."""
    tables.print_table(TABLE_COLUMNS, [[job.get(c) for c in TABLE_COLUMNS] for job in jobs], out)
    out.write(f"{len(jobs)} shown, {count} in total\n")


def list_jobs_command(args: argparse.Namespace) -> int:
    """Run ``jobs list``: 0 on success, 1 when the API fails, 2 on bad input."""
    try:
        settings = load_settings(args.config)
        query = _query(args)
    except (ConfigError, InvalidQueryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    async def run() -> tuple[int, list[dict[str, Any]]]:
        async with MetaStudioClient(settings.metastudio) as client:
            return await _fetch(client, query, args.room_id, args.all)

    try:
        count, jobs = asyncio.run(run())
    except (ConfigError, InvalidQueryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except MetaStudioError as error:
        print(f"MetaStudio error: {error}", file=sys.stderr)
        return 1
    if args.table:
        print_table(count, jobs, sys.stdout)
    else:
        document = {"count": count, "smart_live_jobs": jobs}
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
