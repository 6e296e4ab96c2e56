"""Request ids: replay, mismatch, and a burst of one id from many threads."""

from __future__ import annotations

import threading
import uuid
from concurrent import futures

import grpc
import pytest
from notes.v1 import notes_pb2 as pb

from .conftest import error_info
from .test_faults import writes_blocked

CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")


def count_notes(tenant, **kwargs) -> int:
    resp = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, page_size=1000, **kwargs), metadata=tenant.auth
    )
    return len(resp.notes)


def test_a_replay_returns_the_first_response_and_changes_nothing(tenant):
    first = tenant.create("once", request_id="req-1")
    again = tenant.create("once", request_id="req-1")
    assert again.idempotency_status == pb.IDEMPOTENCY_STATUS_REPLAYED
    assert again.note == first.note
    assert count_notes(tenant) == 1


def test_the_same_id_with_another_payload_is_refused(tenant):
    tenant.create("once", request_id="req-2")
    with pytest.raises(grpc.RpcError) as e:
        tenant.create("different", request_id="req-2")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(e.value).reason == "REQUEST_ID_REUSED"
    assert count_notes(tenant) == 1


def test_request_ids_are_scoped_per_organization_and_method(tenant, other_tenant):
    mine = tenant.create("x", request_id="shared").note
    theirs = other_tenant.create("x", request_id="shared").note
    assert mine.id != theirs.id
    update = tenant.notes.UpdateNote(
        pb.UpdateNoteRequest(note=pb.Note(id=mine.id, body="y"), request_id="shared"),
        metadata=tenant.auth,
    )
    assert update.idempotency_status == pb.IDEMPOTENCY_STATUS_CREATED


def test_an_update_replay_does_not_apply_twice(tenant):
    note = tenant.create().note
    req = pb.UpdateNoteRequest(
        note=pb.Note(id=note.id, body="v2"), expected_version=1, request_id="upd"
    )
    first = tenant.notes.UpdateNote(req, metadata=tenant.auth)
    second = tenant.notes.UpdateNote(req, metadata=tenant.auth)
    assert second.idempotency_status == pb.IDEMPOTENCY_STATUS_REPLAYED
    assert second.note == first.note and second.note.version == 2


def test_a_failed_request_stores_nothing_so_it_can_be_fixed_and_retried(tenant):
    with pytest.raises(grpc.RpcError):
        tenant.create("", request_id="fix-me")
    assert tenant.create("fixed", request_id="fix-me").idempotency_status == (
        pb.IDEMPOTENCY_STATUS_CREATED
    )


def test_twenty_threads_with_one_request_id_create_exactly_one_note(tenant):
    request_id = str(uuid.uuid4())
    barrier = threading.Barrier(20)
    results: list[object] = [None] * 20

    def send(i: int) -> None:
        barrier.wait()
        try:
            results[i] = tenant.create("burst", request_id=request_id)
        except grpc.RpcError as e:
            results[i] = e

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    responses = [r for r in results if not isinstance(r, grpc.RpcError)]
    errors = [r for r in results if isinstance(r, grpc.RpcError)]
    assert all(e.code() == grpc.StatusCode.ABORTED for e in errors)
    assert all(error_info(e).reason == "REQUEST_IN_FLIGHT" for e in errors)
    created = [r for r in responses if r.idempotency_status == pb.IDEMPOTENCY_STATUS_CREATED]
    assert len(created) == 1
    assert {r.note.id for r in responses} == {created[0].note.id}
    assert count_notes(tenant) == 1


def test_a_duplicate_while_the_first_is_under_way_is_aborted_and_stores_nothing(service, tenant):
    """Two sends of one request id while the notes table is write-locked from outside: the
    first to claim the id waits for the lock, the other is ABORTED at once (it cannot finish
    first while the lock is held); after the lock is released the first creates the note."""
    request_id = str(uuid.uuid4())
    with futures.ThreadPoolExecutor(2) as pool:
        with writes_blocked(service):
            sent = [pool.submit(tenant.create, "once", request_id=request_id, timeout=30)]
            sent.append(pool.submit(tenant.create, "once", request_id=request_id, timeout=30))
            done, _ = futures.wait(sent, timeout=30, return_when=futures.FIRST_COMPLETED)
            first_back = done.pop()
            with pytest.raises(grpc.RpcError) as e:
                first_back.result()
            assert e.value.code() == grpc.StatusCode.ABORTED
            assert error_info(e.value).reason == "REQUEST_IN_FLIGHT"
        (waited,) = (f for f in sent if f is not first_back)
        assert waited.result(timeout=30).idempotency_status == pb.IDEMPOTENCY_STATUS_CREATED
    assert count_notes(tenant) == 1
    retried = tenant.create("once", request_id=request_id)
    assert retried.idempotency_status == pb.IDEMPOTENCY_STATUS_REPLAYED
