"""SQLite group commit: writers that queue while a transaction is open share it and its one
fsync. A writer is answered only once the COMMIT holding its change is durable, and a writer
whose block fails takes nobody else's change down with it."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from concurrent import futures
from urllib.parse import urlparse

import grpc
import pytest
from notes.v1 import notes_pb2 as pb

from server.store import db, uow

CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")


class Refused(Exception):
    pass


def _sqlite_path(service) -> str:
    if service.engine != "sqlite":
        pytest.skip("SQLite's group commit")
    return urlparse(service.database_url).path[1:]


def _committed(path: str, table: str, value: str) -> bool:
    """Whether another connection sees the row: committed, not merely written."""
    with sqlite3.connect(path) as other:
        return (
            other.execute(f'SELECT count(*) FROM "{table}" WHERE v = ?', (value,)).fetchone()[0] > 0
        )


def _queued(writers: int) -> None:
    """Until that many writers wait for the connection (nothing to await: the queue is a
    condition inside the store)."""
    deadline = time.monotonic() + 10
    while uow._SQLITE_WRITERS._waiting < writers:
        assert time.monotonic() < deadline, "writers did not queue"
        time.sleep(0.001)


def test_queued_writers_share_one_commit_and_a_failing_one_fails_alone(service):
    path = _sqlite_path(service)
    table = "group_" + uuid.uuid4().hex[:8]
    with uow.writing():
        uow.run_sql(f'CREATE TABLE "{table}" (id INTEGER PRIMARY KEY, v TEXT UNIQUE)')
    holding, go = threading.Event(), threading.Event()
    writers, refused, duplicate = 12, 4, 7
    first_seen_by_others: dict[int, bool] = {}
    answered_after_commit: dict[int, bool] = {}

    def first() -> None:
        with uow.writing():
            uow.run_sql(f'INSERT INTO "{table}" (v) VALUES (?)', ("first",))
            holding.set()
            assert go.wait(10)

    def writer(i: int) -> None:
        with uow.writing():
            # A duplicate fails in SQLite itself; a refusal after its insert, in Python.
            value = "first" if i == duplicate else f"w{i}"
            uow.run_sql(f'INSERT INTO "{table}" (v) VALUES (?)', (value,))
            first_seen_by_others[i] = _committed(path, table, "first")
            if i == refused:
                raise Refused()
        answered_after_commit[i] = _committed(path, table, f"w{i}")

    with futures.ThreadPoolExecutor(writers + 1) as pool:
        head = pool.submit(first)
        assert holding.wait(10)
        queued = [pool.submit(writer, i) for i in range(writers)]
        _queued(writers)
        go.set()
        head.result(timeout=30)
        outcomes = {i: f.exception(timeout=30) for i, f in enumerate(queued)}

    assert isinstance(outcomes.pop(refused), Refused)
    assert isinstance(outcomes.pop(duplicate), uow.IntegrityError)
    assert outcomes == {i: None for i in outcomes}
    # They ran inside the first writer's transaction, before its commit...
    assert first_seen_by_others and not any(first_seen_by_others.values())
    # ...and each was answered only once that commit had made its change durable.
    assert answered_after_commit == {i: True for i in outcomes}
    with sqlite3.connect(path) as other:
        stored = {v for (v,) in other.execute(f'SELECT v FROM "{table}"')}
    assert stored == {"first"} | {f"w{i}" for i in outcomes}
    with uow.writing():
        uow.run_sql(f'DROP TABLE "{table}"')


def test_concurrent_creates_are_each_committed_or_refused_alone(service, tenant):
    """Many CreateNote at once, some refused inside the transaction (an unregistered subject):
    every acknowledged note is stored and replays as itself; no refused one is stored."""
    if service.engine != "sqlite":
        pytest.skip("SQLite's group commit")
    ghost = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_unregistered")
    requests = [(f"note {i}", ghost if i % 5 == 2 else CUS_1, str(uuid.uuid4())) for i in range(40)]

    def create(body, subject, request_id):
        try:
            return tenant.create(body, subject=subject, request_id=request_id, timeout=30)
        except grpc.RpcError as e:
            return e.code()

    with futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda r: create(*r), requests))

    created = {}
    for (body, subject, request_id), answer in zip(requests, answers, strict=True):
        if subject is ghost:
            assert answer == grpc.StatusCode.NOT_FOUND
            continue
        assert answer.idempotency_status == pb.IDEMPOTENCY_STATUS_CREATED
        assert answer.note.body == body
        created[answer.note.id] = (body, request_id)
    listed = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, page_size=100), metadata=tenant.auth
    )
    assert {n.id: n.body for n in listed.notes} == {i: b for i, (b, _) in created.items()}
    for note_id, (body, request_id) in list(created.items())[:5]:
        again = tenant.create(body, request_id=request_id, timeout=10)
        assert again.idempotency_status == pb.IDEMPOTENCY_STATUS_REPLAYED
        assert again.note.id == note_id
    assert db.current().kind == "sqlite"
