"""Issue 5 at the gateway: rate limits and overload as 429 with Retry-After, SIGTERM draining
in-flight HTTP, a database outage as a quick 503, malformed HTTP, and message size limits,
each in every dialect's own shape."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlparse

import grpc
import httpx
import pytest
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from notes.v1 import notes_pb2 as pb
from starlette.requests import Request

from server.config import Settings
from server.gateway import app as gateway_app
from server.gateway import dialect as gateway_dialect
from server.gateway.bodies import BODY_LIMIT
from server.gateway.errors import RETRY_AFTER_DEFAULT, Code, Failure, from_rpc_error
from tests.conftest import Tenant, lifecycle, new_tenant, start_service, stop_service
from tests.proxy import Proxy

from .conftest import admin_jwt, basic, bearer

# --- one create and one read per dialect, and each dialect's error shape ----------------------


@dataclass(frozen=True)
class Dialect:
    name: str
    create_path: str
    create_body: dict
    created: int  # the status of a successful create
    read_path: str  # {id}: a note the tenant made through this dialect's create

    def headers(self, tenant: Tenant) -> dict[str, str]:
        if self.name == "customer_notes":
            return bearer(admin_jwt(tenant))
        if self.name == "woocommerce":
            return basic(tenant.key_id, tenant.secret)
        headers = bearer(tenant.secret)
        if self.name == "shelfcycle":
            headers["Idempotency-Key"] = uuid.uuid4().hex
        return headers

    def create(self, client: httpx.Client, tenant: Tenant, **kwargs) -> httpx.Response:
        if "content" not in kwargs:
            kwargs.setdefault("json", self.create_body)
        headers = {**self.headers(tenant), **kwargs.pop("headers", {})}
        return client.post(self.create_path, headers=headers, **kwargs)

    def note_id(self, created: dict) -> str:
        if self.name == "customer_notes":
            return created["note"]["id"]
        return str(created["data"]["id"] if self.name == "shelfcycle" else created["id"])

    def read(self, client: httpx.Client, tenant: Tenant, note_id: str) -> httpx.Response:
        return client.get(self.read_path.format(id=note_id), headers=self.headers(tenant))

    def error(self, response: httpx.Response, status: int) -> str:
        """Asserts the dialect's error shape and status; returns its error identifier."""
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json", response.text
        body = response.json()
        if self.name == "customer_notes":
            assert set(body) == {"message", "type"}
            return body["type"]
        if self.name == "shelfcycle":
            assert set(body) == {"error"}
            assert {"type", "code", "message", "requestId"} <= set(body["error"])
            return body["error"]["code"]
        if self.name == "woocommerce":
            assert set(body) == {"code", "message", "data"}
            assert body["data"]["status"] == status
            return body["code"]
        assert set(body) == {"message"}
        return body["message"]


CUSTOMER_NOTES = Dialect(
    "customer_notes",
    "/admin/customers/cus_1/notes",
    {"body": "x"},
    201,
    "/admin/customers/cus_1/notes",
)
SHELFCYCLE = Dialect(
    "shelfcycle",
    "/api/v1/notes",
    {"primarySubject": {"type": "customer", "id": "cus_1"}, "body": "x"},
    201,
    "/api/v1/notes/{id}",
)
WOOCOMMERCE = Dialect(
    "woocommerce",
    "/wp-json/wc/v3/orders/723/notes",
    {"note": "x"},
    201,
    "/wp-json/wc/v3/orders/723/notes/{id}",
)
NEWSTORE = Dialect(
    "newstore",
    "/orders/723/notes",
    {"text": "x", "source": "s", "tags": []},
    200,
    "/orders/723/notes",
)
DIALECTS = [CUSTOMER_NOTES, SHELFCYCLE, WOOCOMMERCE, NEWSTORE]
by_name = pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)

