"""Cross-cutting concerns of every RPC, one class each, around unary and streaming methods
alike: tracing, the access log, metrics, errors, deadlines, credentials, rate limits and the
surface.

Each concern is a context manager around the call (`around`); `Concern` applies it to whatever
kind of method it meets, so a server-streaming method is checked and logged exactly as a unary
one (its body runs inside the block while its responses are produced). One interceptor,
`Concerns`, composes them around each method once, the first outermost: see `chain()`.
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


class Concern:
    """One concern around every method. Subclasses implement around(); applies() may skip
    methods (health and reflection, for the credential concerns)."""

    def applies(self, call: CallInfo) -> bool:
        return True

    def around(self, call: CallInfo, request, context) -> contextlib.AbstractContextManager:
        raise NotImplementedError

    def deserializer(self, deserializer, request_streaming: bool):
        return deserializer

    def wrap(self, call: CallInfo, behavior, response_streaming: bool):
        """behavior inside around(), for every call of the method."""
        around = self.around
        if response_streaming:

            def streaming(request, context):
                with around(call, request, context):
                    yield from behavior(request, context)

            return streaming

        def unary(request, context):
            with around(call, request, context):
                return behavior(request, context)

        return unary


class Concerns(grpc.ServerInterceptor):
    """The concerns, outermost first, composed around a method once, at its first call:
    grpc.server() asks every interceptor for every call, and composing per call (a handler
    and a closure per concern) cost more than most concerns themselves. A method's handler is
    fixed once the server is built, so the composed one is kept by method name; only names
    the server serves get one (continuation answers None for the others). Health answers from
    threads of its own: with every worker waiting on a stalled database, a Check queued behind
    them would time out instead of answering. Streaming methods (WatchEvents, reflection) run
    on stream_threads of their own, so that a long stream never holds a unary thread, and unary
    reads on read_threads (see Settings.read_threads); the rest on the server's pool."""

    def __init__(self, concerns: list[Concern], stream_threads: int, read_threads: int) -> None:
        self._concerns = concerns
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        self._health = futures.ThreadPoolExecutor(2, thread_name_prefix="health")
        self._streams = futures.ThreadPoolExecutor(stream_threads, thread_name_prefix="stream")
        self._reads = futures.ThreadPoolExecutor(read_threads, thread_name_prefix="read")

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is None:
            inner = continuation(handler_call_details)
            if inner is None:
                return None
            handler = self._handlers.setdefault(method, self._compose(method, inner))
        return handler

    def _compose(self, method: str, handler):
        kind = next(k for k in _KINDS if getattr(handler, k) is not None)
        call = CallInfo(method, kind)
        behavior = getattr(handler, kind)
        deserializer = handler.request_deserializer
        for concern in reversed(self._concerns):
            if concern.applies(call):
                behavior = concern.wrap(call, behavior, handler.response_streaming)
                deserializer = concern.deserializer(deserializer, handler.request_streaming)
        # Pools that grpc._server honours; its maximum_concurrent_rpcs counts calls on all of them.
        if method.startswith(HEALTH_PREFIX):
            behavior.experimental_thread_pool = self._health
        elif handler.request_streaming or handler.response_streaming:
            behavior.experimental_thread_pool = self._streams
        elif call.name in READ_METHODS and not call.open:
            behavior.experimental_thread_pool = self._reads
        return _FACTORIES[kind](
            behavior,
            request_deserializer=deserializer,
            response_serializer=_serialized_as_is(handler.response_serializer),
        )


def _serialized_as_is(serializer):
    """The method's serializer, but a reply that is bytes already (a ListNotesResponse made by
    convert.list_out) goes as it is."""
    if serializer is None:
        return None

    def serialize(reply) -> bytes:
        return reply if reply.__class__ is bytes else serializer(reply)

    return serialize


class AccessLog(Concern):
    """One line per call, whatever its outcome: method, code, milliseconds, organization,
    request id and trace id (never bodies or credentials). The record is made here rather
    than by log.info(), which looks for its caller's frame and copies the record (the cost of
    each: docs/benchmarks.md, "Python per RPC")."""

    def around(self, call: CallInfo, request, context) -> contextlib.AbstractContextManager:
        return _Logged(call.method, request, context)


