"""Several service processes on one database: the database, not memory, keeps the promises."""

from __future__ import annotations

import itertools
import threading
import uuid

import grpc
import pytest
from notes.v1 import notes_pb2 as pb
from notes.v1 import notes_pb2_grpc as pb_grpc

from .conftest import new_tenant, page_through, start_service, stop_service

CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def replicas(service, tmp_path_factory):
    """The session's service plus more processes on its database: 3 on PostgreSQL, 2 on SQLite."""
    extra = 2 if service.engine == "postgres" else 1
    tmp = tmp_path_factory.mktemp("replicas")
    others = [start_service(service.database_url, tmp, "--no-http") for _ in range(extra)]
    channels = [grpc.insecure_channel(s.grpc_target) for s in [service, *others]]
    yield channels
    for ch in channels:
        ch.close()
    for s in others:
        stop_service(s)


def run_threads(n: int, target) -> None:
    barrier = threading.Barrier(n)

    def body(i: int) -> None:
        barrier.wait()
        target(i)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_one_request_id_across_replicas_creates_exactly_one_note(replicas, channel):
    tenant = new_tenant(channel)
    stubs = [pb_grpc.NotesServiceStub(ch) for ch in replicas]
    for _ in range(3):
        request = pb.CreateNoteRequest(
            note=pb.Note(subject=CUS_1, body="replicated"), request_id=str(uuid.uuid4())
        )
        results: list[object] = [None] * 24

        def send(i: int, request=request, results=results) -> None:
            try:
                results[i] = stubs[i % len(stubs)].CreateNote(request, metadata=tenant.auth)
            except grpc.RpcError as e:
                results[i] = e.code()

        run_threads(24, send)
        responses = [r for r in results if isinstance(r, pb.CreateNoteResponse)]
        assert all(r == grpc.StatusCode.ABORTED for r in results if r not in responses)
        created = [r for r in responses if r.idempotency_status == pb.IDEMPOTENCY_STATUS_CREATED]
        assert len(created) == 1
        assert all(r.note == created[0].note for r in responses), "replays are identical"
    listed = tenant.notes.ListNotes(pb.ListNotesRequest(subject=CUS_1), metadata=tenant.auth)
    assert len(listed.notes) == 3


def test_one_expected_version_across_replicas_lets_exactly_one_update_win(replicas, channel):
    tenant = new_tenant(channel)
    stubs = [pb_grpc.NotesServiceStub(ch) for ch in replicas]
    note = tenant.create("v1").note
    outcomes: list[object] = [None] * 12

    def update(i: int) -> None:
        try:
            outcomes[i] = (
                stubs[i % len(stubs)]
                .UpdateNote(
                    pb.UpdateNoteRequest(
                        note=pb.Note(id=note.id, body=f"w{i}"), expected_version=1
                    ),
                    metadata=tenant.auth,
                )
                .note.version
            )
        except grpc.RpcError as e:
            outcomes[i] = e.code()

    run_threads(12, update)
    assert outcomes.count(2) == 1
    assert outcomes.count(grpc.StatusCode.ABORTED) == 11


def test_paging_on_one_replica_while_others_create_and_delete(replicas, channel):
    tenant = new_tenant(channel)
    stubs = [pb_grpc.NotesServiceStub(ch) for ch in replicas]
    stable = [tenant.create(f"stable {i}").note.id for i in range(30)]
    doomed = [tenant.create(f"doomed {i}").note.id for i in range(10)]
    stop = threading.Event()
    created: list[str] = []

    def churn() -> None:
        counter = itertools.count()
        for note_id in doomed:
            stub = stubs[next(counter) % len(stubs)]
            stub.DeleteNote(pb.DeleteNoteRequest(id=note_id), metadata=tenant.auth)
            resp = stub.CreateNote(
                pb.CreateNoteRequest(note=pb.Note(subject=CUS_1, body="new")),
                metadata=tenant.auth,
            )
            created.append(resp.note.id)
            if stop.is_set():
                break

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        seen = page_through(stubs[-1], tenant.auth, CUS_1, page_size=3)
    finally:
        stop.set()
        writer.join()
    assert len(seen) == len(set(seen)), "no note twice"
    assert set(stable) <= set(seen), "no stable note skipped"


def test_a_change_made_through_one_replica_is_what_every_other_replica_reads(replicas, channel):
    """Replicas keep decoded notes in memory by (note, version); each read still asks the
    database for the version, so a change made elsewhere is read at once, deleted or not."""
    tenant = new_tenant(channel)
    stubs = [pb_grpc.NotesServiceStub(ch) for ch in replicas]
    note = tenant.create("first words").note

    def seen() -> list[tuple[str, int, bool]]:
        out = []
        for stub in stubs:
            got = stub.GetNote(pb.GetNoteRequest(id=note.id), metadata=tenant.auth).note
            listed = stub.ListNotes(
                pb.ListNotesRequest(subject=CUS_1, show_deleted=True), metadata=tenant.auth
            ).notes
            (same,) = [n for n in listed if n.id == note.id]
            assert same == got
            out.append((got.body, got.version, got.HasField("delete_time")))
        return out

    assert seen() == [("first words", 1, False)] * len(stubs)  # every replica has it in memory
    for i, stub in enumerate(stubs):
        version = 3 * i + 2
        stub.UpdateNote(
            pb.UpdateNoteRequest(note=pb.Note(id=note.id, body=f"words {i}")),
            metadata=tenant.auth,
        )
        assert seen() == [(f"words {i}", version, False)] * len(stubs)
        stub.DeleteNote(pb.DeleteNoteRequest(id=note.id), metadata=tenant.auth)
        assert seen() == [(f"words {i}", version + 1, True)] * len(stubs)
        stub.UndeleteNote(pb.UndeleteNoteRequest(id=note.id), metadata=tenant.auth)
        assert seen() == [(f"words {i}", version + 2, False)] * len(stubs)
