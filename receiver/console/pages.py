"""The console's pages: server-rendered with Jinja2; live parts fetch the JSON API."""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from receiver.console.api import read_bounded
from receiver.console.history import EventFilter
from receiver.console.sessions import COOKIE, Sessions
from receiver.console.tokens import Role, Tokens
from receiver.console.views import configuration, overview

if TYPE_CHECKING:
    from receiver.console.recorder import ConsoleRecorder
    from receiver.service import ReceiverService

HERE = Path(__file__).parent
MAX_TOKEN_CHARS = 512
MAX_FORM_BYTES = 8192


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, time.time() - seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ConsolePages:
    """Routes of the HTML pages, the login and the static assets."""

    def __init__(
        self,
        service: ReceiverService,
        recorder: ConsoleRecorder,
        tokens: Tokens,
        sessions: Sessions,
        secure_cookie: bool,
    ) -> None:
        self.service = service
        self.recorder = recorder
        self.tokens = tokens
        self.sessions = sessions
        self.secure_cookie = secure_cookie
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters["age"] = _age
        # Room and event ids are the body's: quoted whole, "/" too, in links.
        self.templates.env.filters["urlencode"] = lambda value: urllib.parse.quote(
            str(value), safe=""
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/", self.overview),
            Route("/rooms", self.rooms),
            Route("/rooms/{room_id:path}", self.room),
            Route("/events", self.events),
            Route("/events/{event_id}", self.event),
            Route("/dead-letters", self.letters),
            Route("/config", self.config),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]

    def _page(self, request: Request, name: str, **context: Any) -> Response:
        context.update(role=request.state.role, csrf=request.state.csrf, page=name)
        return self.templates.TemplateResponse(request, f"{name}.html", context)

    async def login(self, request: Request) -> Response:
        if self.tokens.open:
            return RedirectResponse("/", status_code=303)
        if request.method == "GET":
            return self._page(request, "login", failed=False)
        body = await read_bounded(request, MAX_FORM_BYTES)
        if body is None:
            return JSONResponse(
                {"error": "too_large", "detail": "the login form is too large"}, 413
            )
        # A urlencoded form of one field: parsed here, no multipart library needed.
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0][:MAX_TOKEN_CHARS]
        role = self.tokens.role_of(token) if token else None
        if role is None:
            response = self._page(request, "login", failed=True)
            response.status_code = 401
            return response
        session_id, session = self.sessions.create(role)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            session_id,
            max_age=int(session.expires_at - time.time()),
            httponly=True,
            samesite="strict",
            secure=self.secure_cookie,
            path="/",
        )
        return response

    async def logout(self, request: Request) -> Response:
        session_id = request.cookies.get(COOKIE)
        if session_id:
            self.sessions.end(session_id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def overview(self, request: Request) -> Response:
        return self._page(request, "overview", data=await overview(self.service))

    async def rooms(self, request: Request) -> Response:
        return self._page(request, "rooms", rooms=self.recorder.rooms.rooms())

    async def room(self, request: Request) -> Response:
        room_id = request.path_params["room_id"]
        room = self.recorder.rooms.get(room_id)
        records, _ = self.recorder.history.page(EventFilter(room=room_id), limit=200)
        response = self._page(request, "room", room=room, room_id=room_id, timeline=records[::-1])
        if room is None:
            response.status_code = 404
        return response

    async def events(self, request: Request) -> Response:
        return self._page(request, "events", query=dict(request.query_params))

    async def event(self, request: Request) -> Response:
        record = self.recorder.history.get(request.path_params["event_id"])
        response = self._page(request, "event", record=record)
        if record is None:
            response.status_code = 404
        return response

    async def letters(self, request: Request) -> Response:
        return self._page(request, "dead_letters")

    async def config(self, request: Request) -> Response:
        operator = request.state.role == Role.OPERATOR
        return self._page(request, "config", config=configuration(self.service, operator))
