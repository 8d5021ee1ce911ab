"""Async client of the MetaStudio smart-live job APIs.

One ``httpx.AsyncClient`` is reused for every call; every attempt waits for the client's
shared :class:`RateLimiter`, is authenticated afresh (AK/SK signature or IAM token) and is
retried a bounded number of times, with exponential backoff and full jitter, on 429, 5xx,
timeouts and transport errors. A 401 under token auth renews the token once and retries.

Once a call has spent its retries on a retryable failure the API is *down*: later calls make
one attempt each, without retries, until one is answered; so an outage costs each caller one
attempt instead of the whole retry budget. Every failure, also a request httpx refuses to
build (a URL over its length limit), is a :class:`MetaStudioError`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from receiver.config import ConfigError, MetaStudioSettings
from receiver.metastudio.auth import Auth, auth_from_settings
from receiver.metastudio.errors import (
    InvalidQueryError,
    InvalidResponse,
    MetaStudioError,
    Timeout,
    TransportError,
    error_for_status,
)
from receiver.metastudio.models import ListJobsResponse, SmartLiveJob
from receiver.metastudio.query import MAX_LIMIT, MAX_OFFSET, JobsQuery, ListJobsQuery
from receiver.metastudio.ratelimit import RateLimiter
from receiver.metastudio.signing import encode_query
from receiver.retry import Backoff

log = logging.getLogger(__name__)

APP_USER_HEADER = "X-App-UserId"
REQUEST_ID_HEADER = "X-Request-Id"
USER_AGENT = "receiver-metastudio/0.1"

Q = TypeVar("Q", bound=JobsQuery)
M = TypeVar("M", bound=BaseModel)
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class ClientCounters:
    """What the client has done, for metrics: calls, HTTP attempts, retries and errors."""

    calls: int = 0
    attempts: int = 0
    reauthentications: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def _segment(name: str, value: str) -> str:
    """``value`` as one path segment; ``.`` and ``..`` would change the path."""
    if not value:
        raise InvalidQueryError([(name, "must not be empty")])
    if value in (".", ".."):
        raise InvalidQueryError([(name, "must not be '.' or '..'")])
    return quote(value, safe="")


def _check_app_user_id(value: str) -> str:
    if value and not (value.isascii() and value.isprintable()):
        raise ConfigError(
            "metastudio.app_user_id: only printable ASCII is accepted "
            "(MetaStudio refuses Chinese characters in X-App-UserId)"
        )
    return value


def _merge(cls: type[Q], query: JobsQuery | None, params: dict[str, Any]) -> Q:
    given = query.model_dump(exclude_none=True) if query is not None else {}
    if cls is JobsQuery and "room_name" in given:
        raise InvalidQueryError([("room_name", "not accepted by the per-room job list")])
    return cls.parse(**{**given, **params})


class MetaStudioClient:
    """The MetaStudio job APIs for one project, as an async context manager."""

    def __init__(
        self,
        settings: MetaStudioSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: RateLimiter | None = None,
        auth: Auth | None = None,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
    ) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.app_user_id = _check_app_user_id(settings.app_user_id)
        self.limiter = limiter or RateLimiter(settings.rate_limit_per_second)
        self.counters = ClientCounters()
        self._sleep = sleep
        self._backoff = Backoff(backoff_base, backoff_cap, jitter)
        self._down = False
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_seconds),
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )
        self.auth = auth if auth is not None else auth_from_settings(settings, self._http)

    def __repr__(self) -> str:
        return (
            f"MetaStudioClient(base_url={self.base_url!r}, "
            f"project_id={self.settings.project_id!r}, auth={self.settings.auth!r})"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def _jobs_path(self, room_id: str | None = None, job_id: str | None = None) -> str:
        path = f"/v1/{_segment('project_id', self.settings.project_id)}"
        if room_id is None:
            return f"{path}/smart-live-jobs"
        path = f"{path}/smart-live-rooms/{_segment('room_id', room_id)}/smart-live-jobs"
        return path if job_id is None else f"{path}/{_segment('job_id', job_id)}"

    async def list_jobs(
        self, query: ListJobsQuery | None = None, **params: Any
    ) -> ListJobsResponse:
        """One page of the tenant's jobs (``GET /v1/{project_id}/smart-live-jobs``).

        Keyword parameters (``offset``, ``limit``, ``state``, ``sort_key``, ``sort_dir``,
        ``create_since``, ``create_until``, ``room_name``) override those of ``query``.
        """
        chosen = _merge(ListJobsQuery, query, params)
        return await self._list(self._jobs_path(), chosen)

    async def list_room_jobs(
        self, room_id: str, query: JobsQuery | None = None, **params: Any
    ) -> ListJobsResponse:
        """One page of one room's jobs (the same query as :meth:`list_jobs` minus room_name)."""
        chosen = _merge(JobsQuery, query, params)
        return await self._list(self._jobs_path(room_id), chosen)

    async def get_job(self, room_id: str, job_id: str) -> SmartLiveJob:
        """One job of one room; :class:`NotFound` when MetaStudio does not know it."""
        response = await self._request("GET", self._jobs_path(room_id, job_id), {})
        return self._parse(SmartLiveJob, response)

    async def iter_jobs(
        self, query: ListJobsQuery | None = None, **params: Any
    ) -> AsyncIterator[SmartLiveJob]:
        """Every job matching the query, following pages by offset until ``count``."""
        chosen = _merge(ListJobsQuery, query, params)
        async for job in self._pages(lambda q: self._list(self._jobs_path(), q), chosen):
            yield job

    async def iter_room_jobs(
        self, room_id: str, query: JobsQuery | None = None, **params: Any
    ) -> AsyncIterator[SmartLiveJob]:
        """Every job of one room matching the query, following pages."""
        chosen = _merge(JobsQuery, query, params)
        path = self._jobs_path(room_id)
        async for job in self._pages(lambda q: self._list(path, q), chosen):
            yield job

    async def _pages(
        self, fetch: Callable[[Q], Awaitable[ListJobsResponse]], query: Q
    ) -> AsyncIterator[SmartLiveJob]:
        offset = query.offset or 0
        limit = query.limit or MAX_LIMIT
        # Jobs created while paging shift later pages; do not yield a job twice.
        seen: set[str] = set()
        while offset <= MAX_OFFSET:
            page = await fetch(query.with_page(offset, limit))
            for job in page.smart_live_jobs:
                if job.job_id is not None:
                    if job.job_id in seen:
                        continue
                    seen.add(job.job_id)
                yield job
            offset += len(page.smart_live_jobs)
            if not page.smart_live_jobs or offset >= page.count:
                return

    async def _list(self, path: str, query: JobsQuery) -> ListJobsResponse:
        response = await self._request("GET", path, query.to_params())
        return self._parse(ListJobsResponse, response)

    def _parse(self, model: type[M], response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            self.counters.errors[InvalidResponse.kind] += 1
            raise InvalidResponse(
                response.status_code,
                error_msg=f"the answer is not a {model.__name__} document",
                request_id=response.headers.get(REQUEST_ID_HEADER, ""),
            ) from None

    @property
    def api_down(self) -> bool:
        """Whether the last call spent its retries on a retryable failure (see module doc)."""
        return self._down

    def _build(self, method: str, url: str, headers: dict[str, str]) -> httpx.Request:
        try:
            return self._http.build_request(method, url, headers=headers)
        except (httpx.InvalidURL, ValueError) as error:
            raise InvalidQueryError([("url", str(error))]) from None

    async def _attempt(self, request: httpx.Request) -> httpx.Response:
        await self.auth.apply(request)
        self.counters.attempts += 1
        try:
            return await self._http.send(request)
        except httpx.TimeoutException as error:
            # The httpx error holds the request and its credentials: do not chain it.
            limit = self.settings.timeout_seconds
            raise Timeout(f"{type(error).__name__} after {limit}s") from None
        except httpx.HTTPError as error:
            raise TransportError(f"{type(error).__name__}: {error}") from None
        except (httpx.InvalidURL, httpx.StreamError, ValueError) as error:
            raise InvalidQueryError([("request", f"{type(error).__name__}: {error}")]) from None

    async def _request(self, method: str, path: str, params: dict[str, str]) -> httpx.Response:
        query = encode_query(params)
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        headers = {APP_USER_HEADER: self.app_user_id} if self.app_user_id else {}
        self.counters.calls += 1
        retries = 0
        reauthenticated = False
        while True:
            await self.limiter.acquire()
            try:
                request = self._build(method, url, headers)
                response = await self._attempt(request)
                request_id = response.headers.get(REQUEST_ID_HEADER, "")
                log.debug(
                    "%s %s -> %s (request id %s)", method, path, response.status_code, request_id
                )
                if response.status_code < 400:
                    self._down = False
                    return response
                error = error_for_status(response.status_code, response.content, request_id)
                if response.status_code == 401 and not reauthenticated:
                    reauthenticated = True
                    if await self.auth.refresh_after_unauthorized(request):
                        self.counters.reauthentications += 1
                        continue
            except MetaStudioError as failure:
                error = failure
            if error.retryable and retries < self.settings.max_retries and not self._down:
                delay = self._backoff.delay(retries)
                retries += 1
                self.counters.retries[error.kind] += 1
                log.info("%s %s: %s; retry %d in %.2fs", method, path, error, retries, delay)
                await self._sleep(delay)
                continue
            if error.retryable:
                self._down = True
            elif error.status is not None:
                self._down = False  # an answer, even a refusal, shows the API is reachable
            self.counters.errors[error.kind] += 1
            log.warning("%s %s failed: %s", method, path, error)
            raise error
