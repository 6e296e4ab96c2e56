"""NewStore Order Notes API 0.1.0 (seed 003): GET|POST /orders/{order_uuid}/notes,
POST /orders/{order_uuid}/items/{item_uuid}/notes,
PUT|DELETE /orders/{order_uuid}/notes/{note_uuid}.

Note UUIDs are the 128 bits of the service's ULID ids, which are UUIDv7 for notes made since
(service/notes.py new_note_id); order and item ids pass through as the subject ids they are
registered under.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from google.protobuf import field_mask_pb2
from msgspec import UNSET, Meta, Struct, UnsetType
from notes.v1 import notes_pb2 as pb
from starlette.requests import Request
from starlette.responses import Response

from ..domain import errors as domain
from ..domain.ids import NOTE_UUID_PATTERN, note_id_of_uuid, note_uuid
from ..domain.validation import SOURCE_MAX, TAG_MAX, TAGS_MAX
from . import bodies, errors, timefmt
from .calls import Call
from .dialect import (
    Dialect,
    ModelResponse,
    Operation,
    Param,
    Rendered,
    Reply,
    decoder,
    limit,
    routes,
)
from .errors import Code, Failure
from .subjects import SubjectId

UPDATED_FIELDS = ["body", "source", "source_type", "tags"]
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

INVALID_NOTE_ID = "INVALID_NOTE_ID"

# --- models ------------------------------------------------------------------------------------

Source = Annotated[str, Meta(min_length=1, max_length=SOURCE_MAX)]
GoTime = Annotated[str, Meta(pattern=timefmt.GO_TIME)]


class NewStoreNoteWrite(Struct):
    text: Annotated[str, Meta(min_length=1, max_length=4000)]  # the dialect's own (seed 003)
    source: Source
    tags: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=TAG_MAX)]],
        Meta(
            max_length=TAGS_MAX,
            description=f"At most {TAGS_MAX} tags of 1..{TAG_MAX} characters (the service's "
            "limits; the seed gives none).",
        ),
    ]
    source_type: Source | None = None


class _StrictNoteWrite(NewStoreNoteWrite, forbid_unknown_fields=True):
    """The fast path's decoder: a body with other fields (which NewStore ignores) goes through
    parse_note, whose JSON checks also cover them."""


TEXT_MAX = limit(NewStoreNoteWrite, "text")


class NewStoreNote(Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    id: Annotated[str, Meta(pattern=NOTE_UUID_PATTERN)]
    order_id: str
    item_id: str | UnsetType = UNSET  # a note on an order item
    text: str
    source: str
    tags: list[str]
    created_at: GoTime
    updated_at: GoTime


class NewStoreNoteList(Struct, forbid_unknown_fields=True):
    notes: list[NewStoreNote]


class NewStoreError(Struct, forbid_unknown_fields=True):
    message: str


_decode_write = decoder(_StrictNoteWrite)


def note_id(value: str) -> str:
    if not _UUID.match(value):
        raise Failure(Code.INVALID_ARGUMENT, INVALID_NOTE_ID, local=True)
    return note_id_of_uuid(value)


def render_note(note: pb.Note) -> NewStoreNote:
    is_item = note.subject.type == pb.SUBJECT_TYPE_ORDER_ITEM
    return NewStoreNote(
        id=note_uuid(note.id),
        order_id=note.subject.parent_id if is_item else note.subject.id,
        item_id=note.subject.id if is_item else UNSET,
        text=note.body,
        source=note.source or _author_name(note),
        tags=list(note.tags),
        created_at=timefmt.go_time(note.create_time),
        updated_at=timefmt.go_time(note.update_time),
    )


_rendered = Rendered(render_note)


def _author_name(note: pb.Note) -> str:
    """The source of a note written through another surface, which has none: the seed wants
    1..256 characters."""
    if note.author.type == pb.AUTHOR_TYPE_SYSTEM:
        return "system"
    return (note.author.display_name or note.author.id or "system")[:SOURCE_MAX]


def _string(body: dict[str, Any], name: str, hi: int, problems: list, *, required: bool) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        problems.append((name, "must be a string" if name in body else "is required"))
    elif not 1 <= len(value) <= hi:
        problems.append((name, f"must be between 1 and {hi} characters"))
    else:
        return value
    return ""


def parse_note(body: dict[str, Any]) -> pb.Note:
    problems: list[tuple[str, str]] = []
    text = _string(body, "text", TEXT_MAX, problems, required=True)
    source = _string(body, "source", SOURCE_MAX, problems, required=True)
    source_type = _string(body, "source_type", SOURCE_MAX, problems, required=False)
    tags = body.get("tags")
    if not isinstance(tags, list):
        problems.append(
            ("tags", "must be an array of strings" if "tags" in body else "is required")
        )
        tags = []
    # Tag lengths (1..128) are the service's rule too; it answers them as field violations.
    for i, tag in enumerate(tags):
        if not isinstance(tag, str):
            problems.append((f"tags[{i}]", "must be a string"))
    if problems:
        raise errors.invalid(*problems)
    return pb.Note(body=text, source=source, source_type=source_type, tags=tags)


async def read_note(request: Request) -> pb.Note:
    raw = await bodies.read_body(request)
    try:
        w = _decode_write(raw)
    except msgspec.MsgspecError:  # refused by the model: the dialect's own words say why
        return parse_note(await bodies.read_object(request))
    return pb.Note(body=w.text, source=w.source, source_type=w.source_type or "", tags=w.tags)


async def list_notes(request: Request, call: Call) -> Response:
    order_id = request.path_params["order_uuid"]
    subject = pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id=order_id)
    notes = await call.list_all(pb.ListNotesRequest(subject=subject, include_children=True))
    return ModelResponse(NewStoreNoteList([_rendered(n) for n in notes]))


async def _create(call: Call, note: pb.Note) -> Response:
    try:
        out = await call.invoke(call.notes.CreateNote, pb.CreateNoteRequest(note=note))
    except Failure as f:
        raise errors.subject_ids_as_not_found(f, note.subject) from None
    return ModelResponse(render_note(out.note))


async def create_order_note(request: Request, call: Call) -> Response:
    note = await read_note(request)
    note.subject.CopyFrom(
        pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id=request.path_params["order_uuid"])
    )
    return await _create(call, note)


async def create_item_note(request: Request, call: Call) -> Response:
    note = await read_note(request)
    note.subject.CopyFrom(
        pb.SubjectRef(
            type=pb.SUBJECT_TYPE_ORDER_ITEM,
            id=request.path_params["item_uuid"],
            parent_id=request.path_params["order_uuid"],
        )
    )
    return await _create(call, note)


async def _order_note(call: Call, order_id: str, found_id: str) -> pb.Note:
    """The live note with this id on this order or one of its items."""
    found = await call.get_note(found_id)
    subject = found.subject
    order_of_note = subject.parent_id if subject.type == pb.SUBJECT_TYPE_ORDER_ITEM else subject.id
    on_order = subject.type in (pb.SUBJECT_TYPE_ORDER, pb.SUBJECT_TYPE_ORDER_ITEM)
    if found.HasField("delete_time") or not on_order or order_of_note != order_id:
        raise errors.note_not_found(found_id)
    return found


async def update_note(request: Request, call: Call) -> Response:
    found_id = note_id(request.path_params["note_uuid"])
    changes = await read_note(request)
    found = await _order_note(call, request.path_params["order_uuid"], found_id)
    changes.id = found.id
    request_message = pb.UpdateNoteRequest(
        note=changes, update_mask=field_mask_pb2.FieldMask(paths=UPDATED_FIELDS)
    )
    out = await call.invoke(call.notes.UpdateNote, request_message)
    return ModelResponse(render_note(out.note))


async def delete_note(request: Request, call: Call) -> Response:
    found_id = note_id(request.path_params["note_uuid"])
    found = await _order_note(call, request.path_params["order_uuid"], found_id)
    await call.invoke(call.notes.DeleteNote, pb.DeleteNoteRequest(id=found.id))
    return Response(status_code=204)


# --- errors ------------------------------------------------------------------------------------

# reason -> (HTTP status, message)
ERRORS: dict[str, tuple[int, str]] = {
    domain.CREDENTIALS_MISSING: (401, "Unauthorized: no credentials were sent."),
    domain.NoteNotFound.reason: (404, "Note not found."),
    domain.NoteDeleted.reason: (404, "Note not found."),
    domain.SubjectParentMismatch.reason: (404, "Item not found."),
    INVALID_NOTE_ID: (400, "Invalid note ID in request url."),
    domain.SubjectArchived.reason: (400, "The order is archived."),
    errors.BODY_TOO_LARGE: (413, "Request body too large."),
    errors.HEADERS_TOO_LARGE: (431, "Request headers too large."),
    errors.ROUTE_NOT_FOUND: (404, "Not found."),
    errors.METHOD_NOT_ALLOWED: (405, "Method not allowed."),
}
BY_CODE: dict[Code, str] = {
    Code.UNAUTHENTICATED: "Forbidden: the credentials were rejected.",
    Code.PERMISSION_DENIED: "Forbidden: the credentials lack permission.",
    Code.NOT_FOUND: "Not found.",
    Code.RESOURCE_EXHAUSTED: "Too many requests.",
    Code.UNAVAILABLE: "Service unavailable.",
    Code.DEADLINE_EXCEEDED: "The service did not answer in time.",
}
_FIELD_NAMES = {"body": "text"}


def render_error(f: Failure, request: Request) -> Response:

    if f.reason in ERRORS:
        status, message = ERRORS[f.reason]
    elif f.reason == domain.SubjectNotFound.reason:
        status = 404
        message = "Item not found." if f.metadata.get("subjectType") == "order_item" else ""
        message = message or "Order not found."
    elif f.code in (Code.INVALID_ARGUMENT, Code.FAILED_PRECONDITION):
        status = 400
        message = "; ".join(f"{_FIELD_NAMES.get(n, n)} {d}" for n, d in f.violations)
        message = message or f.message or "Bad request."
    else:
        status = 403 if f.code == Code.UNAUTHENTICATED else f.status
        message = BY_CODE.get(f.code, "Internal server error.")
    return ModelResponse(NewStoreError(message), status)


_ORDER = Param("order_uuid", "path", SubjectId, required=True, subject="order")
_ITEM = Param(
    "item_uuid", "path", SubjectId, required=True, subject="order_item", parent="order_uuid"
)
_NOTE = Param(
    "note_uuid", "path", Annotated[str, Meta(extra_json_schema={"format": "uuid"})], required=True
)
_WRITE = (400, 401, 403, 404, 413)

DIALECT = Dialect(
    "newstore",
    "/orders/",
    render_error,
    tag="NewStore",
    error_model=NewStoreError,
    security=({"bearer": []},),
    schemes={"bearer": {"type": "http", "scheme": "bearer"}},
    operations=(
        Operation(
            "GET",
            "/orders/{order_uuid}/notes",
            "getOrderNotes",
            list_notes,
            replies=(
                Reply(200, NewStoreNoteList, "The order's and its items' notes, newest first"),
            ),
            errors=(400, 401, 403, 404),
            params=(_ORDER,),
        ),
        Operation(
            "POST",
            "/orders/{order_uuid}/notes",
            "createOrderNoteNewStore",
            create_order_note,
            replies=(Reply(200, NewStoreNote, "The new note"),),
            errors=_WRITE,
            params=(_ORDER,),
            body=NewStoreNoteWrite,
        ),
        Operation(
            "POST",
            "/orders/{order_uuid}/items/{item_uuid}/notes",
            "createItemNote",
            create_item_note,
            replies=(Reply(200, NewStoreNote, "The new note"),),
            errors=_WRITE,
            params=(_ORDER, _ITEM),
            body=NewStoreNoteWrite,
        ),
        Operation(
            "PUT",
            "/orders/{order_uuid}/notes/{note_uuid}",
            "updateNote",
            update_note,
            replies=(Reply(200, NewStoreNote, "The updated note"),),
            errors=_WRITE,
            params=(_ORDER, _NOTE),
            body=NewStoreNoteWrite,
        ),
        Operation(
            "DELETE",
            "/orders/{order_uuid}/notes/{note_uuid}",
            "deleteNote",
            delete_note,
            replies=(Reply(204, None, "Deleted"),),
            errors=(400, 401, 403, 404),
            params=(_ORDER, _NOTE),
        ),
    ),
)
routes = routes(DIALECT)
