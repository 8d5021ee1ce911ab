"""An answer as the HTTP protocol writes it: status line, uvicorn's default headers, JSON."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from receiver.callback import Answer

_HEAD = b"content-type: application/json\r\ncontent-length: "


class DefaultHeaders:
    """uvicorn's default headers (``date``), encoded once per change of its list."""

    __slots__ = ("_encoded", "_source")

    def __init__(self) -> None:
        self._source: object = None
        self._encoded = b""

    def encoded(self, defaults: list[tuple[bytes, bytes]]) -> bytes:
        """The headers' wire form; ``defaults`` is uvicorn's ``server_state.default_headers``."""
        if defaults is not self._source:
            self._encoded = b"".join(name + b": " + value + b"\r\n" for name, value in defaults)
            self._source = defaults
        return self._encoded


def answer_bytes(answer: Answer, defaults: bytes, request_id: str, keep_alive: bool) -> bytes:
    """The whole response: ``connection: close`` unless ``keep_alive``."""
    extra = (
        b"".join(name + b": " + value + b"\r\n" for name, value in answer.headers)
        if answer.headers
        else b""
    )
    return b"".join(
        (
            STATUS_LINE[answer.status],
            defaults,
            _HEAD,
            str(len(answer.body)).encode(),
            b"\r\nx-request-id: ",
            request_id.encode(),
            b"\r\n",
            extra,
            b"" if keep_alive else b"connection: close\r\n",
            b"\r\n",
            answer.body,
        )
    )
