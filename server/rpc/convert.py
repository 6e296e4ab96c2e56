"""notes.v1 messages <-> domain objects. Unknown enum numbers pass through as ints so that
validation names the field instead of this module guessing."""

from __future__ import annotations

from google.protobuf import struct_pb2, timestamp_pb2
from notes.v1 import notes_pb2 as pb

from ..domain import model as m
from ..domain.model import UPDATABLE_FIELDS
from ..memo import Memo

_SUBJECT_TYPES = {
    pb.SUBJECT_TYPE_CUSTOMER: m.SubjectType.CUSTOMER,
    pb.SUBJECT_TYPE_ORDER: m.SubjectType.ORDER,
    pb.SUBJECT_TYPE_ORDER_ITEM: m.SubjectType.ORDER_ITEM,
    pb.SUBJECT_TYPE_SUPPLIER: m.SubjectType.SUPPLIER,
    pb.SUBJECT_TYPE_PRODUCT: m.SubjectType.PRODUCT,
    pb.SUBJECT_TYPE_CONTACT: m.SubjectType.CONTACT,
    pb.SUBJECT_TYPE_LOCATION: m.SubjectType.LOCATION,
}
_NOTE_TYPES = {getattr(pb, "NOTE_TYPE_" + t.value): t for t in m.NoteType}
_VISIBILITIES = {
    pb.VISIBILITY_INTERNAL: m.Visibility.INTERNAL,
    pb.VISIBILITY_CUSTOMER: m.Visibility.CUSTOMER,
}
_AUTHOR_TYPES = {
    m.AuthorType.USER: pb.AUTHOR_TYPE_USER,
    m.AuthorType.SYSTEM: pb.AUTHOR_TYPE_SYSTEM,
    m.AuthorType.API_KEY: pb.AUTHOR_TYPE_API_KEY,
}
_SURFACES_OUT = {s: getattr(pb, "SURFACE_" + s.name) for s in m.Surface}
_SUBJECT_TYPES_OUT = {v: k for k, v in _SUBJECT_TYPES.items()}
_NOTE_TYPES_OUT = {v: k for k, v in _NOTE_TYPES.items()}
_VISIBILITIES_OUT = {v: k for k, v in _VISIBILITIES.items()}


def subject_type(value: int):
    return _SUBJECT_TYPES.get(value, value)


def ref_in(ref: pb.SubjectRef) -> m.SubjectRef:
    return m.SubjectRef(subject_type(ref.type), ref.id, ref.parent_id)  # type: ignore[arg-type]


def ref_out(ref: m.SubjectRef) -> pb.SubjectRef:
    return pb.SubjectRef(type=_SUBJECT_TYPES_OUT[ref.type], id=ref.id, parent_id=ref.parent_id)


def time_out(us: int | None) -> timestamp_pb2.Timestamp | None:
    if us is None:
        return None
    seconds, micros = divmod(us, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=micros * 1000)


