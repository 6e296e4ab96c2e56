"""SIGKILL under load loses nothing acknowledged and leaves nothing half-written."""

from __future__ import annotations

import json
import signal
import threading
from collections import Counter, defaultdict

import grpc
import pytest
from notes.v1 import notes_pb2 as pb
from notes.v1 import notes_pb2_grpc as pb_grpc

from server.store import uow
from server.store.models import NoteEventRow, NoteLinkRow, NoteRow, NoteTagRow, RequestRow

from .conftest import new_tenant, start_service, stop_service

CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")
LINKS = [
    pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id="723"),
    pb.SubjectRef(type=pb.SUBJECT_TYPE_PRODUCT, id="prod_1"),
]
TAGS = ["a", "b"]
pytestmark = pytest.mark.slow
FIGURES: dict[str, dict[str, int]] = {}


def test_sigkill_mid_load_keeps_every_acknowledged_create(service, channel, tmp_path):
    tenant = new_tenant(channel)  # registered through the session's store
    victim = start_service(service.database_url, tmp_path, "--no-http")
    acknowledged: dict[str, pb.Note] = {}
    sent = 0
    lock = threading.Lock()
    enough = threading.Event()

    def load(worker: int) -> None:
        nonlocal sent
        with grpc.insecure_channel(victim.grpc_target) as ch:
            stub = pb_grpc.NotesServiceStub(ch)
            for i in range(400):
                request_id = f"crash-{worker}-{i}"
                request = pb.CreateNoteRequest(
                    note=pb.Note(
                        subject=CUS_1, body=f"load {worker} {i}", tags=TAGS, linked_records=LINKS
                    ),
                    request_id=request_id,
                )
                with lock:
                    sent += 1
                try:
                    resp = stub.CreateNote(request, metadata=tenant.auth, timeout=10)
                except grpc.RpcError:
                    return  # the server died under us
                with lock:
                    acknowledged[request_id] = resp.note
                    if len(acknowledged) >= 60:
                        enough.set()

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    assert enough.wait(60), "the load never got going"
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()
    for t in threads:
        t.join()

    revived = start_service(service.database_url, tmp_path, "--no-http")
    try:
        with grpc.insecure_channel(revived.grpc_target) as ch:
            stub = pb_grpc.NotesServiceStub(ch)
            for request_id, note in acknowledged.items():
                got = stub.GetNote(pb.GetNoteRequest(id=note.id), metadata=tenant.auth).note
                assert got == note
                replay = stub.CreateNote(
                    pb.CreateNoteRequest(
                        note=pb.Note(
                            subject=CUS_1, body=note.body, tags=TAGS, linked_records=LINKS
                        ),
                        request_id=request_id,
                    ),
                    metadata=tenant.auth,
                )
                assert replay.idempotency_status == pb.IDEMPOTENCY_STATUS_REPLAYED
                assert replay.note == note
    finally:
        stop_service(revived)

    with uow.reading():
        notes = list(NoteRow.select().where(NoteRow.org == tenant.org))
        requests = RequestRow.select().where(RequestRow.org == tenant.org).count()
        links = defaultdict(set)
        for row in NoteLinkRow.select().where(NoteLinkRow.org == tenant.org):
            links[row.note_number].add((row.type, row.record_id))
        tags = defaultdict(set)
        for row in NoteTagRow.select().where(NoteTagRow.org == tenant.org):
            tags[row.note_number].add(row.tag)
        events = Counter(
            (row.note_id, row.action)
            for row in NoteEventRow.select().where(NoteEventRow.org == tenant.org)
        )
    # Row counts per note: none without its link rows, tag rows, CREATE event and request
    # record, and no such row without its note.
    assert len(notes) == requests, "every stored note has its request record"
    assert dict(links) == {n.number: {("order", "723"), ("product", "prod_1")} for n in notes}
    assert dict(tags) == {n.number: set(TAGS) for n in notes}
    assert events == Counter((n.id, "CREATE") for n in notes), "one CREATE event per note"
    assert all(json.loads(n.tags) == TAGS for n in notes)
    assert all(json.loads(n.links) == [["order", "723"], ["product", "prod_1"]] for n in notes)
    assert len(notes) >= len(acknowledged)
    FIGURES[service.engine] = {
        "sent": sent,
        "acknowledged": len(acknowledged),
        "found_after_restart": len(notes),
    }
    print(f"crash figures {service.engine}: {FIGURES[service.engine]}")
