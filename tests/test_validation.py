"""Every input limit: INVALID_ARGUMENT naming every bad field, and nothing stored."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2
from notes.v1 import notes_pb2 as pb

from server.rpc.convert import subject_type

from .conftest import bad_fields, error_info

CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")
CONTACT = pb.SubjectRef(type=pb.SUBJECT_TYPE_CONTACT, id="con_1")


def struct(value: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


def invalid(tenant, request: pb.CreateNoteRequest) -> set[str]:
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.CreateNote(request, metadata=tenant.auth)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(e.value).reason == "INVALID_ARGUMENT"
    return bad_fields(e.value)


def note(**fields) -> pb.Note:
    fields.setdefault("subject", CUS_1)
    fields.setdefault("body", "ok")
    return pb.Note(**fields)


ACCEPTED = {
    "body at 65,536": note(body="b" * 65_536),
    "title at 512": note(title="t" * 512),
    "256 tags of 128": note(tags=[f"{i:03d}" + "t" * 125 for i in range(256)]),
    "50 distinct links": note(
        linked_records=[pb.SubjectRef(type=pb.SUBJECT_TYPE_CONTACT, id=f"c{i}") for i in range(50)]
    ),
    "metadata at depth 32": note(metadata=struct(nested(32))),
    "metadata of about 64 KiB": note(metadata=struct({"k": "v" * 65_000})),
    "id at 128": note(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="c" * 128)),
}

REFUSED = {
    "empty body": (note(body=""), {"note.body"}),
    "body over 65,536": (note(body="b" * 65_537), {"note.body"}),
    "title over 512": (note(title="t" * 513), {"note.title"}),
    "257 tags": (note(tags=[str(i) for i in range(257)]), {"note.tags"}),
    "empty tag": (note(tags=["ok", ""]), {"note.tags[1]"}),
    "tag over 128": (note(tags=["t" * 129]), {"note.tags[0]"}),
    "51 links": (note(linked_records=[CONTACT] * 51), {"note.linked_records"}),
    "metadata deeper than 32": (note(metadata=struct(nested(33))), {"note.metadata"}),
    "metadata over 64 KiB": (note(metadata=struct({"k": "v" * 66_000})), {"note.metadata"}),
    "no subject": (pb.Note(body="x"), {"note.subject"}),
    "subject without type": (note(subject=pb.SubjectRef(id="cus_1")), {"note.subject.type"}),
    "subject id over 128": (
        note(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="c" * 129)),
        {"note.subject.id"},
    ),
    "subject id with a control character": (
        note(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="a\nb")),
        {"note.subject.id"},
    ),
    "unknown note type": (note(note_type=99), {"note.note_type"}),
    "unknown visibility": (note(visibility=7), {"note.visibility"}),
    "unknown link type": (
        note(linked_records=[pb.SubjectRef(type=42, id="x")]),
        {"note.linked_records[0].type"},
    ),
    "NUL in body": (note(body="a\x00b"), {"note.body"}),
    "several at once": (
        note(body="", title="t" * 513, tags=[""]),
        {"note.body", "note.title", "note.tags[0]"},
    ),
}


@pytest.mark.parametrize("case", ACCEPTED)
def test_values_at_each_limit_are_accepted(tenant, case):
    request = ACCEPTED[case]
    for ref in (request.subject, *request.linked_records):
        tenant.register(subject_type(ref.type), ref.id)
    created = tenant.notes.CreateNote(pb.CreateNoteRequest(note=request), metadata=tenant.auth)
    assert created.note.body == request.body
    assert len(created.note.linked_records) == len(request.linked_records)
    assert created.note.subject.id == request.subject.id


@pytest.mark.parametrize("case", REFUSED)
def test_values_past_each_limit_are_refused_and_nothing_is_stored(tenant, case):
    request, fields = REFUSED[case]
    assert invalid(tenant, pb.CreateNoteRequest(note=request)) == fields
    listed = tenant.notes.ListNotes(pb.ListNotesRequest(subject=CUS_1), metadata=tenant.auth)
    assert not listed.notes


def test_request_ids_are_at_most_36_ascii_characters(tenant):
    tenant.create(request_id="r" * 36)
    assert invalid(tenant, pb.CreateNoteRequest(note=note(), request_id="r" * 37)) == {"request_id"}
    assert invalid(tenant, pb.CreateNoteRequest(note=note(), request_id="rëq")) == {"request_id"}


def test_list_arguments_are_checked(tenant):
    def refused(**kwargs) -> set[str]:
        with pytest.raises(grpc.RpcError) as e:
            tenant.notes.ListNotes(pb.ListNotesRequest(**kwargs), metadata=tenant.auth)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return bad_fields(e.value)

    assert refused(page_size=-1) == {"page_size"}
    assert refused(offset=-1) == {"offset"}
    assert refused(page_token="garbage") == {"page_token"}
    assert refused(note_types=[99]) == {"note_types[0]"}
    assert refused(subject=CUS_1, include_children=True) == {"include_children"}
    big = tenant.notes.ListNotes(pb.ListNotesRequest(page_size=10**9), metadata=tenant.auth)
    assert big.next_page_token == ""


def test_metadata_numbers_must_be_finite(tenant):
    for bad in (float("inf"), float("-inf"), float("nan")):
        assert invalid(tenant, pb.CreateNoteRequest(note=note(metadata=struct({"x": bad})))) == {
            "note.metadata"
        }
    ok = tenant.notes.CreateNote(
        pb.CreateNoteRequest(note=note(metadata=struct({"n": 5000, "f": 1.5, "l": [1, None]}))),
        metadata=tenant.auth,
    ).note
    assert dict(ok.metadata) == {"n": 5000, "f": 1.5, "l": ok.metadata["l"]}
    assert list(ok.metadata["l"]) == [1, None]


def test_update_note_checks_the_same_limits_on_the_fields_it_changes(tenant):
    created = tenant.create("keep me").note

    def refused(note: pb.Note, paths: list[str], **kwargs) -> set[str]:
        with pytest.raises(grpc.RpcError) as e:
            tenant.notes.UpdateNote(
                pb.UpdateNoteRequest(
                    note=note, update_mask=field_mask_pb2.FieldMask(paths=paths), **kwargs
                ),
                metadata=tenant.auth,
            )
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return bad_fields(e.value)

    assert refused(pb.Note(id=created.id, body=""), ["body"]) == {"note.body"}
    assert refused(pb.Note(id=created.id, tags=["t" * 129]), ["tags"]) == {"note.tags[0]"}
    assert refused(pb.Note(id=created.id, title="t" * 513), ["title"], request_id="r" * 37) == {
        "note.title",
        "request_id",
    }
    assert refused(pb.Note(id="", body="x"), ["body"]) == {"note.id"}
    got = tenant.notes.GetNote(pb.GetNoteRequest(id=created.id), metadata=tenant.auth).note
    assert got.body == "keep me" and got.version == 1
