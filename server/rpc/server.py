"""Building the gRPC server (create_server) is separate from running it (run)."""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from notes.v1 import (
    events_pb2,
    events_pb2_grpc,
    notes_pb2,
    notes_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
)

from ..config import Settings
from ..domain.paging import PageTokens
from ..service import events
from ..service.credentials import Authenticator, SecretBox
from ..service.limits import RateLimiter
from . import interceptors
from .events_servicer import EventsServicer
from .servicer import AccessServicer, NotesServicer, SubjectsServicer
from .webhooks import WebhooksServicer

log = logging.getLogger("notes.server")

NOTES_SERVICE = notes_pb2.DESCRIPTOR.services_by_name["NotesService"].full_name
SUBJECTS_SERVICE = notes_pb2.DESCRIPTOR.services_by_name["SubjectsService"].full_name
ACCESS_SERVICE = notes_pb2.DESCRIPTOR.services_by_name["AccessService"].full_name
EVENTS_SERVICE = events_pb2.DESCRIPTOR.services_by_name["EventsService"].full_name
WEBHOOKS_SERVICE = webhooks_pb2.DESCRIPTOR.services_by_name["WebhooksService"].full_name
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer

    def stop(self, grace: float) -> threading.Event:
        """NOT_SERVING first, then refuse new calls and let in-flight ones finish."""
        self.health.enter_graceful_shutdown()
        events.FEED.close()  # WatchEvents streams end now, not when the grace runs out
        return self.server.stop(grace)


def _reflection_v1(servicer) -> grpc.GenericRpcHandler:
    """grpc.reflection.v1 is wire-identical to v1alpha, which is all grpcio-reflection ships."""
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": handler})


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def create_server(
    settings: Settings, address: str | None = None, *, reuse_port: bool = False
) -> RunningServer:
    """A server with every service registered and its port bound, not yet started."""
    secret = settings.resolved_jwt_secret()
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # Only worker processes share a port; otherwise a second server must fail to bind.
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        # A connection that never completes its HTTP/2 handshake, or holds no call, is
        # closed; connections past the cap are closed as they are accepted.
        ("grpc.server_handshake_timeout_ms", _ms(settings.grpc_handshake_timeout_seconds)),
        ("grpc.max_connection_idle_ms", _ms(settings.grpc_idle_seconds)),
        ("grpc.max_allowed_incoming_connections", settings.grpc_max_connections),
        # Every connection is recycled (GOAWAY) after its age; calls get the grace to end.
        ("grpc.max_connection_age_ms", _ms(settings.grpc_max_connection_age_seconds)),
        ("grpc.max_connection_age_grace_ms", _ms(settings.grpc_max_connection_age_grace_seconds)),
        # Keepalive enforcement: a client pinging more often than this is sent GOAWAY after
        # two strikes. The server pings quiet connections to find dead peers of long streams.
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            _ms(settings.grpc_min_ping_interval_seconds),
        ),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.max_concurrent_streams", settings.grpc_max_concurrent_streams),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="rpc"),
        interceptors=interceptors.chain(
            Authenticator(secret, settings.default_org, SecretBox(settings.resolved_secret_keys())),
            RateLimiter(settings.rate_limit_reads, settings.rate_limit_writes),
            settings.resolved_gateway_secret(),
            stream_threads=settings.stream_threads(),
            read_threads=settings.read_threads,
            with_metrics=bool(settings.metrics_addr),
        ),
        options=options,
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    tokens = PageTokens(secret.encode())
    notes_pb2_grpc.add_NotesServiceServicer_to_server(NotesServicer(tokens), server)
    notes_pb2_grpc.add_SubjectsServiceServicer_to_server(SubjectsServicer(tokens), server)
    notes_pb2_grpc.add_AccessServiceServicer_to_server(AccessServicer(), server)
    events_pb2_grpc.add_EventsServiceServicer_to_server(EventsServicer(settings), server)
    webhooks_pb2_grpc.add_WebhooksServiceServicer_to_server(WebhooksServicer(tokens), server)

    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    services = (NOTES_SERVICE, SUBJECTS_SERVICE, ACCESS_SERVICE, EVENTS_SERVICE, WEBHOOKS_SERVICE)
    for name in ("", *services):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    names = (
        NOTES_SERVICE,
        SUBJECTS_SERVICE,
        ACCESS_SERVICE,
        EVENTS_SERVICE,
        WEBHOOKS_SERVICE,
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
        REFLECTION_V1,
    )
    reflection.enable_server_reflection(names, server)
    reflection_servicer = reflection.ReflectionServicer(names)
    server.add_generic_rpc_handlers((_reflection_v1(reflection_servicer),))

    if settings.tls:
        with open(settings.tls_key, "rb") as key, open(settings.tls_cert, "rb") as cert:
            credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
        port = server.add_secure_port(address or settings.grpc_addr, credentials)
    else:
        port = server.add_insecure_port(address or settings.grpc_addr)
    if port == 0:
        raise OSError(f"cannot listen on {address or settings.grpc_addr}")
    return RunningServer(server, port, health_servicer)
