"""A dialect: the surface it records, the path prefix it owns, its error table, and the one
place that turns failures into its responses (handlers, unknown routes, oversized heads)."""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from .bodies import HEADERS_LIMIT, headers_too_large
from .calls import Call, authorization_header
from .errors import INTERNAL, METHOD_NOT_ALLOWED, ROUTE_NOT_FOUND, Code, Failure

log = logging.getLogger("notes.gateway")

Render = Callable[[Failure, Request], Response]
Credentials = Callable[[Request], str | None | Awaitable[str | None]]
Handler = Callable[[Request, Call], Awaitable[Response]]


@dataclass(frozen=True)
class Dialect:
    """One legacy API: the surface it records, the path prefix it owns, and its error table.

    auth_first: an input error the gateway finds waits for a credentials check, so that a
    caller without valid credentials learns nothing else (as the real systems' auth middleware).
    """

    surface: str
    prefix: str
    render: Render
    credentials: Credentials = authorization_header
    auth_first: bool = True
    # Declarations, from which routes and /openapi.json derive.
    tag: str = ""
    operations: tuple[Operation, ...] = ()
    error_model: Any = None  # the error body's model, for the document
    security: tuple[dict[str, list[str]], ...] = ()  # alternatives, as OpenAPI's
    schemes: dict[str, dict[str, Any]] = field(default_factory=dict)  # securitySchemes

    def respond(self, failure: Failure, request: Request) -> Response:
        """The dialect's error response, with the rules every dialect shares: a 429 always
        says when to retry."""
        response = self.render(failure, request)
        if response.status_code == 429 and "retry-after" not in response.headers:
            response.headers["Retry-After"] = str(failure.retry_after())
        return response

    def endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                authorization = self.credentials(request)
                if inspect.isawaitable(authorization):  # one that reads the body (OAuth forms)
                    authorization = await authorization
            except Failure as f:
                return self.respond(f, request)
            call = Call(request, self.surface, authorization)
            try:
                return await handler(request, call)
            except Failure as f:
                failure = f
                if f.local and self.auth_first and not call.authenticated:
                    try:
                        await call.check_credentials(write=request.method not in ("GET", "HEAD"))
                    except Failure as auth_failure:
                        failure = auth_failure
            except Exception as e:  # noqa: BLE001
                log.error(
                    "unexpected_error",
                    extra={
                        "error": type(e).__name__,
                        "method": request.method,
                        "dialect": self.surface,
                    },
                )
                failure = Failure(Code.INTERNAL, INTERNAL, "internal error", local=True)
            return self.respond(failure, request)

        endpoint.__name__ = handler.__name__
        return endpoint


def _plain_render(failure: Failure, request: Request) -> Response:
    return JSONResponse({"message": failure.described() or "error"}, failure.status)


_PLAIN = Dialect("", "/", _plain_render)


def owner(dialects: list[Dialect], path: str) -> Dialect:
    for dialect in dialects:
        if path.startswith(dialect.prefix):
            return dialect
    return _PLAIN


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def route_errors(dialects: list[Dialect]):
    """Starlette's 404 and 405, rendered by the dialect that owns the path."""

    async def handle(request: Request, exc: Exception) -> Response:
        dialect = owner(dialects, request.url.path)
        status = getattr(exc, "status_code", 500)
        if status == 405:
            failure = Failure(
                Code.UNIMPLEMENTED, METHOD_NOT_ALLOWED, f"{request.method} is not allowed here"
            )
        elif status == 404:
            failure = Failure(Code.NOT_FOUND, ROUTE_NOT_FOUND, "no route matches the URL")
        else:
            log.error(
                "unexpected_error", extra={"error": type(exc).__name__, "prefix": dialect.prefix}
            )
            failure = Failure(Code.INTERNAL, INTERNAL, "internal error")
        response = dialect.respond(failure, request)
        if failure.reason == METHOD_NOT_ALLOWED:  # also where the dialect answers 404
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    return handle


