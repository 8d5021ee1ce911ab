"""The console's JSON API under ``/api/``; errors are ``{"error", "detail"}``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from receiver.console.history import EventFilter
from receiver.console.replay import replay_letter
from receiver.console.tokens import Role
from receiver.console.views import configuration, overview
from receiver.routes_cli import MAX_EVENT_BYTES, BadInput, load_envelope, route_report

if TYPE_CHECKING:
    from receiver.console.recorder import ConsoleRecorder
    from receiver.deadletters.base import DeadLetter
    from receiver.service import ReceiverService

HEARTBEAT_SECONDS = 15.0
MAX_LETTERS = 1000
MAX_ROOMS = 500  # rooms per answer, the most recently active first
MAX_REPLAY_BODY = 4096


class ApiError(Exception):
    """An answer other than 2xx, with its code and detail."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse({"error": error.error, "detail": error.detail}, status_code=error.status)


def _operator(request: Request) -> None:
    if request.state.role != Role.OPERATOR:
        raise ApiError(403, "forbidden", "this needs the operator role")


def _number(request: Request, name: str, default: float | None = None) -> float | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be a number") from None
    if not math.isfinite(value):
        raise ApiError(400, "bad_request", f"{name} must be a finite number")
    return value


async def read_bounded(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it passes ``limit`` bytes (the rest is not read)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return body


async def _bounded_body(request: Request, limit: int) -> bytes:
    body = await read_bounded(request, limit)
    if body is None:
        raise ApiError(413, "too_large", f"the body is over {limit} bytes")
    return body


def event_filter(request: Request) -> EventFilter:
    """The filters of ``/api/events`` from the query string."""
    query = request.query_params
    return EventFilter(
        room=query.get("room", ""),
        job=query.get("job", ""),
        event_type=query.get("type", ""),
        enrichment=query.get("enrichment", ""),
        outcome=query.get("outcome", ""),
        since=_number(request, "since"),
        until=_number(request, "until"),
    )


def letter_summary(letter: DeadLetter, with_body: bool = False) -> dict[str, Any]:
    summary = letter.summary()
    if with_body:
        try:
            summary["envelope"] = orjson.loads(letter.body)
        except orjson.JSONDecodeError:
            summary["envelope"] = None
    return summary


class ConsoleApi:
    """The API's endpoints over one running service."""

    def __init__(self, service: ReceiverService, recorder: ConsoleRecorder) -> None:
        self.service = service
        self.recorder = recorder
        self.stopping = asyncio.Event()

    def routes(self) -> list[BaseRoute]:
        endpoints = [
            ("/api/session", self.session, ["GET"]),
            ("/api/overview", self.overview, ["GET"]),
            ("/api/rooms", self.rooms, ["GET"]),
            ("/api/rooms/{room_id:path}", self.room, ["GET"]),
            ("/api/events", self.events, ["GET"]),
            ("/api/events/stream", self.stream, ["GET"]),
            ("/api/events/{event_id}", self.event, ["GET"]),
            ("/api/dead-letters", self.letters, ["GET", "DELETE"]),
            ("/api/dead-letters/replay", self.replay_all, ["GET", "POST"]),
            ("/api/dead-letters/{letter_id:int}", self.letter, ["GET", "DELETE"]),
            ("/api/dead-letters/{letter_id:int}/replay", self.replay_one, ["POST"]),
            ("/api/config", self.config, ["GET"]),
            ("/api/routes/test", self.routes_test, ["POST"]),
        ]
        return [Route(path, self._wrap(func), methods=methods) for path, func, methods in endpoints]

    @staticmethod
    def _wrap(func: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                result = await func(request)
            except ApiError as error:
                return error_response(error)
            return result if isinstance(result, Response) else JSONResponse(result)

        return endpoint

    async def session(self, request: Request) -> dict[str, Any]:
        return {"role": request.state.role, "csrf": request.state.csrf}

    async def overview(self, _request: Request) -> dict[str, Any]:
        return await overview(self.service)

    async def rooms(self, request: Request) -> dict[str, Any]:
        limit = int(_number(request, "limit", MAX_ROOMS) or MAX_ROOMS)
        board = self.recorder.rooms
        rooms = board.rooms(max(1, min(limit, MAX_ROOMS)))
        return {"rooms": [room.as_dict() for room in rooms], "total": len(board)}

    async def room(self, request: Request) -> dict[str, Any]:
        room_id = request.path_params["room_id"]
        room = self.recorder.rooms.get(room_id)
        if room is None:
            raise ApiError(404, "not_found", "no such room in the recent events")
        records, _ = self.recorder.history.page(EventFilter(room=room_id), limit=200)
        return {"room": room.as_dict(), "timeline": [r.summary() for r in reversed(records)]}

    async def events(self, request: Request) -> dict[str, Any]:
        cursor = _number(request, "cursor")
        limit = _number(request, "limit", 50) or 50
        records, after = self.recorder.history.page(
            event_filter(request), None if cursor is None else int(cursor), int(limit)
        )
        return {"events": [r.summary() for r in records], "next_cursor": after}

    async def event(self, request: Request) -> dict[str, Any]:
        record = self.recorder.history.get(request.path_params["event_id"])
        if record is None:
            raise ApiError(404, "not_found", "no such event in the recent history")
        return record.detail()

    async def stream(self, request: Request) -> Response:
        """Server-sent events: each new or changed record matching the filters."""
        where = event_filter(request)
        history = self.recorder.history

        queue = history.subscribe()
        if queue is None:
            raise ApiError(503, "too_many_tails", "too many live tails are open; retry later")

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b": connected\n\n"
                while not self.stopping.is_set():
                    try:
                        async with asyncio.timeout(HEARTBEAT_SECONDS):
                            summary = await queue.get()
                    except TimeoutError:
                        yield b": heartbeat\n\n"
                        continue
                    record = history.get(summary["id"])
                    if record is not None and where.matches(record):
                        yield b"data: " + orjson.dumps(summary) + b"\n\n"
            finally:
                history.unsubscribe(queue)

        headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    async def letters(self, request: Request) -> dict[str, Any]:
        sink = request.query_params.get("sink") or None
        store = self.service.dead_letters
        if request.method == "DELETE":
            _operator(request)
            return {"purged": await store.purge(sink=sink)}
        limit = int(_number(request, "limit", 100) or 100)
        found = await store.list(sink=sink, limit=max(1, min(limit, MAX_LETTERS)))
        return {
            "dead_letters": [letter_summary(x) for x in found],
            "total": await store.count(sink),
        }

    async def letter(self, request: Request) -> dict[str, Any]:
        store = self.service.dead_letters
        letter = await store.get(request.path_params["letter_id"])
        if letter is None:
            raise ApiError(404, "not_found", "no such dead letter")
        if request.method == "DELETE":
            _operator(request)
            return {"removed": await store.remove(letter.id)}
        return letter_summary(letter, with_body=True)

    async def replay_one(self, request: Request) -> dict[str, Any]:
        _operator(request)
        store = self.service.dead_letters
        letter = await store.get(request.path_params["letter_id"])
        if letter is None:
            raise ApiError(404, "not_found", "no such dead letter")
        outcome = await replay_letter(self.service, letter)
        if outcome:
            raise ApiError(502, "replay_failed", outcome)
        return {"replayed": 1}

    async def replay_all(self, request: Request) -> dict[str, Any]:
        """GET: how many would be replayed (the preview); POST ``{"sink", "expected"}``."""
        store = self.service.dead_letters
        if request.method in ("GET", "HEAD"):
            sink = request.query_params.get("sink") or None
            return {"sink": sink, "count": await store.count(sink)}
        _operator(request)
        try:
            body = orjson.loads(await _bounded_body(request, MAX_REPLAY_BODY))
            sink, expected = body.get("sink") or None, int(body["expected"])
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
            raise ApiError(400, "bad_request", 'send {"sink": ..., "expected": N}') from None
        count = await store.count(sink)
        if count != expected:
            raise ApiError(409, "count_changed", f"{count} letters match now, not {expected}")
        replayed, failed = 0, []
        for letter in await store.list(sink=sink, limit=count):
            outcome = await replay_letter(self.service, letter)
            if outcome:
                failed.append({"id": letter.id, "error": outcome})
            else:
                replayed += 1
        return {"replayed": replayed, "failed": failed}

    async def routes_test(self, request: Request) -> dict[str, Any]:
        """Which routes a callback body or an envelope matches, and where it would go."""
        body = await _bounded_body(request, MAX_EVENT_BYTES)
        settings = self.service.settings
        try:
            return route_report(settings, load_envelope(body, settings))
        except BadInput as error:
            raise ApiError(400, "bad_event", str(error)) from None

    async def config(self, request: Request) -> dict[str, Any]:
        return configuration(self.service, request.state.role == Role.OPERATOR)

    async def close(self) -> None:
        """End every live tail."""
        self.stopping.set()
