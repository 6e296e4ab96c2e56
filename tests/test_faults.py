"""Database faults, overload, deadlines and rate limits."""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import time
from concurrent import futures
from urllib.parse import parse_qs, urlparse

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from notes.v1 import notes_pb2 as pb
from notes.v1 import notes_pb2_grpc as pb_grpc

from server.store import uow

from .conftest import error_info, new_tenant, start_service, stop_service
from .proxy import Proxy

CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")
pytestmark = pytest.mark.slow


@pytest.fixture
def own_service(service, tmp_path):
    """Starts extra services on the session's database with settings of the test's own."""
    started = []

    def start(*args: str, url: str | None = None, **env: str):
        svc = start_service(
            url or service.database_url, tmp_path, "--no-http", *args, env_extra=env
        )
        started.append(svc)
        return svc

    yield start
    for svc in started:
        stop_service(svc)


def test_more_calls_than_the_limit_are_refused_quickly_while_admitted_ones_go_on(
    own_service, channel
):
    tenant = new_tenant(channel)
    svc = own_service(NOTES_MAX_CONCURRENT_RPCS="3")
    with grpc.insecure_channel(svc.grpc_target) as ch:
        reflection = reflection_pb2_grpc.ServerReflectionStub(ch)
        notes = pb_grpc.NotesServiceStub(ch)
        ends = [queue.Queue() for _ in range(3)]

        def requests(end: queue.Queue):
            yield reflection_pb2.ServerReflectionRequest(list_services="")
            end.get()  # the stream stays open, its call running, until the test ends it

        watches = [reflection.ServerReflectionInfo(requests(end)) for end in ends]
        for w in watches:  # each admitted call is running
            assert next(w).list_services_response.service
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            notes.ListNotes(pb.ListNotesRequest(subject=CUS_1), metadata=tenant.auth, timeout=5)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert time.monotonic() - started < 1.0
        ends[0].put(None)
        assert list(watches[0]) == []
        deadline = time.monotonic() + 5
        while True:  # the server frees the slot when it sees the cancellation
            try:
                notes.ListNotes(pb.ListNotesRequest(subject=CUS_1), metadata=tenant.auth)
                break
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() < deadline
        for end in ends[1:]:
            end.put(None)


def test_rate_limits_per_key_and_route_answer_with_retry_information(own_service, channel):
    tenant = new_tenant(channel)
    svc = own_service(
        NOTES_RATE_LIMIT_WRITES_PER_MINUTE="3", NOTES_RATE_LIMIT_READS_PER_MINUTE="1000"
    )
    with grpc.insecure_channel(svc.grpc_target) as ch:
        notes = pb_grpc.NotesServiceStub(ch)
        request = pb.CreateNoteRequest(note=pb.Note(subject=CUS_1, body="x"))
        for _ in range(3):
            notes.CreateNote(request, metadata=tenant.auth)
        with pytest.raises(grpc.RpcError) as e:
            notes.CreateNote(request, metadata=tenant.auth)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(e.value).reason == "RATE_LIMITED"
        status = rpc_status.from_call(e.value)
        retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
        assert len(retry) == 1
        info = error_details_pb2.RetryInfo()
        retry[0].Unpack(info)
        assert 0 < info.retry_delay.ToMilliseconds() <= 20_000
        # Reads are another route with their own budget; another key has its own bucket.
        notes.ListNotes(pb.ListNotesRequest(subject=CUS_1), metadata=tenant.auth)
        other = (("authorization", f"Bearer {tenant.key()}"),)
        notes.CreateNote(request, metadata=other)


@contextlib.contextmanager
def writes_blocked(service):
    """Holds the notes table's write lock from outside the service until the block ends."""
    parsed = urlparse(service.database_url)
    if service.engine == "sqlite":
        blocker = sqlite3.connect(parsed.path[1:])
        blocker.execute("BEGIN IMMEDIATE")  # the Python module leaves the transaction to us
    else:
        schema = parse_qs(parsed.query)["schema"][0]
        blocker = psycopg.connect(parsed._replace(query="").geturl())
        blocker.execute(f'LOCK TABLE "{schema}".notes IN EXCLUSIVE MODE')
    try:
        yield
    finally:
        blocker.rollback()
        blocker.close()