# Each dialect's identifier of its errors (see Dialect.error), by HTTP status.
MALFORMED = {
    "customer_notes": "invalid_data",
    "shelfcycle": "invalid_json",
    "woocommerce": "rest_invalid_json",
}
RATE_429 = {
    "customer_notes": "unexpected_state",
    "shelfcycle": "rate_limited",
    "woocommerce": "woocommerce_rest_too_many_requests",
    "newstore": "Too many requests.",
}
OUTAGE_503 = {
    "customer_notes": "unexpected_state",
    "shelfcycle": "service_unavailable",
    "woocommerce": "rest_service_unavailable",
    "newstore": "Service unavailable.",
}
BODY_413 = {
    "customer_notes": "invalid_data",
    "shelfcycle": "payload_too_large",
    "woocommerce": "rest_request_too_large",
    "newstore": "Request body too large.",
}
HEADERS_431 = {
    "customer_notes": "invalid_data",
    "shelfcycle": "headers_too_large",
    "woocommerce": "rest_request_headers_too_large",
    "newstore": "Request headers too large.",
}


def assert_malformed(dialect: Dialect, response: httpx.Response) -> None:
    found = dialect.error(response, 400)
    if dialect.name in MALFORMED:
        assert found == MALFORMED[dialect.name]
    else:
        # NewStore's {"message"} says what was wrong.
        assert "JSON" in found or found == "the request body is empty"


# --- 429 with Retry-After ------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(service, tmp_path_factory) -> Iterator:
    """The gateway of a service on the session's database allowing 2 writes a minute per key
    and route, and 3 concurrent calls."""
    env = {"NOTES_RATE_LIMIT_WRITES_PER_MINUTE": "2", "NOTES_MAX_CONCURRENT_RPCS": "3"}
    svc = start_service(service.database_url, tmp_path_factory.mktemp("limited"), env_extra=env)
    yield svc
    stop_service(svc)


@pytest.mark.slow  # starts its own service
@by_name
def test_rate_limited_writes_are_429_with_retry_after_in_the_dialects_shape(
    limited, channel, dialect
):
    tenant = new_tenant(channel)  # its own key, so its own buckets
    with httpx.Client(base_url=limited.http_base, timeout=10) as client:
        for _ in range(2):
            assert dialect.create(client, tenant).status_code == dialect.created
        refused = dialect.create(client, tenant)
    assert dialect.error(refused, 429) == RATE_429[dialect.name]
    # 2 a minute: the next token is about 30 s away; rounded up, never 0.
    assert 1 <= int(refused.headers["Retry-After"]) <= 30


@pytest.mark.slow  # starts its own service
def test_overload_is_429_with_a_default_retry_after_in_every_dialect(limited, channel):
    """More calls than NOTES_MAX_CONCURRENT_RPCS: gRPC's own RESOURCE_EXHAUSTED, without
    retry information, is still a 429 with Retry-After."""
    # A key's writes share one bucket across dialects: a tenant each for the creates after.
    tenants = {dialect.name: new_tenant(channel) for dialect in DIALECTS}
    with grpc.insecure_channel(limited.grpc_target) as ch:
        reflection = reflection_pb2_grpc.ServerReflectionStub(ch)
        ends = [queue.Queue() for _ in range(3)]

        def requests(end: queue.Queue):
            yield reflection_pb2.ServerReflectionRequest(list_services="")
            end.get()  # the call stays open, holding its slot, until the test ends it

        watches = [reflection.ServerReflectionInfo(requests(end)) for end in ends]
        try:
            for w in watches:  # every slot is taken
                assert next(w).list_services_response.service
            with httpx.Client(base_url=limited.http_base, timeout=10) as client:
                for dialect in DIALECTS:
                    refused = dialect.create(client, tenants[dialect.name])
                    assert dialect.error(refused, 429) == RATE_429[dialect.name]
                    assert refused.headers["Retry-After"] == str(RETRY_AFTER_DEFAULT)
        finally:
            for end in ends:
                end.put(None)
        for w in watches:
            assert list(w) == []
    with httpx.Client(base_url=limited.http_base, timeout=10) as client:
        deadline = time.monotonic() + 5
        for dialect in DIALECTS:  # the server frees the slots as it sees the streams end
            while (response := dialect.create(client, tenants[dialect.name])).status_code == 429:
                assert time.monotonic() < deadline
            assert response.status_code == dialect.created, response.text


def _request(method: str = "POST", path: str = "/") -> Request:
    return Request(
        {
            "type": "http",
            "method": method,
            "path": path,
            "headers": [(b"host", b"gateway")],
            "query_string": b"",
            "path_params": {},
        }
    )


