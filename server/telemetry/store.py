"""What the store's units of work report: connections in use, rollbacks, and a span each."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from . import metrics, tracing


@contextlib.contextmanager
def unit(kind: str, engine: str) -> Iterator[None]:
    """Around one unit of work (kind "read" or "write") holding a pooled connection."""
    m = metrics.get()
    m.store_connections.inc()
    try:
        if tracing.enabled():
            from opentelemetry.trace import SpanKind

            with tracing.tracer().start_as_current_span(
                f"db.{kind}", kind=SpanKind.CLIENT, attributes={"db.system": engine}
            ):
                yield
        else:
            yield
    except BaseException:
        if kind == "write":
            m.store_rollbacks.inc()
        raise
    finally:
        m.store_connections.dec()


def writer_waited(seconds: float) -> None:
    metrics.get().store_writer_wait.observe(seconds)


def rolled_back(transactions: int) -> None:
    """Writers whose block had gone in when their shared (SQLite group) commit failed."""
    if transactions:
        metrics.get().store_rollbacks.inc(transactions)