class HeadersLimit:
    """ASGI middleware: a request whose headers pass HEADERS_LIMIT is answered 431 by the
    dialect that owns its path, before routing, and none of its headers reach the service."""

    def __init__(self, app: Any, dialects: list[Dialect]) -> None:
        self.app = app
        self.dialects = dialects

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > HEADERS_LIMIT:
                request = Request(scope, receive)
                dialect = owner(self.dialects, scope["path"])
                response = dialect.respond(headers_too_large(), request)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --- declarations ------------------------------------------------------------------------------
# A dialect is declared as data: its operations (route, parameters, request model, replies and
# the error statuses it answers), from which the routes, the parsing and /openapi.json derive.


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter; its type (often Annotated with msgspec.Meta) is its
    documented schema. subject: the subject type a path parameter names (for tests)."""

    name: str
    where: str  # "path" | "query" | "header"
    type: Any
    required: bool = False
    description: str = ""
    array: bool = False  # a query parameter repeated: style form, explode
    subject: str = ""
    parent: str = ""  # the path parameter naming the subject's parent (an order item's order)


@dataclass(frozen=True)
class Reply:
    """A success: its status, the model it renders (None: no body) and its headers."""

    status: int
    body: Any
    description: str
    headers: dict[str, Any] = field(default_factory=dict)  # name -> type, documented


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # Starlette's, with convertors: /orders/{order_id:int64}/notes
    operation_id: str
    handler: Handler
    replies: tuple[Reply, ...]
    errors: tuple[int, ...]  # statuses of the dialect's error body beyond SHARED_ERRORS
    params: tuple[Param, ...] = ()
    body: Any = None  # the request model, when the operation reads one

    @property
    def openapi_path(self) -> str:
        return re.sub(r"\{(\w+):\w+\}", r"{\1}", self.path)


# Errors any operation may answer, whatever its input.
SHARED_ERRORS = {
    429: "Too many requests: retry after Retry-After seconds",
    431: "The request headers are too large",
    500: "Internal error",
    503: "The service is unavailable",
    504: "The service did not answer in time",
}


def routes(dialect: Dialect) -> list[Route]:
    return [
        Route(op.path, dialect.endpoint(op.handler), methods=[op.method])
        for op in dialect.operations
    ]


class ModelResponse(Response):
    """A response model rendered by msgspec: the same bytes JSONResponse gives for the same
    values (compact, UTF-8), without building dicts first."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encode(content)


_encode = msgspec.json.Encoder().encode

# How many rendered notes each process remembers (about 1 KB each, key included).
RENDERED_NOTES = 10_000


class Rendered:
    """A dialect's rendering of a note to JSON, remembered under the note's own bytes and
    whatever else the rendering reads (context: a base URL, a time zone). A note that changed
    in any field is another key, so what comes back is always this note's rendering; the same
    note listed again costs its serialization (C) instead of its rendering (Python)."""

    def __init__(self, render: Callable[..., Any], size: int = RENDERED_NOTES) -> None:
        self._render = render
        self._size = size
        self._done: dict[tuple, msgspec.Raw] = {}

    def __call__(self, note: Any, *context: Any) -> msgspec.Raw:
        key = (note.SerializeToString(), *context)
        raw = self._done.get(key)
        if raw is None:
            raw = msgspec.Raw(_encode(self._render(note, *context)))
            if len(self._done) >= self._size:  # the oldest goes first
                del self._done[next(iter(self._done))]
            self._done[key] = raw
        return raw


def decoder(model: type) -> Callable[[bytes], Any]:
    """The model's decoder: the declared shape and limits, checked in one C pass. A body it
    refuses is explained by the dialect's own checks (its legacy wording), which read their
    limits from the model (see limit)."""
    return msgspec.json.Decoder(model).decode


def limit(model: type, field_name: str, bound: str = "max_length") -> int:
    """A limit a model declares (msgspec.Meta), for error messages that restate it."""
    for field_info in msgspec.inspect.type_info(model).fields:
        if field_info.name == field_name:
            info = field_info.type
            while isinstance(info, msgspec.inspect.UnionType):  # T | None
                info = next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
            value = getattr(info, bound, None)
            if value is None:
                raise LookupError(f"{model.__name__}.{field_name} declares no {bound}")
            return value
    raise LookupError(f"{model.__name__} has no field {field_name}")