@pytest.mark.parametrize("module", gateway_app.DIALECTS, ids=lambda m: m.__name__.split(".")[-1])
def test_retry_after_is_one_rule_for_every_dialect(module):
    dialect: gateway_dialect.Dialect = module.DIALECT
    request = _request(path=dialect.prefix)
    exhausted = Code.RESOURCE_EXHAUSTED
    cases = [
        (Failure(exhausted, "RATE_LIMITED", metadata={"retryAfterSeconds": "17"}), "17"),
        (Failure(exhausted, "RATE_LIMITED", retry_delay=16.2), "17"),
        (Failure(exhausted, ""), "1"),  # overload: nothing to go by
    ]
    for failure, seconds in cases:
        response = dialect.respond(failure, request)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == seconds
    ok = dialect.respond(Failure(Code.UNAVAILABLE, ""), request)
    assert "retry-after" not in ok.headers


def test_retry_information_is_read_from_the_services_status_details():
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="slow down")
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason="RATE_LIMITED", metadata={"retryAfterSeconds": "29"})
    )
    status.details.add().Pack(
        error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=29, nanos=400_000_000)
        )
    )
    trailing = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    err = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.aio.Metadata(), trailing, "slow down"
    )
    failure = from_rpc_error(err)
    assert failure.reason == "RATE_LIMITED"
    assert failure.retry_after() == 30  # 29.4 s, rounded up: a client never retries too early


# --- SIGTERM drains in-flight HTTP ----------------------------------------------------------


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "the connection closed before a response head"
        data += chunk
    return data


