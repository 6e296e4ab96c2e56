"""Cross-cutting concerns of every RPC, one interceptor each, around unary and streaming methods
alike: tracing, the access log, metrics, errors, deadlines, credentials, rate limits and the
surface.

Each concern is a context manager around the call (`around`); `Concern` applies it to whatever
kind of method it meets, so a server-streaming method is checked and logged exactly as a unary
one (its body runs inside the block while its responses are produced). grpc.server() runs the
interceptors in list order, the first outermost: see `chain()`.
"""

from __future__ import annotations

import contextlib
import contextvars
import hmac
import logging
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc

from ..domain import cancellation
from ..domain.errors import DeadlineExceeded, DomainError, ValidationFailed
from ..domain.model import Principal, Surface
from ..service.credentials import Authenticator, check_surface, sign_surface
from ..service.limits import RateLimiter
from ..telemetry import metrics, tracing
from . import status

log = logging.getLogger("notes.access")
errors_log = logging.getLogger("notes.errors")

OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
HEALTH_PREFIX = "/grpc.health.v1."
SURFACE_HEADER = "x-notes-surface"
SURFACE_SIG_HEADER = "x-notes-surface-sig"
# Sent back to the gateway (initial metadata) once the caller is known, for its access log.
ORG_HEADER = "x-notes-org"
_SURFACE_NAMES = {s.value: s for s in Surface}

# Methods that change nothing: rate-limited as reads.
READ_METHODS = frozenset(
    {
        "GetNote",
        "ListNotes",
        "GetNoteHistory",
        "GetSubject",
        "ListSubjects",
        "CheckAccess",
        "ListEvents",
        "WatchEvents",
        "GetWebhook",
        "ListWebhooks",
        "ListWebhookDeliveries",
    }
)


@dataclass(frozen=True)
class Call:
    principal: Principal
    surface: Surface


_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("notes_principal")
# What the access log reports of a call, filled in by the concerns inside it.
_record: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("notes_record")
_surface: contextvars.ContextVar[Surface] = contextvars.ContextVar(
    "notes_surface", default=Surface.GRPC
)


def current() -> Call:
    """The credential and surface of the call being served."""
    return Call(_principal.get(), _surface.get())


@dataclass(frozen=True)
class CallInfo:
    method: str  # "/notes.v1.NotesService/GetNote"
    kind: str = "unary_unary"  # one of _KINDS

    @property
    def name(self) -> str:
        return self.method.rsplit("/", 1)[-1]

    @property
    def open(self) -> bool:
        """Health and reflection: no credential, no limits."""
        return self.method.startswith(OPEN_PREFIXES)


class _Undecodable:
    """Stands for a request that failed to parse, so it is refused as INVALID_ARGUMENT
    instead of gRPC's own INTERNAL "Exception deserializing request"."""


def _tolerant(deserializer):
    if deserializer is None:
        return None

    def parse(data: bytes):
        try:
            return deserializer(data)
        except Exception:  # noqa: BLE001 - DecodeError, invalid UTF-8, recursion depth
            return _Undecodable()

    return parse


_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
_FACTORIES = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


class Concern(grpc.ServerInterceptor):
    """One concern around every method. Subclasses implement around(); applies() may skip
    methods (health and reflection, for the credential concerns)."""

    def applies(self, call: CallInfo) -> bool:
        return True

    def around(self, call: CallInfo, request, context) -> contextlib.AbstractContextManager:
        raise NotImplementedError

    def deserializer(self, handler):
        return handler.request_deserializer

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        kind = next(k for k in _KINDS if getattr(handler, k) is not None)
        call = CallInfo(handler_call_details.method, kind)
        if not self.applies(call):
            return handler
        behavior = getattr(handler, kind)
        around = self.around
        if handler.response_streaming:

            def wrapped(request, context):
                with around(call, request, context):
                    yield from behavior(request, context)

        else:

            def wrapped(request, context):
                with around(call, request, context):
                    return behavior(request, context)

        return _FACTORIES[kind](
            wrapped,
            request_deserializer=self.deserializer(handler),
            response_serializer=handler.response_serializer,
        )


