"""What an operator sees: JSON log lines, Prometheus metrics (one process and 2 workers) and
OpenTelemetry traces across the gateway and the service."""

from __future__ import annotations

import json
import re
import subprocess
import time

import grpc
import httpx
import pytest
from notes.v1 import notes_pb2 as pb
from notes.v1 import notes_pb2_grpc as pb_grpc
from prometheus_client.parser import text_string_to_metric_families

from .conftest import (
    ENGINES,
    http_lines,
    make_database,
    records,
    rpc_lines,
    start_service,
    stop_service,
)

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
GET_NOTE = {"grpc_service": "notes.v1.NotesService", "grpc_method": "GetNote"}


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def until(condition, timeout: float = 10.0) -> bool:
    """Whether condition() holds within timeout seconds, asked again each time it does not."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_every_log_line_is_one_json_object_with_ts_level_logger_event(service, tenant):
    created = tenant.create("logged")
    tenant.notes.GetNote(pb.GetNoteRequest(id=created.note.id), metadata=tenant.auth)
    httpx.get(f"{service.http_base}/api/v1/notes/{created.note.id}", headers=bearer(tenant.secret))
    httpx.get(f"{service.http_base}/no/such/route")
    log = service.wait_for_log(lambda log: len(http_lines(log)) >= 2)
    for line in log:
        entry = json.loads(line)  # every line, not only the ones this test made
        assert RFC3339_UTC.match(entry["ts"]), entry
        assert entry["level"] in {"debug", "info", "warning", "error", "critical"}
        assert entry["logger"].startswith(("notes", "uvicorn", "grpc")), entry
        assert isinstance(entry["event"], str) and entry["event"]
    assert "serving" in [r["event"] for r in records(log)]


def test_http_access_lines_give_the_route_template_org_and_shelfcycle_request_id(service, tenant):
    created = tenant.create("body-marker-http-9c1e")
    ok = httpx.get(
        f"{service.http_base}/api/v1/notes/{created.note.id}", headers=bearer(tenant.secret)
    )
    assert ok.status_code == 200
    missing = httpx.get(
        f"{service.http_base}/api/v1/notes/note_absent_7f", headers=bearer(tenant.secret)
    )
    assert missing.status_code == 404
    request_id = missing.json()["error"]["requestId"]

    def mine(log: list[str]) -> list[dict]:
        return [x for x in http_lines(log) if x["org"] == tenant.org]

    lines = mine(service.wait_for_log(lambda log: len(mine(log)) >= 2))
    by_status = {x["status"]: x for x in lines}
    assert by_status[404]["request_id"] == request_id  # what the caller sees is what we log
    for entry in lines:
        assert entry["route"] == "/api/v1/notes/{id}"
        assert entry["method"] == "GET" and entry["dialect"] == "shelfcycle"
        assert entry["ms"] >= 0 and entry["request_id"].startswith("req_")
    text = "".join(service.log)
    assert "note_absent_7f" not in text and created.note.id not in text  # no raw paths
    assert tenant.secret not in text and "body-marker-http-9c1e" not in text


def test_metrics_count_grpc_calls_http_requests_and_store_work(service, tenant):
    assert service.metrics_port
    note = tenant.create("counted").note
    before = scrape(service.metrics_port)
    for _ in range(3):
        tenant.notes.GetNote(pb.GetNoteRequest(id=note.id), metadata=tenant.auth)
    with pytest.raises(grpc.RpcError):
        tenant.notes.GetNote(pb.GetNoteRequest(id="note_absent"), metadata=tenant.auth)
    for _ in range(2):
        got = httpx.get(
            f"{service.http_base}/api/v1/notes/{note.id}", headers=bearer(tenant.secret)
        )
        assert got.status_code == 200
    tenant.create("written")
    after = scrape(service.metrics_port)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    unary = {"grpc_type": "UNARY", **GET_NOTE}
    # The gateway's two GETs are GetNote calls too.
    assert delta("grpc_server_started_total", **unary) == 6
    assert delta("grpc_server_handled_total", **unary, grpc_code="OK") == 5
    assert delta("grpc_server_handled_total", **unary, grpc_code="NOT_FOUND") == 1
    assert delta("grpc_server_handling_seconds_count", **unary) == 6
    route = {"dialect": "shelfcycle", "method": "GET", "route": "/api/v1/notes/{id}"}
    assert delta("http_server_requests_total", **route, status="200") == 2
    assert delta("http_server_request_duration_seconds_count", **route, status="200") == 2
    # None held once the calls are done. The events the create wrote wake the service's own
    # background work (feed, deliveries), which may hold a unit for a moment at the scrape.
    idle = until(lambda: value(scrape(service.metrics_port), "notes_store_connections_in_use") == 0)
    assert idle, "a unit of work still holds a connection"
    if service.engine == "sqlite":
        assert delta("notes_store_writer_queue_wait_seconds_count") >= 1
    assert ("notes_store_transactions_rolled_back_total", frozenset()) in after


def test_a_failed_write_counts_as_a_rollback(service, tenant):
    before = value(scrape(service.metrics_port), "notes_store_transactions_rolled_back_total")
    unregistered = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_unregistered")
    with pytest.raises(grpc.RpcError) as err:  # found out inside the write transaction
        tenant.create("nowhere", subject=unregistered)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    after = value(scrape(service.metrics_port), "notes_store_transactions_rolled_back_total")
    assert after - before >= 1


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_one_scrape_sums_every_worker(engine, tmp_path):
    url, drop = make_database(engine, tmp_path)
    svc = start_service(url, tmp_path, "--workers", "2", "--no-http")
    try:
        assert svc.metrics_port
        calls = 24
        for _ in range(calls):  # a connection each, spread over the workers by the kernel
            with grpc.insecure_channel(svc.grpc_target) as ch:
                with pytest.raises(grpc.RpcError) as err:
                    pb_grpc.AccessServiceStub(ch).CheckAccess(pb.CheckAccessRequest(), timeout=10)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        served = {x["pid"] for x in records(svc.log) if x["event"] == "serving"}
        svc.wait_for_log(lambda log: len(rpc_lines(log)) >= calls)
        samples = scrape(svc.metrics_port)
        labels = {
            "grpc_type": "UNARY",
            "grpc_service": "notes.v1.AccessService",
            "grpc_method": "CheckAccess",
        }
        handled = value(samples, "grpc_server_handled_total", **labels, grpc_code="UNAUTHENTICATED")
        assert handled == calls
        assert value(samples, "grpc_server_started_total", **labels) == calls
        assert len(served) >= 1
    finally:
        stop_service(svc)
        drop()


def test_an_empty_metrics_address_serves_no_metrics(service, tmp_path):
    svc = start_service(
        service.database_url, tmp_path, "--no-http", env_extra={"NOTES_METRICS_ADDR": ""}
    )
    try:
        assert svc.metrics_port == 0
        assert "metrics_port" not in records(svc.log)[0]
    finally:
        stop_service(svc)


def _spans(text: str) -> list[dict]:
    """The console exporter's output: JSON objects one after another."""
    decoder = json.JSONDecoder()
    spans, at = [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return spans
        span, at = decoder.raw_decode(text, at)
        spans.append(span)


@pytest.mark.slow
def test_one_trace_runs_from_the_http_request_through_the_grpc_call_to_the_store(
    service, tenant, tmp_path
):
    out = tmp_path / "spans.json"
    with out.open("w") as stdout:
        svc = start_service(
            service.database_url,
            tmp_path,
            env_extra={"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "notes-test"},
            stdout=stdout,
        )
    try:
        note = tenant.create("traced").note
        got = httpx.get(f"{svc.http_base}/api/v1/notes/{note.id}", headers=bearer(tenant.secret))
        assert got.status_code == 200
        line = svc.wait_for_log(lambda log: len(http_lines(log)) >= 1)
        access = http_lines(line)[0]
    finally:
        stop_service(svc)  # flushes the exporter
    spans = _spans(out.read_text())
    trace_id = access["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    mine = [s for s in spans if s["context"]["trace_id"] == "0x" + trace_id]
    kinds = {(s["name"], s["kind"]) for s in mine}
    assert ("GET /api/v1/notes/{id}", "SpanKind.SERVER") in kinds
    assert ("notes.v1.NotesService/GetNote", "SpanKind.CLIENT") in kinds
    assert ("notes.v1.NotesService/GetNote", "SpanKind.SERVER") in kinds
    assert any(s["name"].startswith("db.") for s in mine)
    assert all(s["resource"]["attributes"]["service.name"] == "notes-test" for s in mine)
    rpc = [x for x in rpc_lines(svc.log) if x["method"].endswith("/GetNote")]
    assert rpc and rpc[-1]["trace_id"] == trace_id  # the service's access line, same trace


def test_tracing_is_off_by_default(service):
    assert all(x["trace_id"] == "" for x in rpc_lines(service.log))


@pytest.mark.parametrize("cmd", [["--help"]])
def test_serve_documents_its_observability_flags(cmd):
    from .conftest import BIN

    out = subprocess.run(
        [str(BIN / "notes"), "serve", *cmd], capture_output=True, text=True, check=True
    ).stdout
    assert "--metrics-addr" in out and "--tls-cert" in out and "--tls-key" in out


def test_streaming_calls_are_counted_with_their_grpc_type(service):
    from .conftest import BIN

    def reflection(samples: dict, name: str, **extra: str) -> float:
        return sum(  # grpcurl picks v1 or v1alpha by its version
            value(
                samples,
                name,
                grpc_type="BIDI_STREAM",
                grpc_service=f"grpc.reflection.{v}.ServerReflection",
                grpc_method="ServerReflectionInfo",
                **extra,
            )
            for v in ("v1", "v1alpha")
        )

    before = scrape(service.metrics_port)
    out = subprocess.run(
        [str(BIN / "grpcurl"), "-plaintext", service.grpc_target, "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    after = scrape(service.metrics_port)
    for name, extra in (
        ("grpc_server_started_total", {}),
        ("grpc_server_handled_total", {"grpc_code": "OK"}),
        ("grpc_server_handling_seconds_count", {}),
    ):
        assert reflection(after, name, **extra) > reflection(before, name, **extra), name