def _read_to_end(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _exchange(port: int, data: bytes) -> bytes:
    """Sends data on a new connection; what came back before the server closed it (or reset
    it, having answered while the rest of data was still arriving)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # Answered and closed before it read everything: the answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received


def _wait_refused(port: int, timeout: float = 5.0) -> None:
    """Until the port refuses connections: the server has closed its listening socket."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe = socket.create_connection(("127.0.0.1", port), timeout=1)
        except ConnectionRefusedError:
            return
        probe.close()
        assert time.monotonic() < deadline, "the port still accepts connections"
        time.sleep(0.01)  # polls the socket state; there is no event to wait on


def _held_post(tenant: Tenant, tag: str) -> tuple[bytes, str]:
    """A NewStore create's body and a head that asks for 100 Continue, so that the request
    can be held in flight in the gateway by sending the body in parts."""
    body = json.dumps({"text": "in flight", "source": "drain", "tags": [tag]}).encode()
    head = (
        "POST /orders/723/notes HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        f"Authorization: Bearer {tenant.secret}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    return body, head


def _finish_held_post(sock: socket.socket, body: bytes) -> dict:
    """Sends the rest of a _held_post body; the 200 answer's JSON, read to the end of the
    connection (no keep-alive while draining)."""
    sock.sendall(body[len(body) // 2 :])
    response = _read_to_end(sock)
    head_bytes, _, payload = response.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.1 200 "), response[:500]
    return json.loads(payload)


def _events_until_stopped(svc) -> list[str]:
    """The lifecycle events the service logged, once it has logged "stopped"."""
    log = svc.wait_for_log(lambda log: any('"stopped"' in x for x in log))
    return lifecycle(log)


@pytest.mark.slow  # starts its own service
def test_sigterm_lets_an_in_flight_http_request_finish_and_refuses_new_connections(
    service, channel, tmp_path
):
    tenant = new_tenant(channel)
    grace = 10
    svc = start_service(
        service.database_url, tmp_path, env_extra={"NOTES_GRACE_SECONDS": str(grace)}
    )
    try:
        body, head = _held_post(tenant, "sigterm")
        with socket.create_connection(("127.0.0.1", svc.http_port), timeout=10) as sock:
            sock.sendall(head.encode())
            # uvicorn answers 100 Continue when the handler first asks for the body: from
            # here on, the request is in flight in the gateway.
            assert _read_head(sock).startswith(b"HTTP/1.1 100 ")
            sock.sendall(body[: len(body) // 2])
            signalled = time.monotonic()
            svc.process.send_signal(signal.SIGTERM)
            svc.wait_for_log(lambda log: any('"not_serving"' in x for x in log))
            _wait_refused(svc.http_port)  # new connections are refused while it drains
            assert svc.process.poll() is None, "the process waits for the in-flight request"
            note = _finish_held_post(sock, body)
        assert note["text"] == "in flight" and note["tags"] == ["sigterm"]
        assert svc.process.wait(timeout=grace) == 0
        assert time.monotonic() - signalled < grace
    finally:
        stop_service(svc)
    events = _events_until_stopped(svc)
    assert events[-3:] == ["not_serving", "draining", "stopped"]
    # The create the drain let through is stored.
    listed = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id="723")),
        metadata=tenant.auth,
    )
    assert [n.body for n in listed.notes] == ["in flight"]


@pytest.mark.slow  # starts its own service
def test_sigterm_turns_healthz_to_503_while_an_in_flight_http_request_completes(
    service, channel, tmp_path
):
    """After SIGTERM /healthz answers 503, from the same record as gRPC health's NOT_SERVING,
    for as long as NOTES_SHUTDOWN_DELAY_SECONDS keeps the port open for load balancers to see
    it; a second SIGTERM starts the drain, and a request in flight all along completes 2xx."""
    tenant = new_tenant(channel)
    grace = 10
    env = {"NOTES_GRACE_SECONDS": str(grace), "NOTES_SHUTDOWN_DELAY_SECONDS": "600"}
    svc = start_service(service.database_url, tmp_path, env_extra=env)
    try:
        healthy = httpx.get(svc.http_base + "/healthz", timeout=10)
        assert (healthy.status_code, healthy.json()) == (200, {"status": "ok"})
        body, head = _held_post(tenant, "healthz")
        with socket.create_connection(("127.0.0.1", svc.http_port), timeout=10) as sock:
            sock.sendall(head.encode())
            assert _read_head(sock).startswith(b"HTTP/1.1 100 ")  # in flight in the gateway
            sock.sendall(body[: len(body) // 2])
            svc.process.send_signal(signal.SIGTERM)
            svc.wait_for_log(lambda log: any('"not_serving"' in x for x in log))
            unhealthy = httpx.get(svc.http_base + "/healthz", timeout=10)  # a new connection
            assert unhealthy.status_code == 503, unhealthy.text
            assert unhealthy.json() == {"status": "not_serving"}
            with grpc.insecure_channel(svc.grpc_target) as ch:
                answer = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
            drained = time.monotonic()
            svc.process.send_signal(signal.SIGTERM)  # the second: drain now, not in 600 s
            _wait_refused(svc.http_port)
            assert svc.process.poll() is None, "the process waits for the in-flight request"
            note = _finish_held_post(sock, body)
        assert note["text"] == "in flight"
        assert svc.process.wait(timeout=grace) == 0
        assert time.monotonic() - drained < grace
    finally:
        stop_service(svc)
    events = _events_until_stopped(svc)
    assert events[-3:] == ["not_serving", "draining", "stopped"]
    assert events.count("not_serving") == 1
    listed = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id="723")),
        metadata=tenant.auth,
    )
    assert [n.body for n in listed.notes] == ["in flight"]


# --- a database outage -----------------------------------------------------------------------


@contextlib.contextmanager
def proxied_service(service, tmp_path, deadline: float) -> Iterator[tuple]:
    """A service (with its gateway) whose PostgreSQL connections pass a proxy the test can
    cut: the database goes away for it alone."""
    if service.engine != "postgres":
        pytest.skip("a PostgreSQL outage")
    parsed = urlparse(service.database_url)
    proxy = Proxy((parsed.hostname or "127.0.0.1", parsed.port or 5432))
    proxy.start()
    user, at, _ = parsed.netloc.rpartition("@")
    url = parsed._replace(netloc=f"{user}{at}127.0.0.1:{proxy.port}").geturl()
    env = {"NOTES_GATEWAY_DEADLINE_SECONDS": str(deadline)}
    try:
        svc = start_service(url, tmp_path, env_extra=env)
        try:
            yield svc, proxy
        finally:
            stop_service(svc)
    finally:
        proxy.stop()


def _made_through_each_dialect(client: httpx.Client, tenant: Tenant) -> dict[str, str]:
    ids = {}
    for dialect in DIALECTS:
        created = dialect.create(client, tenant)
        assert created.status_code == dialect.created, created.text
        ids[dialect.name] = dialect.note_id(created.json())
    return ids


def _recovered(client: httpx.Client, tenant: Tenant, ids: dict[str, str]) -> None:
    for dialect in DIALECTS:
        assert dialect.create(client, tenant).status_code == dialect.created
        assert dialect.read(client, tenant, ids[dialect.name]).status_code == 200


@pytest.mark.slow  # starts its own service
def test_a_database_outage_is_a_quick_503_in_every_dialect_and_recovers(service, channel, tmp_path):
    tenant = new_tenant(channel)
    deadline = 10.0
    with (
        proxied_service(service, tmp_path, deadline) as (svc, proxy),
        httpx.Client(base_url=svc.http_base, timeout=2 * deadline) as client,
    ):
        ids = _made_through_each_dialect(client, tenant)
        proxy.stop()  # connections refused, open ones cut
        for dialect in DIALECTS:
            for attempt in (
                lambda d=dialect: d.create(client, tenant),
                lambda d=dialect: d.read(client, tenant, ids[d.name]),
            ):
                started = time.monotonic()
                response = attempt()
                assert time.monotonic() - started < deadline / 4
                assert dialect.error(response, 503) == OUTAGE_503[dialect.name]
        proxy.start()
        _recovered(client, tenant, ids)


TIMEOUT_504 = {
    "customer_notes": "unexpected_state",
    "shelfcycle": "timeout",
    "woocommerce": "rest_service_timeout",
    "newstore": "The service did not answer in time.",
}


@pytest.mark.slow  # starts its own service
def test_a_database_that_does_not_answer_holds_no_request_past_the_gateway_deadline(
    service, channel, tmp_path
):
    """Connections accepted and never answered (a host gone without a word): the service
    waits on its connect timeout (5 s); the gateway answers 504 at its own deadline."""
    tenant = new_tenant(channel)
    deadline = 1.5
    with (
        proxied_service(service, tmp_path, deadline) as (svc, proxy),
        httpx.Client(base_url=svc.http_base, timeout=10) as client,
    ):
        ids = _made_through_each_dialect(client, tenant)
        proxy.stop()
        silent = socket.create_server(("127.0.0.1", proxy.port), backlog=64)
        try:  # the kernel completes the handshakes; nothing ever reads or answers

            def attempt(dialect: Dialect) -> tuple[httpx.Response, float]:
                started = time.monotonic()
                response = dialect.read(client, tenant, ids[dialect.name])
                return response, time.monotonic() - started

            with ThreadPoolExecutor(len(DIALECTS)) as pool:
                outcomes = list(pool.map(attempt, DIALECTS))
            for dialect, (response, elapsed) in zip(DIALECTS, outcomes, strict=True):
                assert elapsed < deadline + 1.5
                # 503 when a pooled connection the cut closed is found dead first.
                if response.status_code == 503:
                    assert dialect.error(response, 503) == OUTAGE_503[dialect.name]
                else:
                    assert dialect.error(response, 504) == TIMEOUT_504[dialect.name]
        finally:
            silent.close()  # the waiting connects are reset: the service's calls end
        proxy.start()
        _recovered(client, tenant, ids)


# --- malformed HTTP --------------------------------------------------------------------------


@by_name
@pytest.mark.parametrize(
    "content",
    [b'{"body": ', b"{'body': 'x'}", b"", b"NaN", b'{"a": Infinity}', b"\xef\xbb\xbf{}"],
    ids=["truncated", "single-quoted", "empty", "nan", "infinity", "bom"],
)
def test_bad_json_is_the_dialects_400(http, tenant, dialect, content):
    response = dialect.create(http, tenant, content=content)
    if dialect.name == "woocommerce" and content == b"":
        # WordPress merges an empty body as no parameters: the note is missing.
        assert dialect.error(response, 400) == "rest_missing_callback_param"
        return
    assert_malformed(dialect, response)


@by_name
@pytest.mark.parametrize(
    "content", [b'{"body": "\xff\xfe"}', b'{"\xc3\x28": 1}', b'{"body": "\xed\xa0\x80"}']
)
def test_invalid_utf8_is_the_dialects_400(http, tenant, dialect, content):
    assert_malformed(dialect, dialect.create(http, tenant, content=content))


@by_name
@pytest.mark.parametrize("value", [[], [{"body": "x"}], "x", 42, None, True])
def test_a_json_body_that_is_not_an_object_is_the_dialects_400(http, tenant, dialect, value):
    assert_malformed(dialect, dialect.create(http, tenant, content=json.dumps(value).encode()))


# Every dialect reads JSON whatever Content-Type says (see bodies.read_body): mislabelled
# requests from legacy clients (curl -d sends the form type) keep working, and a body that is
# not JSON is the dialect's malformed-JSON 400, never a 415 or a framework page.
@by_name
@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_content_type_does_not_decide_how_a_body_is_read(http, tenant, dialect, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps(dialect.create_body).encode()
    response = dialect.create(http, tenant, content=body, headers=headers)
    refused = dialect.create(http, tenant, content=b"<note>x</note>", headers=headers)
    if dialect.name == "woocommerce" and content_type == "application/x-www-form-urlencoded":
        # WordPress reads a form as a form: its one parameter is named by the whole text.
        assert dialect.error(response, 400) == "rest_missing_callback_param"
        assert dialect.error(refused, 400) == "rest_missing_callback_param"
        return
    assert response.status_code == dialect.created, response.text
    assert_malformed(dialect, refused)


def test_woocommerce_reads_form_bodies_as_wordpress_does(http, tenant):
    response = WOOCOMMERCE.create(
        http,
        tenant,
        content=b"note=from+a+form&customer_note=true",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["note"] == "from a form" and response.json()["customer_note"] is True


@by_name
@pytest.mark.parametrize(
    "extra",
    [{"X-Padding": "a" * 40_000}, {f"X-Header-{i}": "v" * 20 for i in range(1500)}],
    ids=["one-large-header", "many-headers"],
)
def test_headers_past_the_limit_are_the_dialects_431(http, tenant, dialect, extra):
    response = dialect.create(http, tenant, headers=extra)
    assert dialect.error(response, 431) == HEADERS_431[dialect.name]
    assert dialect.create(http, tenant).status_code == dialect.created


CREDENTIALS_REJECTED = {
    "customer_notes": (401, "not_allowed"),
    "shelfcycle": (401, "invalid_api_key"),
    "woocommerce": (401, "woocommerce_rest_authentication_error"),
    "newstore": (403, "Forbidden: the credentials were rejected."),
}


@by_name
def test_an_oversized_credential_is_rejected_as_credentials_not_as_overload(http, dialect):
    # Past gRPC's metadata limit the service would answer RESOURCE_EXHAUSTED: a 429.
    headers = {"Authorization": "Bearer sk_" + "a" * 20_000}
    response = http.post(dialect.create_path, headers=headers, json=dialect.create_body)
    status, found = CREDENTIALS_REJECTED[dialect.name]
    assert dialect.error(response, status) == found


def test_a_100_kb_header_is_refused_and_the_gateway_goes_on(service, http, tenant):
    """Whether h11 (past 64 KiB while the head is incomplete: a bare 400) or the gateway (a
    complete head past HEADERS_LIMIT: the dialect's 431) refuses it depends on how the bytes
    arrive; either way an answer comes at once and the gateway serves on."""
    head = (
        "GET /orders/723/notes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {tenant.secret}\r\nX-Padding: {'a' * 100_000}\r\n\r\n"
    )
    response = _exchange(service.http_port, head.encode())
    assert response.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 431 ")), response[:200]
    assert NEWSTORE.create(http, tenant).status_code == 200


def test_a_request_head_past_h11s_limit_is_a_400_and_the_gateway_goes_on(service, http, tenant):
    """A head that never ends: h11 refuses it at 64 KiB, before the gateway sees it."""
    head = b"GET /orders/723/notes HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 70_000
    response = _exchange(service.http_port, head)
    assert response.startswith(b"HTTP/1.1 400 "), response[:200]
    assert NEWSTORE.create(http, tenant).status_code == 200


NOTE_UUID = "0195f1c2-3b4c-7d8e-9f00-112233445566"
WRONG_METHODS = [
    (CUSTOMER_NOTES, "DELETE", "/admin/customers/cus_1/notes", 405, "GET, HEAD, POST"),
    (CUSTOMER_NOTES, "PUT", "/admin/customers/cus_1/notes", 405, "GET, HEAD, POST"),
    (SHELFCYCLE, "PUT", "/api/v1/notes", 405, "POST"),
    (SHELFCYCLE, "DELETE", "/api/v1/notes/note_x", 405, "GET, HEAD, PATCH"),
    # WordPress answers a known path with an unknown method as no route at all: 404.
    (WOOCOMMERCE, "PATCH", "/wp-json/wc/v3/orders/723/notes", 404, "GET, HEAD, POST"),
    (WOOCOMMERCE, "PUT", "/wp-json/wc/v3/orders/723/notes/1", 404, "DELETE, GET, HEAD"),
    (NEWSTORE, "PATCH", "/orders/723/notes", 405, "GET, HEAD, POST"),
    (NEWSTORE, "GET", f"/orders/723/notes/{NOTE_UUID}", 405, "DELETE, PUT"),
    (NEWSTORE, "GET", "/orders/723/items/item_1/notes", 405, "POST"),
]


@pytest.mark.parametrize(
    "dialect,method,path,status,allow",
    WRONG_METHODS,
    ids=[f"{d.name}-{m}-{p}" for d, m, p, _, _ in WRONG_METHODS],
)
def test_wrong_methods_are_the_dialects_404_or_405_with_allow(
    http, tenant, dialect, method, path, status, allow
):
    response = http.request(method, path, headers=dialect.headers(tenant), json={"x": 1})
    found = dialect.error(response, status)
    assert response.headers["Allow"] == allow
    if dialect is WOOCOMMERCE:
        assert found == "rest_no_route"


def _padded(size: int) -> bytes:
    """A JSON object of exactly size bytes."""
    shell = b'{"pad": ""}'
    return shell[:-2] + b"a" * (size - len(shell)) + shell[-2:]


@by_name
def test_a_body_over_1_mib_is_the_dialects_413(http, tenant, dialect):
    assert BODY_LIMIT == 1024 * 1024
    too_large = _padded(BODY_LIMIT + 1)
    refused = dialect.create(http, tenant, content=too_large)
    assert dialect.error(refused, 413) == BODY_413[dialect.name]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(too_large), 64 * 1024):
            yield too_large[start : start + 64 * 1024]

    streamed = dialect.create(http, tenant, content=chunks())
    assert dialect.error(streamed, 413) == BODY_413[dialect.name]
    at_limit = dialect.create(http, tenant, content=_padded(BODY_LIMIT))
    assert at_limit.status_code in (400, 422), at_limit.text  # read, then refused as input


# --- random input never gets a 5xx ------------------------------------------------------------

FIELD_NAMES = [
    "body",
    "is_internal",
    "metadata",
    "primarySubject",
    "linkedRecords",
    "noteType",
    "title",
    "happenedAt",
    "note",
    "customer_note",
    "added_by_user",
    "text",
    "source",
    "source_type",
    "tags",
    "type",
    "id",
]
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=40),
    st.sampled_from(["customer", "cus_1", "723", "NOTE", "2024-01-15T10:30:00Z", "\x00", "\ud800"]),
)
json_value = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10)), children),
    ),
    max_leaves=20,
)
json_document = st.one_of(
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_value, max_size=6), json_value
).map(lambda value: json.dumps(value).encode())
RANDOM = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _routes(http: httpx.Client, tenant: Tenant) -> dict[str, tuple[str, str, dict]]:
    """Every route that reads a body: (method, path, headers)."""
    sc = SHELFCYCLE.create(http, tenant).json()["data"]
    sc_note = SHELFCYCLE.read(http, tenant, sc["id"]).json()["data"]
    ns = NEWSTORE.create(http, tenant).json()["id"]
    key = bearer(tenant.secret)
    return {
        "customer_notes": ("POST", CUSTOMER_NOTES.create_path, CUSTOMER_NOTES.headers(tenant)),
        "shelfcycle-create": ("POST", SHELFCYCLE.create_path, SHELFCYCLE.headers(tenant)),
        "shelfcycle-patch": (
            "PATCH",
            f"/api/v1/notes/{sc['id']}",
            {**key, "If-Match": sc_note["updatedAt"]},
        ),
        "woocommerce": ("POST", WOOCOMMERCE.create_path, WOOCOMMERCE.headers(tenant)),
        "newstore-order": ("POST", NEWSTORE.create_path, key),
        "newstore-item": ("POST", "/orders/723/items/item_1/notes", key),
        "newstore-update": ("PUT", f"/orders/723/notes/{ns}", key),
    }


