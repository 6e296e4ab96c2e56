"""The ASGI application: every dialect's routes over one grpc.aio channel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from notes.v1 import notes_pb2_grpc as pb_grpc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..config import Settings
from . import customer_notes, newstore, observe, openapi, shelfcycle, woocommerce
from .dialect import HeadersLimit
from .dialect import route_errors as dialect_route_errors

DIALECTS = [customer_notes, shelfcycle, woocommerce, newstore]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"NOTES_SHOP_TIMEZONE: unknown time zone {name!r}") from None


def _always() -> bool:
    return True


def create_app(
    target: str,
    settings: Settings,
    serving: Callable[[], bool] = _always,
    wait_for_service: float = 0.0,
) -> Starlette:
    """The gateway for the notes.v1 service at target (host:port). serving tells /healthz
    whether this process still serves: `notes serve` passes its gRPC health status, so both
    surfaces turn with the same SIGTERM. wait_for_service: seconds start-up waits for the
    service's port to answer (a gateway process started beside the gRPC workers)."""
    shop_zone = _zone(settings.shop_timezone)  # a bad name stops start-up, not a request

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        # The channel belongs to the running event loop, so it is made here, not at import.
        options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ]
        if wait_for_service:
            # The service starting (or restarting) beside the gateway is found within a
            # second, not after gRPC's default backoff (up to two minutes).
            options += [
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ]
        if settings.tls or settings.gateway_ca_file:  # a TLS service: verify it
            roots = None  # the system's
            if settings.gateway_ca_file:
                with open(settings.gateway_ca_file, "rb") as f:
                    roots = f.read()
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            channel = grpc.aio.secure_channel(target, credentials, options=options)
        else:
            channel = grpc.aio.insecure_channel(target, options=options)
        app.state.channel = channel
        # Connect now, not at the first request: a flood of connections to the gRPC port
        # must not find the gateway still without its own.
        channel.get_state(try_to_connect=True)
        if wait_for_service:
            await asyncio.wait_for(channel.channel_ready(), wait_for_service)
        app.state.notes = pb_grpc.NotesServiceStub(channel)
        app.state.subjects = pb_grpc.SubjectsServiceStub(channel)
        app.state.access = pb_grpc.AccessServiceStub(channel)
        try:
            yield
        finally:
            await channel.close()

    async def health(request: Request) -> JSONResponse:
        if serving():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "not_serving"}, status_code=503)

    async def openapi_document(request: Request) -> JSONResponse:
        return JSONResponse(openapi.DOCUMENT)

    routes = [
        Route("/healthz", health, methods=["GET"]),
        Route("/openapi.json", openapi_document, methods=["GET"]),
    ]
    for dialect in DIALECTS:
        routes.extend(dialect.routes)
    dialects = [d.DIALECT for d in DIALECTS]
    route_errors = dialect_route_errors(dialects)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(
                observe.Observe,
                dialects={d.prefix: d.surface for d in dialects},
                with_metrics=bool(settings.metrics_addr),
            ),
            Middleware(HeadersLimit, dialects=dialects),
        ],
        exception_handlers={HTTPException: route_errors, Exception: route_errors},
    )
    app.state.settings = settings
    app.state.surface_key = settings.resolved_gateway_secret()
    app.state.shop_zone = shop_zone
    return app
