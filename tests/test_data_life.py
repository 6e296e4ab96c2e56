"""ListSubjects, BatchCreateNotes and purge-deleted (issue 12)."""

from __future__ import annotations

import subprocess
import uuid

import grpc
import pytest
from notes.v1 import notes_pb2 as pb

from server.domain.model import SubjectType

from .conftest import BIN, bad_fields, error_info

CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")


def list_all(tenant, **kw) -> list[tuple[int, str]]:
    out, token = [], ""
    while True:
        resp = tenant.subjects.ListSubjects(
            pb.ListSubjectsRequest(page_token=token, **kw), metadata=tenant.auth
        )
        out.extend((s.type, s.id) for s in resp.subjects)
        token = resp.next_page_token
        if not token:
            return out


def test_list_subjects_pages_through_every_subject_in_registration_order(tenant):
    for i in range(7):
        tenant.register(SubjectType.SUPPLIER, f"sup_p{i}")
    everything = list_all(tenant, page_size=1000)
    assert len(everything) == 8 + 7
    assert everything[:2] == [
        (pb.SUBJECT_TYPE_CUSTOMER, "cus_1"),
        (pb.SUBJECT_TYPE_CUSTOMER, "cus_2"),
    ]
    assert list_all(tenant, page_size=2) == everything
    suppliers = list_all(tenant, type=pb.SUBJECT_TYPE_SUPPLIER, page_size=3)
    assert [i for _, i in suppliers] == ["sup_1"] + [f"sup_p{i}" for i in range(7)]
    items = list_all(tenant, parent_id="723")
    assert items == [(pb.SUBJECT_TYPE_ORDER_ITEM, "item_1")]


def test_list_subjects_hides_archived_ones_unless_asked(tenant):
    tenant.subjects.ArchiveSubject(
        pb.ArchiveSubjectRequest(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_2"), metadata=tenant.auth
    )
    live = list_all(tenant, type=pb.SUBJECT_TYPE_CUSTOMER)
    assert live == [(pb.SUBJECT_TYPE_CUSTOMER, "cus_1")]
    every = list_all(tenant, type=pb.SUBJECT_TYPE_CUSTOMER, show_archived=True)
    assert every == [(pb.SUBJECT_TYPE_CUSTOMER, "cus_1"), (pb.SUBJECT_TYPE_CUSTOMER, "cus_2")]


def test_list_subjects_tokens_are_bound_to_their_filter_and_org(tenant, other_tenant):
    first = tenant.subjects.ListSubjects(pb.ListSubjectsRequest(page_size=1), metadata=tenant.auth)
    assert first.next_page_token
    with pytest.raises(grpc.RpcError) as e:
        tenant.subjects.ListSubjects(
            pb.ListSubjectsRequest(
                page_size=1, page_token=first.next_page_token, type=pb.SUBJECT_TYPE_ORDER
            ),
            metadata=tenant.auth,
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(e.value) == {"page_token"}
    theirs = list_all(other_tenant)
    assert len(theirs) == 8  # another organization's subjects are not listed
    with pytest.raises(grpc.RpcError) as e:
        tenant.subjects.ListSubjects(pb.ListSubjectsRequest(page_size=-1), metadata=tenant.auth)
    assert bad_fields(e.value) == {"page_size"}


def test_list_subjects_needs_a_reading_scope(tenant):
    secret = tenant.key(["subjects:write"])
    tenant.subjects.ListSubjects(
        pb.ListSubjectsRequest(), metadata=(("authorization", f"Bearer {secret}"),)
    )
    secret = tenant.key(["notes:read"])
    with pytest.raises(grpc.RpcError) as e:
        tenant.subjects.EraseSubject(
            pb.EraseSubjectRequest(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1"),
            metadata=(("authorization", f"Bearer {secret}"),),
        )
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_cli_lists_subjects(service, tenant):
    out = service.cli("subjects", "list", "--org", tenant.org, "--type", "customer")
    assert '"cus_1"' in out.stdout and '"723"' not in out.stdout


# --- BatchCreateNotes --------------------------------------------------------------------


def _batch(tenant, bodies, request_id="", subject=CUS_1, **kw):
    return tenant.notes.BatchCreateNotes(
        pb.BatchCreateNotesRequest(
            requests=[
                pb.CreateNoteRequest(note=pb.Note(subject=subject, body=b, **kw)) for b in bodies
            ],
            request_id=request_id,
        ),
        metadata=tenant.auth,
    )


def _bodies(tenant) -> list[str]:
    resp = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, page_size=1000), metadata=tenant.auth
    )
    return [n.body for n in resp.notes]


def test_batch_create_writes_every_note_in_order(tenant):
    out = _batch(tenant, ["one", "two", "three"], tags=["t"])
    assert [n.body for n in out.notes] == ["one", "two", "three"]
    assert out.idempotency_status == pb.IDEMPOTENCY_STATUS_CREATED
    numbers = [n.number for n in out.notes]
    assert numbers == sorted(numbers) and all(n.version == 1 for n in out.notes)
    assert _bodies(tenant) == ["three", "two", "one"]
    got = tenant.notes.GetNote(pb.GetNoteRequest(id=out.notes[1].id), metadata=tenant.auth)
    assert got.note == out.notes[1]


def test_batch_create_is_all_or_nothing_and_names_the_failing_request(tenant):
    with pytest.raises(grpc.RpcError) as e:
        _batch(tenant, ["fine", "fine too", "", "also fine"])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(e.value) == {"requests[2].note.body"}
    request = pb.BatchCreateNotesRequest(
        requests=[
            pb.CreateNoteRequest(note=pb.Note(subject=CUS_1, body="ok")),
            pb.CreateNoteRequest(
                note=pb.Note(
                    subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="nobody"), body="x"
                )
            ),
        ]
    )
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.BatchCreateNotes(request, metadata=tenant.auth)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(e.value).metadata["field"] == "requests[1].note.subject"
    assert _bodies(tenant) == []  # the first note, written before the second failed, is gone
    with pytest.raises(grpc.RpcError) as e:
        _batch(tenant, ["x"] * 1001)
    assert bad_fields(e.value) == {"requests"}
    with pytest.raises(grpc.RpcError) as e:
        _batch(tenant, [])
    assert bad_fields(e.value) == {"requests"}


