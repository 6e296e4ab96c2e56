"""ASGI middleware: one access log line, the HTTP metrics and a server span per request.

The route is the matched route's template (`/api/v1/notes/{id}`), never the raw path, so
neither the log nor the metrics' labels carry ids; a request no route matches is `unmatched`.
Each request gets an id (`req_` + 24 hex digits), logged and kept in `request.state.request_id`
for the dialects that show one (ShelfCycle's error `requestId`). The organization comes back
from the service (initial metadata) into `request.state.org`.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from ..telemetry import metrics, tracing

log = logging.getLogger("notes.http")

UNMATCHED = "unmatched"


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


class Observe:
    def __init__(self, app: Any, dialects: dict[str, str], with_metrics: bool = True) -> None:
        self.app = app
        self._dialects = dialects  # route template prefix -> dialect name
        self._metrics = metrics.get() if with_metrics else None
        # Bounded: route templates, methods and statuses, never raw paths.
        self._series: dict[tuple[str, str, str, int], tuple] = {}

    def _dialect(self, route: str) -> str:
        for prefix, name in self._dialects.items():
            if route.startswith(prefix):
                return name
        return ""

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = new_request_id()
        if tracing.enabled():
            await self._traced(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._record(scope, state, status, started, "")

    async def _traced(self, scope: dict, receive, send) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        state = scope["state"]
        started = time.perf_counter()
        status_box = {"status": 500}

        async def watching(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
            await send(message)

        with tracing.tracer().start_as_current_span(
            scope["method"],
            kind=SpanKind.SERVER,
            attributes={"http.request.method": scope["method"]},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await self.app(scope, receive, watching)
            finally:
                route = self._route(scope)
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status_box["status"])
                if status_box["status"] >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                self._record(
                    scope, state, status_box["status"], started, tracing.current_trace_id()
                )

    @staticmethod
    def _route(scope: dict) -> str:
        route = scope.get("route")
        return getattr(route, "path", None) or UNMATCHED

    def _record(self, scope: dict, state: dict, status: int, started: float, trace: str) -> None:
        seconds = time.perf_counter() - started
        route = self._route(scope)
        dialect = self._dialect(scope["path"])
        method = scope["method"]
        if self._metrics is not None:
            labels = (dialect, method, route, status)
            series = self._series.get(labels)
            if series is None:  # labels() costs more than the increment: once per series
                named = (dialect, method, route, str(status))
                series = (
                    self._metrics.http_requests.labels(*named),
                    self._metrics.http_seconds.labels(*named),
                )
                self._series[labels] = series
            series[0].inc()
            series[1].observe(seconds)
        log.info(
            "http",
            extra={
                "method": method,
                "route": route,
                "dialect": dialect,
                "status": status,
                "ms": round(seconds * 1000, 2),
                "org": state.get("org", ""),
                "request_id": state["request_id"],
                "trace_id": trace,
            },
        )


def request_id_of(request) -> str:
    """The id this request is logged under (a new one outside the middleware, in tests)."""
    return request.scope.get("state", {}).get("request_id") or new_request_id()


def set_org(request, org: str) -> None:
    request.scope.setdefault("state", {})["org"] = org
