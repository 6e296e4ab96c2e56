"""Cross-cutting concerns of every RPC: credentials, error mapping and one access-log line."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from ..domain import cancellation
from ..domain.errors import DeadlineExceeded, DomainError, ValidationFailed
from ..domain.model import Principal, Surface
from ..service.credentials import Authenticator
from ..service.limits import RateLimiter
from . import status

log = logging.getLogger("notes.access")
errors_log = logging.getLogger("notes.errors")

OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
SURFACE_HEADER = "x-notes-surface"
_SURFACE_NAMES = {s.value: s for s in Surface}


@dataclass(frozen=True)
class Call:
    principal: Principal
    surface: Surface


_call: contextvars.ContextVar[Call] = contextvars.ContextVar("notes_call")


def current() -> Call:
    return _call.get()


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


READ_METHODS = frozenset(
    {"GetNote", "ListNotes", "GetNoteHistory", "GetSubject", "ListSubjects", "CheckAccess"}
)


class ServiceInterceptor(grpc.ServerInterceptor):
    def __init__(self, authenticator: Authenticator, limiter: RateLimiter) -> None:
        self._auth = authenticator
        self._limiter = limiter

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        open_method = method.startswith(OPEN_PREFIXES)
        behavior = self._wrap(handler.unary_unary, method, open_method)
        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, behavior: Callable, method: str, open_method: bool) -> Callable:
        def wrapped(request, context: grpc.ServicerContext):
            started = time.perf_counter()
            code, org = "OK", ""
            try:
                if isinstance(request, _Undecodable):
                    raise ValidationFailed([("request", "is not a valid message (bad UTF-8?)")])
                if open_method:
                    return behavior(request, context)
                remaining = context.time_remaining()
                if remaining is not None and remaining <= 0:
                    raise DeadlineExceeded("the deadline passed before the call began")
                metadata = dict(context.invocation_metadata())
                principal = self._auth.authenticate(metadata.get("authorization"))
                org = principal.org
                route = method.rsplit("/", 1)[-1]
                self._limiter.check(principal, method, write=route not in READ_METHODS)
                surface = _SURFACE_NAMES.get(metadata.get(SURFACE_HEADER, ""), Surface.GRPC)
                token = _call.set(Call(principal, surface))
                try:
                    with cancellation.watching(lambda: not context.is_active()):
                        return behavior(request, context)
                finally:
                    _call.reset(token)
            except DomainError as e:
                st = status.from_error(e)
                code = st.code.name
                context.abort_with_status(st)
            except Exception as e:  # noqa: BLE001
                # The type only: messages may carry SQL or user data.
                errors_log.error("unexpected %s in %s", type(e).__name__, method)
                st = status.internal()
                code = st.code.name
                context.abort_with_status(st)
            finally:
                log.info(
                    json.dumps(
                        {
                            "method": method,
                            "code": code,
                            "ms": round((time.perf_counter() - started) * 1000, 2),
                            "org": org,
                            "request_id": str(getattr(request, "request_id", ""))[:64],
                        }
                    )
                )

        return wrapped
