"""The baseline: a bare Starlette app with one POST route that reads the body and answers
a small JSON document. Served by the benchmark under uvicorn with the receiver's options."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def callback(request: Request) -> JSONResponse:
    """Read the whole body, answer ``{"status": "accepted", "bytes": n}``."""
    body = await request.body()
    return JSONResponse({"status": "accepted", "bytes": len(body)})


app = Starlette(routes=[Route("/callbacks/metastudio", callback, methods=["POST"])])
