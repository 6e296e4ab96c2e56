"""Customer notes, the Medusa-style admin API (seed 000): GET|POST /admin/customers/{id}/notes."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from notes.v1 import notes_pb2 as pb
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import bodies, errors, timefmt
from .calls import Call
from .dialect import Dialect
from .errors import Code, Failure

BODY_MAX = 5000
LIMIT_DEFAULT = 50
LIMIT_MAX = 100
INT32_MAX = 2**31 - 1  # ListNotesRequest.offset; no list is that long, so past it is past the end
FIELDS = {"body", "is_internal", "metadata"}


def _subject(customer_id: str) -> pb.SubjectRef:
    return pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id=customer_id)


def render_note(note: pb.Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "customer_id": note.subject.id,
        "body": note.body,
        "is_internal": note.visibility != pb.VISIBILITY_CUSTOMER,
        "author_id": note.author.id,
        "metadata": _metadata(note),
        "created_at": timefmt.iso_ms(note.create_time),
        "updated_at": timefmt.iso_ms(note.update_time),
    }


def _metadata(note: pb.Note) -> dict[str, Any]:
    return _integral(json_format.MessageToDict(note.metadata)) if note.HasField("metadata") else {}


def _integral(value: Any) -> Any:
    """Struct numbers are doubles; whole ones are shown as integers, as they were sent. A Struct
    keeps no key order, so keys are sorted for a stable rendering."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def _query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.invalid((name, "must be a number")) from None
    if value < 0:
        raise errors.invalid((name, "must not be negative"))
    return value


async def list_notes(request: Request, call: Call) -> Response:
    customer_id = request.path_params["id"]
    limit = min(_query_int(request, "limit", LIMIT_DEFAULT), LIMIT_MAX)
    offset = _query_int(request, "offset", 0)
    params = request.query_params
    author_ids = params.getlist("author_id") + params.getlist("author_id[]")
    await call.require_subject(pb.SUBJECT_TYPE_CUSTOMER, customer_id)
    # Past int32 (the field's type) no page can start: an empty page with the count.
    page = await call.invoke(
        call.notes.ListNotes,
        pb.ListNotesRequest(
            subject=_subject(customer_id),
            author_ids=[a for a in author_ids if a],
            contains=params.get("q", ""),  # Medusa's q: ILIKE %q%, not the word language
            page_size=max(limit, 1),
            offset=min(offset, INT32_MAX),
            include_total_size=True,
        ),
    )
    notes = [render_note(n) for n in page.notes][:limit]
    return JSONResponse(
        {"notes": notes, "count": page.total_size, "offset": offset, "limit": limit}
    )


def _parse_create(body: dict[str, Any]) -> pb.Note:
    errors = [(name, f"{name} is not allowed") for name in body if name not in FIELDS]
    text = body.get("body")
    if not isinstance(text, str):
        errors.append(("body", "body must be a string"))
    elif not 1 <= len(text) <= BODY_MAX:
        errors.append(("body", f"body must be between 1 and {BODY_MAX} characters"))
    is_internal = body.get("is_internal")
    if is_internal is not None and not isinstance(is_internal, bool):
        errors.append(("is_internal", "is_internal must be a boolean"))
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        errors.append(("metadata", "metadata must be an object"))
    if errors:
        raise Failure(Code.INVALID_ARGUMENT, "INVALID_ARGUMENT", violations=errors, local=True)
    note = pb.Note(
        body=text,
        visibility=pb.VISIBILITY_CUSTOMER if is_internal is False else pb.VISIBILITY_INTERNAL,
    )
    if metadata:
        note.metadata.update(metadata)
    return note


async def create_note(request: Request, call: Call) -> Response:
    note = _parse_create(await bodies.read_object(request))
    note.subject.CopyFrom(_subject(request.path_params["id"]))
    try:
        created = await call.invoke(call.notes.CreateNote, pb.CreateNoteRequest(note=note))
    except Failure as f:
        raise errors.subject_ids_as_not_found(f, note.subject) from None
    return JSONResponse({"note": render_note(created.note)}, 201)


# --- errors ----------------------------------------------------------------------------------

_FIELD_NAMES = {"visibility": "is_internal"}
_UNAUTHORIZED = {"message": "Unauthorized", "type": "not_allowed"}


def render_error(f: Failure, request: Request) -> Response:
    if f.code == Code.UNAUTHENTICATED:
        return JSONResponse(_UNAUTHORIZED, 401)
    if f.reason == "SUBJECT_NOT_FOUND":
        message = f"Customer with id: {f.metadata.get('subjectId', '')} was not found"
        return JSONResponse({"message": message, "type": "not_found"}, 404)
    if f.reason in (errors.BODY_TOO_LARGE, errors.HEADERS_TOO_LARGE):
        return JSONResponse({"message": f.message, "type": "invalid_data"}, f.status)
    if f.reason == errors.MALFORMED_JSON:
        return JSONResponse({"message": f.message, "type": "invalid_data"}, 400)
    if f.code == Code.INVALID_ARGUMENT and request.method == "POST":
        problems = [
            {"field": _FIELD_NAMES.get(name, name), "message": _sentence(name, description)}
            for name, description in f.violations
        ]
        return JSONResponse({"message": "Validation failed", "errors": problems}, 422)
    table = {
        Code.INVALID_ARGUMENT: ("invalid_data", f.described()),
        Code.PERMISSION_DENIED: ("not_allowed", "Forbidden"),
        Code.NOT_FOUND: ("not_found", "Not found"),
        Code.UNIMPLEMENTED: ("not_allowed", f.message),
        Code.FAILED_PRECONDITION: ("not_allowed", f.described()),
        Code.RESOURCE_EXHAUSTED: ("unexpected_state", "Too many requests"),
        Code.UNAVAILABLE: ("unexpected_state", "Service unavailable"),
        Code.DEADLINE_EXCEEDED: ("unexpected_state", "The service did not answer in time"),
    }
    kind, message = table.get(f.code, ("unknown_error", "An unknown error occurred."))
    status = 405 if f.reason == errors.METHOD_NOT_ALLOWED else f.status
    if f.reason == errors.ROUTE_NOT_FOUND:
        message = f"Cannot {request.method} {request.url.path}"
    return JSONResponse({"message": message, "type": kind}, status)


def _sentence(name: str, description: str) -> str:
    """Service descriptions ("must be ...") read as the dialect's ("body must be ...")."""
    shown = _FIELD_NAMES.get(name, name)
    return description if description.startswith(shown) else f"{shown} {description}"


DIALECT = Dialect("customer_notes", "/admin/", render_error)

routes = [
    Route("/admin/customers/{id}/notes", DIALECT.endpoint(list_notes), methods=["GET"]),
    Route("/admin/customers/{id}/notes", DIALECT.endpoint(create_note), methods=["POST"]),
]
