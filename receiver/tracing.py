"""Optional OpenTelemetry tracing (``pip install 'receiver[otel]'``, ``[tracing] enabled``).

A span covers each callback request; its W3C ``traceparent`` travels in the envelope (the
CloudEvents distributed-tracing extension), so the delivery spans of the pipeline, one per
sink, join the same trace even after a restart. Disabled, every call here is a no-op.
"""

from __future__ import annotations

from typing import Any

from receiver.config import TracingSettings


class Tracing:
    """Spans when enabled; ``None`` when not."""

    def __init__(self, tracer: Any = None, provider: Any = None) -> None:
        self._tracer = tracer
        self._provider = provider

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def start_span(
        self, name: str, attributes: dict[str, Any], traceparent: str | None = None
    ) -> Any:
        """A span started now and ended by the caller (``span.end()``); a child of
        ``traceparent`` when given; None when disabled."""
        if self._tracer is None:
            return None
        return self._tracer.start_span(name, context=_context(traceparent), attributes=attributes)

    def traceparent(self, span: Any = None) -> str | None:
        """``span`` (the current span by default) as a W3C ``traceparent`` value."""
        if self._tracer is None:
            return None
        from opentelemetry.trace import set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        context = set_span_in_context(span) if span is not None else None
        TraceContextTextMapPropagator().inject(carrier, context=context)
        return carrier.get("traceparent")

    def shutdown(self) -> None:
        """Flush and stop the exporter."""
        if self._provider is not None:
            self._provider.shutdown()


def _context(traceparent: str | None) -> Any:
    if not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def build_tracing(settings: TracingSettings, exporter: Any = None) -> Tracing:
    """Tracing for these settings; ``exporter`` overrides the configured one (tests)."""
    if not settings.enabled:
        return Tracing()
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError:
        raise RuntimeError("tracing.enabled needs: pip install 'receiver[otel]'") from None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif settings.exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.endpoint or None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return Tracing(provider.get_tracer("receiver"), provider)
