import asyncio
from pathlib import Path

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from receiver.app import ReceiverApp
from receiver.config import TracingSettings, load_settings
from receiver.tracing import build_tracing
from tests.helpers import callback_body, read_jsonl, signed_headers, write_config

URL = "http://127.0.0.1:8999/callbacks/metastudio"


async def test_callback_and_delivery_spans_share_one_trace(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    tracing = build_tracing(TracingSettings(enabled=True), exporter)
    app = ReceiverApp(load_settings(write_config(tmp_path, 8999)), tracing)
    await app.service.start()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8999"
    ) as http:
        response = await http.post(
            "/callbacks/metastudio", content=callback_body(), headers=signed_headers(URL)
        )
    async with asyncio.timeout(10):
        while not read_jsonl(tmp_path / "out.jsonl"):
            await asyncio.sleep(0.02)
    await app.service.stop()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    callback, publish = spans["metastudio.callback"], spans["publish out"]
    assert (
        callback.attributes is not None and callback.attributes["event_id"] == response.json()["id"]
    )
    assert publish.context.trace_id == callback.context.trace_id
    assert publish.parent is not None and publish.parent.span_id == callback.context.span_id
    (envelope,) = read_jsonl(tmp_path / "out.jsonl")
    assert str(envelope["traceparent"]).startswith("00-")


def test_disabled_tracing_adds_nothing() -> None:
    tracing = build_tracing(TracingSettings())
    assert not tracing.enabled and tracing.traceparent() is None
    assert tracing.start_span("x", {}) is None