def test_a_client_deadline_is_honoured_and_the_abandoned_call_stores_nothing(service, tenant):
    """The server is stuck on a lock it cannot get; the caller still hears back at its
    deadline, with DEADLINE_EXCEEDED, not after the lock is released. Once the lock is free
    the server finds nobody waiting and rolls the create back instead of committing it."""
    seen = len(service.log)
    with writes_blocked(service):
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            tenant.create("never waited for", timeout=0.5)
        elapsed = time.monotonic() - started
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.5 <= elapsed < 3
    service.wait_for_log(
        lambda lines: any(
            "/CreateNote" in line and '"code": "CANCELLED"' in line for line in lines[seen:]
        )
    )
    listed = tenant.notes.ListNotes(pb.ListNotesRequest(subject=CUS_1), metadata=tenant.auth)
    assert list(listed.notes) == []


def test_postgres_going_away_fails_fast_and_recovers_by_itself(service, own_service, channel):
    if service.engine != "postgres":
        pytest.skip("a PostgreSQL outage")
    tenant = new_tenant(channel)
    parsed = urlparse(service.database_url)
    proxy = Proxy((parsed.hostname or "127.0.0.1", parsed.port or 5432))
    proxy.start()
    url = parsed._replace(
        netloc=parsed.netloc.replace(
            f"{parsed.hostname}:{parsed.port}" if parsed.port else str(parsed.hostname),
            f"127.0.0.1:{proxy.port}",
        )
    ).geturl()
    try:
        svc = own_service(url=url)
        with grpc.insecure_channel(svc.grpc_target) as ch:
            notes = pb_grpc.NotesServiceStub(ch)
            request = pb.ListNotesRequest(subject=CUS_1)
            notes.ListNotes(request, metadata=tenant.auth, timeout=5)
            proxy.stop()
            for _ in range(5):
                started = time.monotonic()
                with pytest.raises(grpc.RpcError) as e:
                    notes.ListNotes(request, metadata=tenant.auth, timeout=8)
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE
                assert time.monotonic() - started < 6
            proxy.start()
            assert notes.ListNotes(request, metadata=tenant.auth, timeout=8).notes is not None
            created = notes.CreateNote(
                pb.CreateNoteRequest(note=pb.Note(subject=CUS_1, body="after")),
                metadata=tenant.auth,
                timeout=8,
            )
            assert created.note.id
    finally:
        proxy.stop()


def test_a_busy_sqlite_file_makes_writers_wait_not_fail(service, tenant):
    if service.engine != "sqlite":
        pytest.skip("SQLite's write lock")
    path = urlparse(service.database_url).path[1:]
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # hold the write lock
    with futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(tenant.create, "waited", timeout=20)
        released = threading.Timer(0.5, lambda: blocker.execute("COMMIT"))
        released.start()  # the lock is released while the create waits on it
        note = pending.result(timeout=30).note
        released.join()
    blocker.close()
    assert note.body == "waited"


def test_a_writer_queue_held_by_another_process_is_waited_for_only_so_long(service, tenant):
    """Processes sharing a SQLite file queue their writers on an flock beside it. A holder
    that never lets go (stopped, not dead) costs a writer WRITE_WAIT_SECONDS, then
    UNAVAILABLE: never a hang past that, never "database is locked", nothing stored."""
    if service.engine != "sqlite":
        pytest.skip("SQLite's writer queue")
    path = urlparse(service.database_url).path[1:]
    fd = os.open(path + "-writer", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            tenant.create("queued behind a stopped writer", timeout=30)
        elapsed = time.monotonic() - started
    finally:
        os.close(fd)  # releases the lock
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "locked" not in (e.value.details() or "")
    assert uow.WRITE_WAIT_SECONDS <= elapsed < uow.WRITE_WAIT_SECONDS + 5
    assert tenant.create("after the holder let go", timeout=10).note.version == 1
    listed = tenant.notes.ListNotes(pb.ListNotesRequest(subject=CUS_1), metadata=tenant.auth)
    assert [n.body for n in listed.notes] == ["after the holder let go"]
