"""Connections a client opens and then neglects: slow or silent ones are closed, too many are
refused cheaply, and a flood on one port leaves the other port serving, even when the process
may hold only 256 files."""

from __future__ import annotations

import contextlib
import json
import resource
import select
import socket
import time

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from notes.v1 import notes_pb2 as pb

from .conftest import new_tenant, start_service, stop_service

pytestmark = pytest.mark.slow
FLOOD = 300
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SHORT = {
    "NOTES_HTTP_HEADER_TIMEOUT_SECONDS": "1",
    "NOTES_GRPC_HANDSHAKE_TIMEOUT_SECONDS": "1",
    "NOTES_GRPC_IDLE_SECONDS": "1",
}


# The service under a 256-file limit, set by util-linux's prlimit before it execs the service.
LOW_FILE_LIMIT = ("prlimit", "--nofile=256:256", "--")


@pytest.fixture(autouse=True, params=["httptools", "h11"])
def http_parser(request, monkeypatch):
    """Every test on both of uvicorn's HTTP stacks: httptools on uvloop (the default) and the
    pure-Python h11 on asyncio's loop (NOTES_HTTP_PARSER=h11 NOTES_HTTP_LOOP=asyncio)."""
    monkeypatch.setenv("NOTES_HTTP_PARSER", request.param)
    monkeypatch.setenv("NOTES_HTTP_LOOP", "uvloop" if request.param == "httptools" else "asyncio")
    return request.param


@pytest.fixture
def own_service(service, tmp_path):
    started = []

    def start(prefix: tuple[str, ...] = (), **env: str):
        svc = start_service(service.database_url, tmp_path, env_extra=env, prefix=prefix)
        svc.engine = service.engine
        started.append(svc)
        return svc

    yield start
    for svc in started:
        stop_service(svc)


def closed_by_peer(sock: socket.socket, within: float, trickle: bytes = b"") -> bool:
    """Whether the server closes the connection within the time, while we send a byte of
    trickle every 0.2 s (a slow request head)."""
    deadline = time.monotonic() + within
    sent = 0
    while time.monotonic() < deadline:
        if sent < len(trickle):
            try:
                sock.send(trickle[sent : sent + 1])
            except OSError:
                return True
            sent += 1
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            try:
                if sock.recv(65536) == b"":
                    return True
            except OSError:
                return True
    return False


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_silent_slow_and_preface_only_connections_are_closed(own_service):
    svc = own_service(**SHORT)
    with contextlib.ExitStack() as stack:
        silent_http = stack.enter_context(connect(svc.http_port))
        slow_http = stack.enter_context(connect(svc.http_port))
        silent_grpc = stack.enter_context(connect(svc.grpc_port))
        preface_grpc = stack.enter_context(connect(svc.grpc_port))
        preface_grpc.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # + SETTINGS
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        assert closed_by_peer(slow_http, 20, trickle=head), "a slow head is kept"
        assert closed_by_peer(silent_http, 20), "a silent HTTP connection is kept"
        assert closed_by_peer(silent_grpc, 20), "a silent gRPC connection is kept"
        assert closed_by_peer(preface_grpc, 20), "a preface-only gRPC connection is kept"
    # a keep-alive connection that finished a request is closed once idle, too
    with connect(svc.http_port) as kept:
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200" in kept.recv(65536)
        assert closed_by_peer(kept, 20), "an idle keep-alive connection is kept"


def test_a_request_head_that_never_ends_is_refused_past_64_kib(own_service):
    svc = own_service()
    with connect(svc.http_port) as sock:
        with contextlib.suppress(OSError):  # refused before the last pieces are sent
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: ")
            for _ in range(16):
                sock.sendall(b"a" * 8192)
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    with httpx.Client(base_url=svc.http_base, timeout=5) as http:
        assert http.get("/healthz").status_code == 200


def test_connections_past_the_limit_are_closed_at_once(own_service):
    svc = own_service(NOTES_HTTP_MAX_CONNECTIONS="2")
    with connect(svc.http_port) as first, connect(svc.http_port) as second:
        first.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200" in first.recv(65536)
        with connect(svc.http_port) as third:
            assert closed_by_peer(third, 5), "a connection past the limit is kept"
        second.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200" in second.recv(65536)


def test_the_open_file_limit_is_raised_and_logged(own_service):
    svc = own_service()
    lines = [json.loads(line) for line in svc.log if '"open_files"' in line]
    assert len(lines) == 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert lines[0]["hard_limit"] == hard and lines[0]["soft_limit"] == hard


def served(svc, tenant, port: str) -> dict[str, float]:
    """Seconds each kind of call on the port took; each must succeed within its deadline."""
    took = {}
    started = time.monotonic()
    if port == "http":
        return served_http(svc, tenant)
    with grpc.insecure_channel(svc.grpc_target) as ch:
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        took["grpc_health"] = time.monotonic() - started
        started = time.monotonic()
        listed = tenant.notes.__class__(ch).ListNotes(
            pb.ListNotesRequest(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")),
            metadata=tenant.auth,
            timeout=5,
        )
        assert listed.notes is not None
        took["grpc_list"] = time.monotonic() - started
    return took


def served_http(svc, tenant) -> dict[str, float]:
    took = {}
    started = time.monotonic()
    with httpx.Client(base_url=svc.http_base, timeout=5) as http:
        assert http.get("/healthz").status_code == 200
        took["http_healthz"] = time.monotonic() - started
        started = time.monotonic()
        response = http.get(
            "/api/v1/notes/note_01JZZZZZZZZZZZZZZZZZZZZZZZ",
            headers={"Authorization": f"Bearer {tenant.secret}"},
        )
        assert response.status_code == 404, response.text
        took["http_get"] = time.monotonic() - started
    return took


@pytest.mark.parametrize("flooded", ["http", "grpc"])
def test_a_flood_of_idle_connections_on_one_port_leaves_the_other_serving(
    own_service, channel, flooded
):
    tenant = new_tenant(channel)
    svc = own_service(prefix=LOW_FILE_LIMIT)
    limits = next(json.loads(line) for line in svc.log if '"open_files"' in line)
    assert limits["hard_limit"] == 256
    port = svc.http_port if flooded == "http" else svc.grpc_port
    seen = len(svc.log)
    with contextlib.ExitStack() as stack:
        for _ in range(FLOOD):
            with contextlib.suppress(OSError):
                stack.enter_context(connect(port))
        other = "grpc" if flooded == "http" else "http"
        took = served(svc, tenant, other)
        print(f"flooded {flooded} ({svc.engine}): {took}")
        assert svc.process.poll() is None
    tracebacks = [line for line in svc.log[seen:] if "Traceback" in line]
    assert not tracebacks, "".join(svc.log[seen:])[-3000:]
    assert len(svc.log) - seen < 20, "".join(svc.log[seen:])[-3000:]