class _Logged:
    __slots__ = ("_method", "_request", "_context", "_started", "_record", "_token")

    def __init__(self, method: str, request, context) -> None:
        self._method, self._request, self._context = method, request, context

    def __enter__(self) -> None:
        self._started = time.perf_counter()
        self._record: dict[str, str] = {}
        self._token = _record.set(self._record)

    def __exit__(self, *exc) -> None:
        _record.reset(self._token)
        if not log.isEnabledFor(logging.INFO):
            return
        code = self._context.code()
        line = logging.LogRecord(log.name, logging.INFO, __file__, 0, "rpc", None, None)
        line.method = self._method
        line.code = code.name if code is not None else "OK"
        line.ms = round((time.perf_counter() - self._started) * 1000, 2)
        line.org = self._record.get("org", "")
        line.request_id = str(getattr(self._request, "request_id", ""))[:64]
        line.trace_id = tracing.current_trace_id()
        log.handle(line)


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

    def deserializer(self, deserializer, request_streaming: bool):
        return deserializer if request_streaming else _tolerant(deserializer)

    def around(self, call: CallInfo, request, context) -> contextlib.AbstractContextManager:
        return _Mapped(call.method, request, context)


class _Mapped:
    """Errors.around, a class rather than a generator: every call passes it (the concerns'
    cost: docs/benchmarks.md, "GetNote and ListNotes against the floor")."""

    __slots__ = ("_method", "_request", "_context")

    def __init__(self, method: str, request, context) -> None:
        self._method, self._request, self._context = method, request, context

    def __enter__(self) -> None:
        if isinstance(self._request, _Undecodable):
            e = ValidationFailed([("request", "is not a valid message (bad UTF-8?)")])
            self._context.abort_with_status(status.from_error(e))

    def __exit__(self, kind, e, traceback) -> bool:
        if e is None or not isinstance(e, Exception):
            return False  # GeneratorExit too: a stream whose client went away
        if isinstance(e, DomainError):
            self._context.abort_with_status(status.from_error(e))
        if self._context.code() is not None:
            return False  # an abort already decided the status
        errors_log.error(
            "unexpected_error", extra={"error": type(e).__name__, "method": self._method}
        )
        self._context.abort_with_status(status.internal())
        return False


class Deadlines(Concern):
    """A call whose deadline passed before it began is refused; one whose client stops waiting
    stops at the store (cancellation.check) instead of committing unseen."""

    def applies(self, call: CallInfo) -> bool:
        return not call.open

    def around(self, call: CallInfo, request, context) -> contextlib.AbstractContextManager:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("the deadline passed before the call began")
        return cancellation.watching(lambda: not context.is_active())


class _Setting:
    """var set to value inside the block."""

    __slots__ = ("_var", "_value", "_token")

    def __init__(self, var: contextvars.ContextVar, value) -> None:
        self._var, self._value = var, value

    def __enter__(self) -> None:
        self._token = self._var.set(self._value)

    def __exit__(self, *exc) -> None:
        self._var.reset(self._token)


_NOTHING = contextlib.nullcontext()


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

    def around(self, call: CallInfo, request, context) -> contextlib.AbstractContextManager:
        # The surface decides some grants (a Medusa admin token on customer notes).
        principal = self._auth.authenticate(_metadata(context, "authorization"), _surface.get())
        record = _record.get(None)
        if record is not None:
            record["org"] = principal.org
        if _metadata(context, SURFACE_HEADER) is not None:  # the gateway logs the org too
            context.send_initial_metadata(((ORG_HEADER, principal.org),))
        check_surface(principal, _surface.get())
        return _Setting(_principal, principal)


class RateLimits(Concern):
    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    def applies(self, call: CallInfo) -> bool:
        return not call.open

    def around(self, call: CallInfo, request, context) -> contextlib.AbstractContextManager:
        write = call.name not in READ_METHODS
        self._limiter.check(_principal.get(), call.method, write=write)
        return _NOTHING


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

    def around(self, call: CallInfo, request, context) -> contextlib.AbstractContextManager:
        return _Setting(_surface, self._surface(context))


def chain(
    authenticator: Authenticator,
    limiter: RateLimiter,
    surface_key: bytes,
    *,
    stream_threads: int,
    read_threads: int,
    with_metrics: bool = True,
) -> list[grpc.ServerInterceptor]:
    """The interceptor: the concerns in order, outermost first: the span holds everything (so
    the log line carries its trace id); the log and the metrics see the final status; errors
    map whatever the inner ones raise; the surface comes before the credentials it can grant
    more to, and they before the limits keyed by them. Tracing and metrics are left out when
    off, so that off costs nothing."""
    observing: list[Concern] = []
    if tracing.enabled():
        observing.append(Tracing())
    observing.append(AccessLog())
    if with_metrics:
        observing.append(Metrics())
    concerns = [
        *observing,
        Errors(),
        Deadlines(),
        SurfaceOf(surface_key),
        Credentials(authenticator),
        RateLimits(limiter),
    ]
    return [Concerns(concerns, stream_threads, read_threads)]
