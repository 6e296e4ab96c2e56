"""PostgreSQL stalls (a table locked from outside) with more calls than worker threads: health
still answers, and every call fails within its deadline instead of holding a worker."""

from __future__ import annotations

import time
from concurrent import futures
from urllib.parse import parse_qs, urlparse

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from notes.v1 import notes_pb2 as pb
from notes.v1 import notes_pb2_grpc as pb_grpc

from .conftest import new_tenant, start_service, stop_service

pytestmark = pytest.mark.slow
THREADS = 4
CALLS = 12
DEADLINE = 4.0
CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")


def test_a_stalled_postgres_leaves_health_answering_and_calls_failing_in_time(
    service, channel, tmp_path
):
    if service.engine != "postgres":
        pytest.skip("a PostgreSQL stall")
    tenant = new_tenant(channel)
    env = {"NOTES_THREADS": str(THREADS), "NOTES_DB_STATEMENT_TIMEOUT_MS": "2000"}
    svc = start_service(service.database_url, tmp_path, "--no-http", env_extra=env)
    parsed = urlparse(service.database_url)
    schema = parse_qs(parsed.query)["schema"][0]
    plain = parsed._replace(query="").geturl()
    blocker = psycopg.connect(plain)
    try:
        with grpc.insecure_channel(svc.grpc_target) as ch:
            notes = pb_grpc.NotesServiceStub(ch)
            request = pb.ListNotesRequest(subject=CUS_1)
            notes.ListNotes(request, metadata=tenant.auth, timeout=5)  # warm: keys cached
            blocker.execute(f'LOCK TABLE "{schema}".notes IN ACCESS EXCLUSIVE MODE')

            def call(i: int) -> tuple[grpc.StatusCode, float]:
                started = time.monotonic()
                try:
                    if i % 2:
                        notes.ListNotes(request, metadata=tenant.auth, timeout=DEADLINE)
                    else:
                        tenant.notes.__class__(ch).CreateNote(
                            pb.CreateNoteRequest(note=pb.Note(subject=CUS_1, body="stalled")),
                            metadata=tenant.auth,
                            timeout=DEADLINE,
                        )
                    code = grpc.StatusCode.OK
                except grpc.RpcError as e:
                    code = e.code()
                return code, time.monotonic() - started

            with futures.ThreadPoolExecutor(CALLS) as pool:
                calls = [pool.submit(call, i) for i in range(CALLS)]
                # every worker waits on the lock
                with psycopg.connect(plain, autocommit=True) as watcher:
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:
                        waiting = watcher.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND pid <> pg_backend_pid()"
                        ).fetchone()[0]
                        if waiting >= THREADS:
                            break
                        time.sleep(0.05)
                    assert waiting >= THREADS
                started = time.monotonic()
                health = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
                health_seconds = time.monotonic() - started
                assert health.status in (
                    health_pb2.HealthCheckResponse.SERVING,
                    health_pb2.HealthCheckResponse.NOT_SERVING,
                )
                outcomes = [c.result() for c in calls]
            blocker.rollback()
            codes = {code for code, _ in outcomes}
            slowest = max(seconds for _, seconds in outcomes)
            print(f"health {health_seconds:.3f}s, codes {codes}, slowest call {slowest:.2f}s")
            assert codes <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
            assert slowest < DEADLINE + 2
            # the service serves again once the lock is gone
            assert notes.ListNotes(request, metadata=tenant.auth, timeout=5).notes is not None
        logged = "".join(svc.log)
        assert "Traceback" not in logged
    finally:
        blocker.close()
        stop_service(svc)
