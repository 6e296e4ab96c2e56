"""Cross-cutting concerns of every RPC, one interceptor each, around unary and streaming methods
alike: the access log, errors, deadlines, credentials, rate limits and the surface.

Each concern is a context manager around the call (`around`); `Concern` applies it to whatever
kind of method it meets, so a server-streaming method is checked and logged exactly as a unary
one (its body runs inside the block while its responses are produced). grpc.server() runs the
interceptors in list order, the first outermost: see `chain()`.
"""

from __future__ import annotations

import contextlib
import contextvars
import hmac
import json
import logging
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc

from ..domain import cancellation
from ..domain.errors import DeadlineExceeded, DomainError, ValidationFailed
from ..domain.model import Principal, Surface
from ..service.credentials import Authenticator, sign_surface
from ..service.limits import RateLimiter
from . import status

log = logging.getLogger("notes.access")
errors_log = logging.getLogger("notes.errors")

OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
HEALTH_PREFIX = "/grpc.health.v1."
SURFACE_HEADER = "x-notes-surface"
SURFACE_SIG_HEADER = "x-notes-surface-sig"
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
        call = CallInfo(handler_call_details.method)
        if not self.applies(call):
            return handler
        kind = next(k for k in _KINDS if getattr(handler, k) is not None)
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
    """One line per call, whatever its outcome: method, code, milliseconds, organization and
    request id (never bodies or credentials)."""

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
                json.dumps(
                    {
                        "method": call.method,
                        "code": code.name if code is not None else "OK",
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                        "org": record.get("org", ""),
                        "request_id": str(getattr(request, "request_id", ""))[:64],
                    }
                )
            )


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
            errors_log.error("unexpected %s in %s", type(e).__name__, call.method)
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
    authenticator: Authenticator, limiter: RateLimiter, surface_key: bytes
) -> list[grpc.ServerInterceptor]:
    """The interceptors in order, outermost first: the log sees the final status; errors map
    whatever the inner ones raise; the surface comes before the credentials it can grant
    more to, and they before the limits keyed by them."""
    return [
        HealthThreads(),
        AccessLog(),
        Errors(),
        Deadlines(),
        SurfaceOf(surface_key),
        Credentials(authenticator),
        RateLimits(limiter),
    ]
