"""Hostile input over every RPC: only documented codes come back, never INTERNAL, and never
another organization's data."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from notes.v1 import notes_pb2 as pb

CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")
DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.ABORTED,
}
NASTY = [
    "\x00",
    "\u202e",  # right-to-left override
    "\u200f",
    "' OR 1=1 --",
    '"; DROP TABLE notes; --',
    "NEAR(a b)",
    "a* OR b*",
    '"',
    "%_\\",
    "title:x",
    "\ufeff",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
]
hostile_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=64),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.builds(lambda s, n: s * n, st.sampled_from(NASTY), st.integers(1, 40)),
)
json_leaf = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), hostile_text)
json_tree = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(hostile_text, children, max_size=4)
    ),
    max_leaves=30,
)
HYPOTHESIS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def outcome(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def struct(value) -> struct_pb2.Struct | None:
    if not isinstance(value, dict):
        return None
    s = struct_pb2.Struct()
    try:
        s.update(value)
    except (ValueError, TypeError):
        return None
    return s


@HYPOTHESIS
@given(
    body=hostile_text,
    title=hostile_text,
    tags=st.lists(hostile_text, max_size=5),
    subject_id=hostile_text,
    metadata=json_tree,
    request_id=hostile_text,
)
def test_create_with_hostile_fields(tenant, body, title, tags, subject_id, metadata, request_id):
    note = pb.Note(
        subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id=subject_id),
        body=body,
        title=title,
        tags=tags,
        source=body[:300],
    )
    if (s := struct(metadata)) is not None:
        note.metadata.CopyFrom(s)
    code = outcome(
        lambda: tenant.notes.CreateNote(
            pb.CreateNoteRequest(note=note, request_id=request_id), metadata=tenant.auth
        )
    )
    assert code in DOCUMENTED


@HYPOTHESIS
@given(
    query=hostile_text,
    tags=st.lists(hostile_text, max_size=3),
    author_ids=st.lists(hostile_text, max_size=3),
    page_size=st.integers(-(2**31), 2**31 - 1),
    offset=st.integers(-(2**31), 2**31 - 1),
    page_token=st.one_of(hostile_text, st.binary(max_size=80).map(lambda b: b.hex())),
)
def test_list_with_hostile_arguments(
    tenant, query, tags, author_ids, page_size, offset, page_token
):
    request = pb.ListNotesRequest(
        subject=CUS_1,
        query=query,
        tags=tags,
        author_ids=author_ids,
        page_size=page_size,
        offset=offset,
        page_token=page_token,
    )
    code = outcome(lambda: tenant.notes.ListNotes(request, metadata=tenant.auth))
    assert code in DOCUMENTED


@HYPOTHESIS
@given(note_id=hostile_text, version=st.integers(-(2**63), 2**63 - 1), body=hostile_text)
def test_note_methods_with_hostile_ids(tenant, note_id, version, body):
    calls = [
        lambda: tenant.notes.GetNote(pb.GetNoteRequest(id=note_id), metadata=tenant.auth),
        lambda: tenant.notes.UpdateNote(
            pb.UpdateNoteRequest(note=pb.Note(id=note_id, body=body), expected_version=version),
            metadata=tenant.auth,
        ),
        lambda: tenant.notes.DeleteNote(
            pb.DeleteNoteRequest(id=note_id, expected_version=version), metadata=tenant.auth
        ),
        lambda: tenant.notes.UndeleteNote(pb.UndeleteNoteRequest(id=note_id), metadata=tenant.auth),
        lambda: tenant.notes.GetNoteHistory(
            pb.GetNoteHistoryRequest(id=note_id), metadata=tenant.auth
        ),
        lambda: tenant.subjects.GetSubject(
            pb.GetSubjectRequest(type=pb.SUBJECT_TYPE_ORDER, id=note_id), metadata=tenant.auth
        ),
    ]
    for call in calls:
        assert outcome(call) in DOCUMENTED


@HYPOTHESIS
@given(
    subject_id=hostile_text,
    parent_id=hostile_text,
    display_name=hostile_text,
    request_id=hostile_text,
    subject_type=st.integers(-(2**31), 2**31 - 1),
    scopes=st.lists(hostile_text, max_size=3),
)
def test_registry_and_access_calls_with_hostile_fields(
    tenant, subject_id, parent_id, display_name, request_id, subject_type, scopes
):
    registrar = (("authorization", f"Bearer {tenant.key(['subjects:write'])}"),)
    subject = pb.Subject(
        type=subject_type, id=subject_id, parent_id=parent_id, display_name=display_name
    )
    calls = [
        lambda: tenant.subjects.UpsertSubject(
            pb.UpsertSubjectRequest(subject=subject, request_id=request_id), metadata=registrar
        ),
        lambda: tenant.subjects.ArchiveSubject(
            pb.ArchiveSubjectRequest(type=subject_type, id=subject_id, request_id=request_id),
            metadata=registrar,
        ),
        lambda: tenant.subjects.GetSubject(
            pb.GetSubjectRequest(type=subject_type, id=subject_id), metadata=tenant.auth
        ),
        lambda: tenant.access.CheckAccess(
            pb.CheckAccessRequest(scopes=scopes), metadata=tenant.auth
        ),
    ]
    for call in calls:
        assert outcome(call) in DOCUMENTED | {grpc.StatusCode.PERMISSION_DENIED}


def test_another_organizations_ids_and_tokens_read_nothing(tenant, other_tenant):
    own = {other_tenant.create(f"own {i}").note.body for i in range(3)}  # older numbers
    secret = tenant.create("theirs").note
    for i in range(3):
        tenant.create(f"more {i}")
    token = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, page_size=1), metadata=tenant.auth
    ).next_page_token
    assert (
        outcome(
            lambda: other_tenant.notes.GetNote(
                pb.GetNoteRequest(id=secret.id), metadata=other_tenant.auth
            )
        )
        == grpc.StatusCode.NOT_FOUND
    )
    page = other_tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, page_size=10, page_token=token),
        metadata=other_tenant.auth,
    )
    # A token is a position in a filter; the list it continues is still the caller's own.
    assert {n.body for n in page.notes} == own


def test_a_huge_body_and_deep_metadata_are_refused_cleanly(tenant):
    deep: dict = {}
    cursor = deep
    for _ in range(30):  # 60 protobuf levels: deep, yet within what protobuf itself parses
        cursor["x"] = {}
        cursor = cursor["x"]
    note = pb.Note(subject=CUS_1, body="b" * 1_000_000, metadata=struct(deep))
    code = outcome(
        lambda: tenant.notes.CreateNote(pb.CreateNoteRequest(note=note), metadata=tenant.auth)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_bytes_that_are_not_a_valid_message_are_invalid_argument(service, tenant, channel):
    raw = channel.unary_unary(
        "/notes.v1.NotesService/CreateNote",
        request_serializer=None,
        response_deserializer=None,
    )
    # Field 1 (note) holding field 7 (body) with invalid UTF-8 (a lone surrogate's bytes).
    body = b"\x3a\x03\xed\xa0\x80"
    for payload in [b"\x0a" + bytes([len(body)]) + body, b"\xff\xff\xff"]:
        with pytest.raises(grpc.RpcError) as e:
            raw(payload, metadata=tenant.auth)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