class AccessLog(Concern):
    """One line per call, whatever its outcome: method, code, milliseconds, organization,
    request id and trace id (never bodies or credentials)."""

    @contextlib.contextmanager
    def around(self, call: CallInfo, request, context) -> Iterator[None]:
        started = time.perf_counter()
        record: dict[str, str] = {}
        token = _record.set(record)
        try:
            yield
        finally:
            _record.reset(token)
            code = context.code()
            log.info(
                "rpc",
                extra={
                    "method": call.method,
                    "code": code.name if code is not None else "OK",
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                    "org": record.get("org", ""),
                    "request_id": str(getattr(request, "request_id", ""))[:64],
                    "trace_id": tracing.current_trace_id(),
                },
            )


_GRPC_TYPES = {
    "unary_unary": "UNARY",
    "unary_stream": "SERVER_STREAM",
    "stream_unary": "CLIENT_STREAM",
    "stream_stream": "BIDI_STREAM",
}


class Metrics(Concern):
    """grpc_server_started_total, grpc_server_handled_total and grpc_server_handling_seconds,
    labelled as py-grpc-prometheus labels them. The labelled series of a method are looked up
    once (labels() costs more than the increment)."""

    def __init__(self) -> None:
        self._m = metrics.get()
        self._series: dict[tuple[str, str], _Series] = {}

    def around(self, call: CallInfo, request, context) -> contextlib.AbstractContextManager:
        series = self._series.get((call.method, call.kind))
        if series is None:
            service, _, method = call.method[1:].rpartition("/")
            labels = (_GRPC_TYPES[call.kind], service, method)
            series = _Series(self._m, labels)
            self._series[(call.method, call.kind)] = series
        return _Timing(series, context)


class _Series:
    __slots__ = ("started", "seconds", "handled", "_m", "_labels")

    def __init__(self, m: metrics.Metrics, labels: tuple[str, str, str]) -> None:
        self._m, self._labels = m, labels
        self.started = m.grpc_started.labels(*labels)
        self.seconds = m.grpc_seconds.labels(*labels)
        self.handled: dict[str, object] = {}

    def handled_with(self, code: str):
        child = self.handled.get(code)
        if child is None:
            child = self._m.grpc_handled.labels(*self._labels, code)
            self.handled[code] = child
        return child


class _Timing:
    __slots__ = ("_series", "_context", "_started")

    def __init__(self, series: _Series, context) -> None:
        self._series, self._context = series, context

    def __enter__(self) -> None:
        self._series.started.inc()
        self._started = time.perf_counter()

    def __exit__(self, *exc) -> None:
        elapsed = time.perf_counter() - self._started
        code = self._context.code()
        self._series.handled_with(code.name if code is not None else "OK").inc()
        self._series.seconds.observe(elapsed)


