"""A dialect: the surface it records, the path prefix it owns, its error table, and the one
place that turns failures into its responses (handlers, unknown routes, oversized heads)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

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