ROUTE_NAMES = [
    "customer_notes",
    "shelfcycle-create",
    "shelfcycle-patch",
    "woocommerce",
    "newstore-order",
    "newstore-item",
    "newstore-update",
]


@pytest.mark.parametrize("route", ROUTE_NAMES)
@pytest.mark.parametrize(
    "kind,bodies", [("bytes", st.binary(max_size=512)), ("json", json_document)]
)
def test_random_bodies_never_get_a_5xx(http, tenant, route, kind, bodies):
    method, path, headers = _routes(http, tenant)[route]

    @RANDOM
    @given(content=bodies)
    def run(content: bytes) -> None:
        sent = dict(headers)
        if route == "shelfcycle-create":
            sent["Idempotency-Key"] = uuid.uuid4().hex
        response = http.request(method, path, headers=sent, content=content)
        assert response.status_code < 500, response.text
        assert response.headers["content-type"] == "application/json"

    run()


# --- message size ------------------------------------------------------------------------------


def test_the_gateway_channel_sets_the_message_size_limits(monkeypatch):
    made = []
    real = gateway_app.grpc.aio.insecure_channel

    def insecure_channel(target, options=None, **kwargs):
        made.append(dict(options or []))
        return real(target, options=options, **kwargs)

    monkeypatch.setattr(gateway_app.grpc.aio, "insecure_channel", insecure_channel)
    app = gateway_app.create_app("127.0.0.1:1", Settings(max_message_bytes=3 * 1024 * 1024))

    async def start_and_stop() -> None:
        async with app.router.lifespan_context(app):
            assert app.state.channel is not None

    asyncio.run(start_and_stop())
    assert made == [
        {
            "grpc.max_receive_message_length": 3 * 1024 * 1024,
            "grpc.max_send_message_length": 3 * 1024 * 1024,
        }
    ]