class Tracing(Concern):
    """A server span per call, a child of the caller's (W3C traceparent in the metadata)."""

    def __init__(self) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self._tracer = tracing.tracer()
        self._server = SpanKind.SERVER
        self._error = Status(StatusCode.ERROR)

    @contextlib.contextmanager
    def around(self, call: CallInfo, request, context) -> Iterator[None]:
        service, _, method = call.method[1:].rpartition("/")
        with self._tracer.start_as_current_span(
            call.method[1:],
            context=tracing.extract(context.invocation_metadata()),
            kind=self._server,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            finally:
                code = context.code()
                span.set_attribute("rpc.grpc.status_code", code.value[0] if code else 0)
                if code is not None and code != grpc.StatusCode.OK:
                    span.set_status(self._error)


class Errors(Concern):
    """Domain errors become their status (with ErrorInfo and BadRequest); anything else is
    INTERNAL, logged by type only (messages may carry SQL or user data). An unparseable
    request is INVALID_ARGUMENT."""

    def deserializer(self, handler):
        if handler.request_streaming:
            return handler.request_deserializer
        return _tolerant(handler.request_deserializer)

    @contextlib.contextmanager
    def around(self, call: CallInfo, request, context) -> Iterator[None]:
        try:
            if isinstance(request, _Undecodable):
                raise ValidationFailed([("request", "is not a valid message (bad UTF-8?)")])
            yield
        except DomainError as e:
            context.abort_with_status(status.from_error(e))
        except GeneratorExit:
            raise  # a stream whose client went away
        except Exception as e:  # noqa: BLE001
            if context.code() is not None:
                raise  # an abort already decided the status
            errors_log.error(
                "unexpected_error", extra={"error": type(e).__name__, "method": call.method}
            )
            context.abort_with_status(status.internal())


class Deadlines(Concern):
    """A call whose deadline passed before it began is refused; one whose client stops waiting
    stops at the store (cancellation.check) instead of committing unseen."""

    def applies(self, call: CallInfo) -> bool:
        return not call.open

    @contextlib.contextmanager
    def around(self, call: CallInfo, request, context) -> Iterator[None]:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("the deadline passed before the call began")
        with cancellation.watching(lambda: not context.is_active()):
            yield


def _metadata(context, name: str) -> str | None:
    for key, value in context.invocation_metadata():
        if key == name:
            return value
    return None


class Credentials(Concern):
    """The caller's credential (the `authorization` metadata) becomes the call's principal.
    Inside SurfaceOf."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    def applies(self, call: CallInfo) -> bool:
        return not call.open

    @contextlib.contextmanager
    def around(self, call: CallInfo, request, context) -> Iterator[None]:
        # The surface decides some grants (a Medusa admin token on customer notes).
        principal = self._auth.authenticate(_metadata(context, "authorization"), _surface.get())
        record = _record.get(None)
        if record is not None:
            record["org"] = principal.org
        if _metadata(context, SURFACE_HEADER) is not None:  # the gateway logs the org too
            context.send_initial_metadata(((ORG_HEADER, principal.org),))
        check_surface(principal, _surface.get())
        token = _principal.set(principal)
        try:
            yield
        finally:
            _principal.reset(token)


class RateLimits(Concern):
    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    def applies(self, call: CallInfo) -> bool:
        return not call.open

    @contextlib.contextmanager
    def around(self, call: CallInfo, request, context) -> Iterator[None]:
        write = call.name not in READ_METHODS
        self._limiter.check(_principal.get(), call.method, write=write)
        yield


class SurfaceOf(Concern):
    """The surface a call came through: the gateway names its dialect and signs the name
    (sign_surface); every other caller is a gRPC client, whatever it claims."""

    def __init__(self, surface_key: bytes) -> None:
        self._key = surface_key

    def _surface(self, context) -> Surface:
        surface = _SURFACE_NAMES.get(_metadata(context, SURFACE_HEADER) or "", Surface.GRPC)
        if surface is Surface.GRPC or not self._key:
            return Surface.GRPC
        expected = sign_surface(self._key, surface.value, _metadata(context, "authorization") or "")
        given = _metadata(context, SURFACE_SIG_HEADER) or ""
        if hmac.compare_digest(given.encode(), expected.encode()):
            return surface
        return Surface.GRPC

    def applies(self, call: CallInfo) -> bool:
        return not call.open

    @contextlib.contextmanager
    def around(self, call: CallInfo, request, context) -> Iterator[None]:
        token = _surface.set(self._surface(context))
        try:
            yield
        finally:
            _surface.reset(token)


class HealthThreads(grpc.ServerInterceptor):
    """Health answers from threads of its own: with every worker waiting on a stalled
    database, a Check queued behind them would time out instead of answering. Outermost, so
    that the behavior it marks is the one grpc._server schedules."""

    def __init__(self) -> None:
        self._pool = futures.ThreadPoolExecutor(2, thread_name_prefix="health")

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is not None and handler_call_details.method.startswith(HEALTH_PREFIX):
            for kind in _KINDS:
                behavior = getattr(handler, kind)
                if behavior is not None:
                    behavior.experimental_thread_pool = self._pool  # honoured by grpc._server
        return handler


def chain(
    authenticator: Authenticator,
    limiter: RateLimiter,
    surface_key: bytes,
    *,
    with_metrics: bool = True,
) -> list[grpc.ServerInterceptor]:
    """The interceptors in order, outermost first: health's own threads are chosen on the
    outermost handler; the span holds everything (so the log line carries its trace id); the
    log and the metrics see the final status; errors map whatever the inner ones raise; the
    surface comes before the credentials it can grant more to, and they before the limits
    keyed by them. Tracing and metrics are left out when off, so that off costs nothing."""
    observing: list[grpc.ServerInterceptor] = [HealthThreads()]
    if tracing.enabled():
        observing.append(Tracing())
    observing.append(AccessLog())
    if with_metrics:
        observing.append(Metrics())
    return [
        *observing,
        Errors(),
        Deadlines(),
        SurfaceOf(surface_key),
        Credentials(authenticator),
        RateLimits(limiter),
    ]
