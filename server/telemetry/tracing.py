"""OpenTelemetry traces, configured by the standard OTEL_* environment variables.

OTEL_TRACES_EXPORTER: `none` (the default here: no SDK is loaded and no span is made, so
tracing off costs nothing), `console` (spans as JSON on stdout), `otlp` (to
OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4317, over gRPC), or both, comma
separated. OTEL_SERVICE_NAME names the service (default `notes`); the SDK reads the other
OTEL_* variables (sampler, resource attributes, batch sizes) itself. Context travels as W3C
`traceparent` (OTEL_PROPAGATORS) from the gateway to the service on the internal gRPC hop.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

_provider = None
_tracer = None


def enabled() -> bool:
    return _tracer is not None


def configure(exporters: str) -> bool:
    """Starts the SDK in this process if exporters (Settings.traces_exporter, from
    OTEL_TRACES_EXPORTER) names one; call it in each worker (after fork: the SDK's export
    thread does not survive one)."""
    global _provider, _tracer
    names = [n.strip() for n in exporters.lower().split(",") if n.strip() and n.strip() != "none"]
    if not names or _tracer is not None:
        return _tracer is not None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    os.environ.setdefault("OTEL_SERVICE_NAME", "notes")
    provider = TracerProvider(resource=Resource.create())
    for name in names:
        if name == "console":
            exporter = ConsoleSpanExporter()
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer("notes")
    return True


def shutdown() -> None:
    """Exports what is buffered."""
    if _provider is not None:
        _provider.shutdown()


def tracer():
    return _tracer


def current_trace_id() -> str:
    """The trace id of the current span (32 hex digits), or "" when tracing is off."""
    if _tracer is None:
        return ""
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def extract(metadata: Iterable[tuple[str, str]]):
    """The remote context a caller sent in its metadata (traceparent, tracestate)."""
    from opentelemetry import propagate

    return propagate.extract({k: v for k, v in metadata if isinstance(v, str)})


def inject(metadata: list[tuple[str, str]]) -> None:
    """Adds the current context (traceparent) to outgoing gRPC metadata."""
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    metadata.extend(carrier.items())