def test_batch_create_replays_by_request_id(tenant):
    rid = str(uuid.uuid4())
    first = _batch(tenant, ["a", "b"], request_id=rid)
    again = _batch(tenant, ["a", "b"], request_id=rid)
    assert again.idempotency_status == pb.IDEMPOTENCY_STATUS_REPLAYED
    assert [n.id for n in again.notes] == [n.id for n in first.notes]
    assert list(again.notes) == list(first.notes)
    assert _bodies(tenant) == ["b", "a"]
    with pytest.raises(grpc.RpcError) as e:
        _batch(tenant, ["a", "c"], request_id=rid)
    assert error_info(e.value).reason == "REQUEST_ID_REUSED"
    inner = pb.BatchCreateNotesRequest(
        requests=[pb.CreateNoteRequest(note=pb.Note(subject=CUS_1, body="x"), request_id="r")]
    )
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.BatchCreateNotes(inner, metadata=tenant.auth)
    assert bad_fields(e.value) == {"requests[0].request_id"}


# --- purge-deleted -----------------------------------------------------------------------


def _delete(tenant, note_id):
    tenant.notes.DeleteNote(pb.DeleteNoteRequest(id=note_id), metadata=tenant.auth)


def test_purge_deleted_erases_only_notes_deleted_long_enough_ago(service, tenant):
    keep = tenant.create("still here").note
    gone = tenant.create("deleted and purged").note
    undeleted = tenant.create("deleted then restored").note
    _delete(tenant, gone.id)
    _delete(tenant, undeleted.id)
    tenant.notes.UndeleteNote(pb.UndeleteNoteRequest(id=undeleted.id), metadata=tenant.auth)

    service.cli("purge-deleted")  # the default, 30 days: this note was deleted just now
    tenant.notes.GetNote(pb.GetNoteRequest(id=gone.id), metadata=tenant.auth)

    out = service.cli("purge-deleted", "--older-than", "0")
    assert int(out.stdout.split(":")[1].strip(" }\n")) >= 1
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.GetNote(pb.GetNoteRequest(id=gone.id), metadata=tenant.auth)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.GetNoteHistory(pb.GetNoteHistoryRequest(id=gone.id), metadata=tenant.auth)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    for note in (keep, undeleted):
        tenant.notes.GetNote(pb.GetNoteRequest(id=note.id), metadata=tenant.auth)
    listed = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, show_deleted=True), metadata=tenant.auth
    )
    assert {n.id for n in listed.notes} == {keep.id, undeleted.id}


def test_purge_deleted_from_two_replicas_at_once_erases_each_note_once(service, tenant):
    ids = [n.id for n in _batch(tenant, [f"n{i}" for i in range(40)]).notes]
    for note_id in ids:
        _delete(tenant, note_id)
    runs = [
        subprocess.Popen(
            [str(BIN / "notes"), "purge-deleted", "--older-than", "0"],
            env=service.env,
            cwd=service.env["NOTES_TEST_CWD"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [r.communicate(timeout=60) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    erased = sum(int(out.split(":")[1].strip(" }\n")) for out, _ in outputs)
    assert erased >= len(ids)
    listed = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, show_deleted=True), metadata=tenant.auth
    )
    assert list(listed.notes) == []