def time_in(ts: timestamp_pb2.Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def fields_in(note: pb.Note) -> m.NoteFields:
    note_type = (
        m.NoteType.NOTE
        if note.note_type == pb.NOTE_TYPE_UNSPECIFIED
        else _NOTE_TYPES.get(note.note_type, note.note_type)
    )
    visibility = (
        m.Visibility.INTERNAL
        if note.visibility == pb.VISIBILITY_UNSPECIFIED
        else _VISIBILITIES.get(note.visibility, note.visibility)
    )
    return m.NoteFields(
        subject=ref_in(note.subject) if note.HasField("subject") else None,
        linked_records=[ref_in(r) for r in note.linked_records],
        note_type=note_type,  # type: ignore[arg-type]
        title=note.title,
        body=note.body,
        visibility=visibility,  # type: ignore[arg-type]
        tags=list(note.tags),
        metadata=_struct_in(note.metadata) if note.HasField("metadata") else {},
        source=note.source,
        source_type=note.source_type,
        happened_at=time_in(note.happened_at) if note.HasField("happened_at") else None,
    )


def _struct_in(struct: struct_pb2.Struct) -> dict:
    return {k: _value_in(v) for k, v in struct.fields.items()}


def _value_in(value: struct_pb2.Value):
    """Struct values as JSON. Numbers are doubles; whole ones become ints so 5000 stays 5000.
    Non-finite numbers pass through for validation to refuse (json_format would raise)."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return _struct_in(value.struct_value)
    if kind == "list_value":
        return [_value_in(v) for v in value.list_value.values]
    if kind == "number_value":
        n = value.number_value
        return int(n) if n.is_integer() and abs(n) < 2**53 else n
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None


def _integral_json(value):
    """A JSON value as _value_in gives it: whole doubles as ints."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_json(v) for v in value]
    return value


def update_mask(note: pb.Note, paths: list[str]) -> tuple[str, ...]:
    """AIP-134: an empty mask means the fields that are set; "*" means all of them."""
    if paths == ["*"]:
        return UPDATABLE_FIELDS
    if paths:
        return tuple(paths)
    present = {f.name for f, _ in note.ListFields()}
    return tuple(name for name in UPDATABLE_FIELDS if name in present)


def author_out(a: m.Author) -> pb.Author:
    return pb.Author(type=_AUTHOR_TYPES[a.type], id=a.id, display_name=a.display_name)


def note_out(n: m.Note) -> pb.Note:
    assert n.subject is not None and n.author is not None
    out = pb.Note(
        id=n.id,
        number=n.number,
        subject=ref_out(n.subject),
        linked_records=[ref_out(r) for r in n.linked_records],
        note_type=_NOTE_TYPES_OUT[n.note_type],
        title=n.title,
        body=n.body,
        visibility=_VISIBILITIES_OUT[n.visibility],
        tags=n.tags,
        source=n.source,
        source_type=n.source_type,
        author=author_out(n.author),
        created_via=_SURFACES_OUT[n.created_via],
        requested_via=pb.RequestedVia(api_key_id=n.api_key_id, purpose=n.purpose)
        if n.api_key_id
        else None,
        happened_at=time_out(n.happened_at),
        create_time=time_out(n.create_time),
        update_time=time_out(n.update_time),
        delete_time=time_out(n.delete_time),
        version=n.version,
        organization=n.org,
    )
    if n.metadata:
        metadata = struct_pb2.Struct()
        metadata.update(n.metadata)
        out.metadata.CopyFrom(metadata)
    return out


# Stored notes render the same for as long as their version stands (see server/memo.py):
# rendering them was a visible part of every list (docs/benchmarks.md has the figure).
RENDERED: Memo[pb.Note] = Memo()


def stored_note_out(n: m.Note) -> pb.Note:
    """note_out for a note as read from the store; replies to writes render theirs afresh."""
    key = (n.org, n.number, n.version)
    out = RENDERED.get(key)
    return out if out is not None else RENDERED.put(key, note_out(n))


# A list's reply, serialized, is its notes' one-note replies serialized one after the other,
# then its other fields: protobuf parses concatenated messages as one, repeated fields
# appended in order. Copying each note into a ListNotesResponse and serializing it again was
# most of what a list cost beyond its query (docs/benchmarks.md, "GetNote and ListNotes
# against the floor").
LISTED: Memo[bytes] = Memo()


def list_out(notes: list[m.Note], next_page_token: str, total_size: int) -> bytes:
    """The serialized ListNotesResponse of notes as read from the store."""
    parts = []
    for n in notes:
        key = (n.org, n.number, n.version)
        part = LISTED.get(key)
        if part is None:
            one = pb.ListNotesResponse(notes=[stored_note_out(n)]).SerializeToString()
            part = LISTED.put(key, one)
        parts.append(part)
    rest = pb.ListNotesResponse(next_page_token=next_page_token, total_size=total_size)
    parts.append(rest.SerializeToString())
    return b"".join(parts)


def status_out(replayed: bool) -> int:
    return pb.IDEMPOTENCY_STATUS_REPLAYED if replayed else pb.IDEMPOTENCY_STATUS_CREATED


def list_query_in(req: pb.ListNotesRequest) -> m.ListQuery:
    return m.ListQuery(
        subject=ref_in(req.subject) if req.HasField("subject") else None,
        include_children=req.include_children,
        linked_record=ref_in(req.linked_record) if req.HasField("linked_record") else None,
        author_ids=list(req.author_ids),
        visibility=None
        if req.visibility == pb.VISIBILITY_UNSPECIFIED
        else _VISIBILITIES.get(req.visibility, req.visibility),  # type: ignore[arg-type]
        note_types=[_NOTE_TYPES.get(t, t) for t in req.note_types],  # type: ignore[misc]
        tags=list(req.tags),
        query=req.query,
        contains=req.contains,
        show_deleted=req.show_deleted,
        page_size=req.page_size,
        page_token=req.page_token,
        offset=req.offset,
        include_total_size=req.include_total_size,
    )


def event_out(e: m.NoteEvent) -> pb.NoteEvent:
    return pb.NoteEvent(
        action=e.action,
        actor=author_out(e.actor),
        surface=_SURFACES_OUT[e.surface],
        request_id=e.request_id,
        old_version=e.old_version,
        new_version=e.new_version,
        event_time=time_out(e.event_time),
        requested_via=pb.RequestedVia(api_key_id=e.api_key_id, purpose=e.purpose)
        if e.api_key_id
        else None,
    )


def subject_in(s: pb.Subject) -> m.Subject:
    return m.Subject(
        type=subject_type(s.type),  # type: ignore[arg-type]
        id=s.id,
        parent_id=s.parent_id,
        display_name=s.display_name,
    )


def subject_out(s: m.Subject) -> pb.Subject:
    return pb.Subject(
        type=_SUBJECT_TYPES_OUT[s.type],
        id=s.id,
        parent_id=s.parent_id,
        display_name=s.display_name,
        create_time=time_out(s.create_time),
        update_time=time_out(s.update_time),
        archive_time=time_out(s.archive_time),
    )


def surface_out(s: m.Surface) -> int:
    return _SURFACES_OUT[s]
