"""NewStore Order Notes API 0.1.0 (seed 003): GET|POST /orders/{order_uuid}/notes,
POST /orders/{order_uuid}/items/{item_uuid}/notes,
PUT|DELETE /orders/{order_uuid}/notes/{note_uuid}.

Note UUIDs are the 128 bits of the service's ULID ids, which are UUIDv7 for notes made since
(service/notes.py new_note_id); order and item ids pass through as the subject ids they are
registered under.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import field_mask_pb2
from notes.v1 import notes_pb2 as pb
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..domain.ids import note_id_of_uuid, note_uuid
from . import bodies, errors, timefmt
from .calls import Call
from .dialect import Dialect
from .errors import Code, Failure

TEXT_MAX = 4000
SOURCE_MAX = 256
UPDATED_FIELDS = ["body", "source", "source_type", "tags"]
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

INVALID_NOTE_ID = "INVALID_NOTE_ID"


def note_id(value: str) -> str:
    if not _UUID.match(value):
        raise Failure(Code.INVALID_ARGUMENT, INVALID_NOTE_ID, local=True)
    return note_id_of_uuid(value)


def render_note(note: pb.Note) -> dict[str, Any]:
    is_item = note.subject.type == pb.SUBJECT_TYPE_ORDER_ITEM
    data: dict[str, Any] = {
        "id": note_uuid(note.id),
        "order_id": note.subject.parent_id if is_item else note.subject.id,
    }
    if is_item:
        data["item_id"] = note.subject.id
    data.update(
        text=note.body,
        source=note.source or _author_name(note),
        tags=list(note.tags),
        created_at=timefmt.go_time(note.create_time),
        updated_at=timefmt.go_time(note.update_time),
    )
    return data


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


async def list_notes(request: Request, call: Call) -> Response:
    order_id = request.path_params["order_uuid"]
    await call.require_subject(pb.SUBJECT_TYPE_ORDER, order_id)
    subject = pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id=order_id)
    notes = await call.list_all(pb.ListNotesRequest(subject=subject, include_children=True))
    return JSONResponse({"notes": [render_note(n) for n in notes]})


async def _create(call: Call, note: pb.Note) -> Response:
    try:
        out = await call.invoke(call.notes.CreateNote, pb.CreateNoteRequest(note=note))
    except Failure as f:
        raise errors.subject_ids_as_not_found(f, note.subject) from None
    return JSONResponse(render_note(out.note))


async def create_order_note(request: Request, call: Call) -> Response:
    note = parse_note(await bodies.read_object(request))
    note.subject.CopyFrom(
        pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id=request.path_params["order_uuid"])
    )
    return await _create(call, note)


async def create_item_note(request: Request, call: Call) -> Response:
    note = parse_note(await bodies.read_object(request))
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
    changes = parse_note(await bodies.read_object(request))
    found = await _order_note(call, request.path_params["order_uuid"], found_id)
    changes.id = found.id
    request_message = pb.UpdateNoteRequest(
        note=changes, update_mask=field_mask_pb2.FieldMask(paths=UPDATED_FIELDS)
    )
    out = await call.invoke(call.notes.UpdateNote, request_message)
    return JSONResponse(render_note(out.note))


async def delete_note(request: Request, call: Call) -> Response:
    found_id = note_id(request.path_params["note_uuid"])
    found = await _order_note(call, request.path_params["order_uuid"], found_id)
    await call.invoke(call.notes.DeleteNote, pb.DeleteNoteRequest(id=found.id))
    return Response(status_code=204)


# --- errors ------------------------------------------------------------------------------------

# reason -> (HTTP status, message)
ERRORS: dict[str, tuple[int, str]] = {
    "CREDENTIALS_MISSING": (401, "Unauthorized: no credentials were sent."),
    "NOTE_NOT_FOUND": (404, "Note not found."),
    "NOTE_DELETED": (404, "Note not found."),
    "SUBJECT_PARENT_MISMATCH": (404, "Item not found."),
    INVALID_NOTE_ID: (400, "Invalid note ID in request url."),
    "SUBJECT_ARCHIVED": (400, "The order is archived."),
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
    elif f.reason == "SUBJECT_NOT_FOUND":
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
    return JSONResponse({"message": message}, status)


DIALECT = Dialect("newstore", "/orders/", render_error)

routes = [
    Route("/orders/{order_uuid}/notes", DIALECT.endpoint(list_notes), methods=["GET"]),
    Route("/orders/{order_uuid}/notes", DIALECT.endpoint(create_order_note), methods=["POST"]),
    Route(
        "/orders/{order_uuid}/items/{item_uuid}/notes",
        DIALECT.endpoint(create_item_note),
        methods=["POST"],
    ),
    Route("/orders/{order_uuid}/notes/{note_uuid}", DIALECT.endpoint(update_note), methods=["PUT"]),
    Route(
        "/orders/{order_uuid}/notes/{note_uuid}",
        DIALECT.endpoint(delete_note),
        methods=["DELETE"],
    ),
]