BAD_BYTES_TARGETS = {
    "customer_notes": "/admin/customers/cus_%FF%FE/notes?q=%FF&author_id[]=%C3%28",
    "shelfcycle": "/api/v1/notes/note_%FF%FE",
    "woocommerce": "/wp-json/wc/v3/orders/723/notes/%FF?type=%FF&context=%C3%28",
    "newstore": "/orders/%FF%FE/notes",
}


@by_name
def test_invalid_utf8_in_the_path_query_and_headers_is_never_a_5xx(service, http, tenant, dialect):
    """Percent-encoded bytes that are not UTF-8 in the path and query, and raw bytes above
    0x7F in header values (Authorization included), sent on a raw socket: each is answered
    in the dialect's shape, below 500, and the gateway goes on."""
    headers = dialect.headers(tenant)
    auth = headers["Authorization"].encode()
    target = BAD_BYTES_TARGETS[dialect.name].encode()
    start = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nAuthorization: "
    heads = [start + auth, start + b"Bearer \xff\xfe\x80", start + auth + b"\r\nX-No: \xc3\x28"]
    for head in heads:
        response = _exchange(service.http_port, head + b"\r\nConnection: close\r\n\r\n")
        status_line, _, rest = response.partition(b"\r\n")
        status = int(status_line.split()[1])
        assert 400 <= status < 500, response[:300]
        assert b"content-type: application/json" in rest.lower(), response[:300]
    assert dialect.create(http, tenant).status_code == dialect.created
