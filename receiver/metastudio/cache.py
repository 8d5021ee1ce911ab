"""The job cache behind enrichment: few list-API calls, shared by every concurrent lookup.

- A sweep of the tenant's recently updated active jobs (``sort_key=update_time``,
  ``sort_dir=desc``) warms and refreshes the cache; every job on a page is indexed.
- A miss for a job is answered by the room's job list (one call indexes the whole room);
  concurrent misses for the same room share that one call (single flight).
- A job missing from its room's list but indexed in another room is a ``mismatch``;
  missing everywhere is ``not_found``, remembered briefly (negative cache).
- Entries expire; memory is bounded (LRU).
- A room id the API cannot be asked about (``..``, too long for a URL) is ``not_found``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from receiver.metastudio.errors import InvalidQueryError, NotFound, Timeout
from receiver.metastudio.models import ListJobsResponse, SmartLiveJob
from receiver.redaction import redact_job

Status = Literal["ok", "not_found", "mismatch"]
Source = Literal["cache", "api"]

ACTIVE_STATES = "WAITING,PROCESSING"
_PAGE = 100
# Jobs in a state that changes soon are kept for a sixth of the TTL.
_TRANSITIONAL = frozenset({"WAITING"})


class JobSource(Protocol):
    """What the cache needs of the MetaStudio client."""

    async def list_jobs(self, query: Any = None, **params: Any) -> ListJobsResponse: ...

    async def list_room_jobs(
        self, room_id: str, query: Any = None, **params: Any
    ) -> ListJobsResponse: ...


@dataclass(frozen=True, slots=True)
class Lookup:
    """A cache answer: the job (secrets removed) when known, and where it came from."""

    status: Status
    job: dict[str, Any] | None
    source: Source


@dataclass(slots=True)
class _Entry:
    job: dict[str, Any]
    room_id: str
    expires: float


class JobCache:
    """See the module docstring. ``on_call(operation, outcome)`` counts API calls."""

    def __init__(
        self,
        source: JobSource,
        *,
        ttl_seconds: float,
        negative_ttl_seconds: float,
        max_entries: int,
        on_call: Callable[[str, str], None] = lambda operation, outcome: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._ttl = ttl_seconds
        self._negative_ttl = negative_ttl_seconds
        self._max = max_entries
        self._on_call = on_call
        self._clock = clock
        self._jobs: OrderedDict[str, _Entry] = OrderedDict()
        self._missing: OrderedDict[str, float] = OrderedDict()
        self._flights: dict[str, asyncio.Future[None]] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def peek(self, job_id: str, room_id: str) -> Lookup | None:
        """The cached answer for the job, if any, without calling the API."""
        return self._cached(job_id, room_id)

    async def lookup(self, job_id: str, room_id: str) -> Lookup:
        """The job ``job_id`` as seen from room ``room_id``; raises MetaStudioError on failure."""
        cached = self._cached(job_id, room_id)
        if cached is not None:
            return cached
        await self._single_flight(f"room:{room_id}", lambda: self._load_room(room_id))
        found = self._cached(job_id, room_id, source="api")
        if found is not None:
            return found
        self._remember(self._missing, job_id, self._clock() + self._negative_ttl)
        return Lookup("not_found", None, "api")

    def invalidate(self, job_id: str) -> None:
        """Forget a job so the next lookup asks the API (its state just changed)."""
        self._jobs.pop(job_id, None)
        self._missing.pop(job_id, None)

    async def sweep(self) -> int:
        """Index the tenant's active jobs, most recently updated first; returns how many."""
        return await self._single_flight("sweep", self._sweep_pages)

    def _cached(self, job_id: str, room_id: str, source: Source = "cache") -> Lookup | None:
        now = self._clock()
        entry = self._jobs.get(job_id)
        if entry is not None and entry.expires > now:
            self._jobs.move_to_end(job_id)
            return Lookup("ok" if entry.room_id == room_id else "mismatch", entry.job, source)
        missing_until = self._missing.get(job_id)
        if missing_until is not None and missing_until > now:
            return Lookup("not_found", None, source)
        return None

    async def _single_flight(self, key: str, work: Callable[[], Awaitable[int]]) -> int:
        flight = self._flights.get(key)
        if flight is not None:
            await asyncio.shield(flight)
            return 0
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            count = await work()
        except asyncio.CancelledError:
            # The owner's deadline or shutdown, not the waiters': they see a failed call.
            flight.set_exception(Timeout("the shared lookup was abandoned"))
            flight.exception()
            raise
        except BaseException as error:
            flight.set_exception(error)
            flight.exception()  # retrieved here: the waiters re-raise it themselves
            raise
        else:
            flight.set_result(None)
            return count
        finally:
            del self._flights[key]

    async def _load_room(self, room_id: str) -> int:
        try:
            page = await self._call(
                "list_room_jobs",
                self._source.list_room_jobs(
                    room_id, limit=_PAGE, sort_key="update_time", sort_dir="desc"
                ),
            )
        except (NotFound, InvalidQueryError):
            return 0
        return self._index(page.smart_live_jobs)

    async def _sweep_pages(self) -> int:
        indexed, offset = 0, 0
        while True:
            page = await self._call(
                "list_jobs",
                self._source.list_jobs(
                    offset=offset,
                    limit=_PAGE,
                    state=ACTIVE_STATES,
                    sort_key="update_time",
                    sort_dir="desc",
                ),
            )
            indexed += self._index(page.smart_live_jobs)
            offset += len(page.smart_live_jobs)
            if not page.smart_live_jobs or offset >= page.count or len(self._jobs) >= self._max:
                return indexed

    async def _call(self, operation: str, call: Awaitable[ListJobsResponse]) -> ListJobsResponse:
        try:
            page = await call
        except Exception as error:
            self._on_call(operation, getattr(error, "kind", "error"))
            raise
        self._on_call(operation, "ok")
        return page

    def _index(self, jobs: list[SmartLiveJob]) -> int:
        now = self._clock()
        count = 0
        for job in jobs:
            if not job.job_id or not job.room_id:
                continue
            ttl = self._ttl / 6 if job.state in _TRANSITIONAL else self._ttl
            data = redact_job(job.model_dump(mode="json", exclude_none=True))
            self._remember(self._jobs, job.job_id, _Entry(data, job.room_id, now + ttl))
            self._missing.pop(job.job_id, None)
            count += 1
        return count

    def _remember(self, table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self._max:
            table.popitem(last=False)
