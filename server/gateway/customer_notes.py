"""Customer notes, the Medusa-style admin API (seed 000): GET|POST /admin/customers/{id}/notes."""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec
from google.protobuf import json_format
from msgspec import Meta, Struct
from notes.v1 import notes_pb2 as pb
from starlette.requests import Request
from starlette.responses import Response

from ..domain import errors as domain
from ..domain.ids import NOTE_ID_PATTERN
from ..domain.validation import METADATA_MAX_BYTES, METADATA_MAX_DEPTH, QUERY_MAX
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

LIMIT_DEFAULT = 50
LIMIT_MAX = 100  # larger limits are served as this one, as Medusa's
INT32_MAX = 2**31 - 1  # ListNotesRequest.offset; no list is that long, so past it is past the end

# --- models ------------------------------------------------------------------------------------

IsoMs = Annotated[str, Meta(pattern=timefmt.ISO_MS)]


class CustomerNoteCreate(Struct, forbid_unknown_fields=True):
    body: Annotated[str, Meta(min_length=1, max_length=5000)]  # the dialect's own (seed 000)
    is_internal: Annotated[bool, Meta(extra_json_schema={"default": True})] | None = None
    metadata: (
        Annotated[
            dict[str, Any],
            Meta(
                description=f"Any JSON object of at most {METADATA_MAX_BYTES} bytes serialized, "
                f"nested at most {METADATA_MAX_DEPTH} levels (the service's limits)."
            ),
        ]
        | None
    ) = None


BODY_MAX = limit(CustomerNoteCreate, "body")


class CustomerNote(Struct, forbid_unknown_fields=True):
    id: Annotated[str, Meta(pattern=NOTE_ID_PATTERN)]
    customer_id: str
    body: str
    is_internal: bool
    author_id: str
    metadata: dict[str, Any]
    created_at: IsoMs
    updated_at: IsoMs


class CustomerNoteList(Struct, forbid_unknown_fields=True):
    notes: list[CustomerNote]
    count: Annotated[int, Meta(ge=0)]
    offset: Annotated[int, Meta(ge=0)]
    limit: Annotated[int, Meta(ge=0, le=LIMIT_MAX)]


class CustomerNoteEnvelope(Struct, forbid_unknown_fields=True):
    note: CustomerNote


class CustomerError(Struct, forbid_unknown_fields=True):
    message: str
    type: str


class CustomerFieldError(Struct, forbid_unknown_fields=True):
    field: str
    message: str


class CustomerValidationError(Struct, forbid_unknown_fields=True):
    message: str
    errors: list[CustomerFieldError]


_decode_create = decoder(CustomerNoteCreate)
FIELDS = set(CustomerNoteCreate.__struct_fields__)


def _subject(customer_id: str) -> pb.SubjectRef:
    return pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id=customer_id)


def render_note(note: pb.Note) -> CustomerNote:
    return CustomerNote(
        note.id,
        note.subject.id,
        note.body,
        note.visibility != pb.VISIBILITY_CUSTOMER,
        note.author.id,
        _metadata(note),
        timefmt.iso_ms(note.create_time),
        timefmt.iso_ms(note.update_time),
    )


_rendered = Rendered(render_note)
_EMPTY = msgspec.Raw(b"{}")


def _metadata(note: pb.Note) -> msgspec.Raw:
    """Rendered as json.dumps renders it (msgspec writes 1e+16 as 1e16), sorted."""
    if not note.HasField("metadata"):
        return _EMPTY
    value = _integral(json_format.MessageToDict(note.metadata))
    return msgspec.Raw(
        json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    )


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
    # Past int32 (the field's type) no page can start: an empty page with the count.
    page = await call.list_page(
        pb.ListNotesRequest(
            subject=_subject(customer_id),
            author_ids=[a for a in author_ids if a],
            contains=params.get("q", ""),  # Medusa's q: ILIKE %q%, not the word language
            page_size=max(limit, 1),
            offset=min(offset, INT32_MAX),
            include_total_size=True,
        ),
    )
    notes = [_rendered(n) for n in page.notes][:limit]
    return ModelResponse(CustomerNoteList(notes, page.total_size, offset, limit))


def _parse_create(body: dict[str, Any]) -> pb.Note:
    problems = [(name, f"{name} is not allowed") for name in body if name not in FIELDS]
    text = body.get("body")
    if not isinstance(text, str):
        problems.append(("body", "body must be a string"))
    elif not 1 <= len(text) <= BODY_MAX:
        problems.append(("body", f"body must be between 1 and {BODY_MAX} characters"))
    is_internal = body.get("is_internal")
    if is_internal is not None and not isinstance(is_internal, bool):
        problems.append(("is_internal", "is_internal must be a boolean"))
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        problems.append(("metadata", "metadata must be an object"))
    if problems:
        raise Failure(
            Code.INVALID_ARGUMENT, errors.INVALID_ARGUMENT, violations=problems, local=True
        )
    note = pb.Note(
        body=text,
        visibility=pb.VISIBILITY_CUSTOMER if is_internal is False else pb.VISIBILITY_INTERNAL,
    )
    if metadata:
        note.metadata.update(metadata)
    return note


def _note_of(create: CustomerNoteCreate) -> pb.Note:
    """The note a body the model accepted asks for (_parse_create's result for it)."""
    note = pb.Note(
        body=create.body,
        visibility=pb.VISIBILITY_CUSTOMER
        if create.is_internal is False
        else pb.VISIBILITY_INTERNAL,
    )
    if create.metadata:
        bodies.check_json(create.metadata, depth=2)
        note.metadata.update(create.metadata)
    return note


async def read_create(request: Request) -> pb.Note:
    raw = await bodies.read_body(request)
    try:
        return _note_of(_decode_create(raw))
    except msgspec.MsgspecError:  # refused by the model: the dialect's own words say why
        return _parse_create(await bodies.read_object(request))


async def create_note(request: Request, call: Call) -> Response:
    note = await read_create(request)
    note.subject.CopyFrom(_subject(request.path_params["id"]))
    try:
        created = await call.invoke(call.notes.CreateNote, pb.CreateNoteRequest(note=note))
    except Failure as f:
        raise errors.subject_ids_as_not_found(f, note.subject) from None
    return ModelResponse(CustomerNoteEnvelope(render_note(created.note)), 201)


# --- errors ------------------------------------------------------------------------------------

_FIELD_NAMES = {"visibility": "is_internal"}
_UNAUTHORIZED = CustomerError("Unauthorized", "not_allowed")
# code -> (type, message); a message of None shows the failure's own.
BY_CODE: dict[Code, tuple[str, str | None]] = {
    Code.INVALID_ARGUMENT: ("invalid_data", None),
    Code.PERMISSION_DENIED: ("not_allowed", "Forbidden"),
    Code.NOT_FOUND: ("not_found", "Not found"),
    Code.UNIMPLEMENTED: ("not_allowed", None),
    Code.FAILED_PRECONDITION: ("not_allowed", None),
    Code.RESOURCE_EXHAUSTED: ("unexpected_state", "Too many requests"),
    Code.UNAVAILABLE: ("unexpected_state", "Service unavailable"),
    Code.DEADLINE_EXCEEDED: ("unexpected_state", "The service did not answer in time"),
}


def render_error(f: Failure, request: Request) -> Response:
    """Any credentials failure is 401 Unauthorized; an unknown customer 404; malformed or
    oversized input invalid_data; a refused body on POST 422 with every field; else by code."""
    if f.code == Code.UNAUTHENTICATED:
        return ModelResponse(_UNAUTHORIZED, 401)
    if f.reason == domain.SubjectNotFound.reason:
        message = f"Customer with id: {f.metadata.get('subjectId', '')} was not found"
        return ModelResponse(CustomerError(message, "not_found"), 404)
    if f.reason in (errors.BODY_TOO_LARGE, errors.HEADERS_TOO_LARGE, errors.MALFORMED_JSON):
        return ModelResponse(CustomerError(f.message, "invalid_data"), f.status)
    if f.code == Code.INVALID_ARGUMENT and request.method == "POST":
        problems = [
            CustomerFieldError(_FIELD_NAMES.get(name, name), _sentence(name, description))
            for name, description in f.violations
        ]
        return ModelResponse(CustomerValidationError("Validation failed", problems), 422)
    kind, message = BY_CODE.get(f.code, ("unknown_error", "An unknown error occurred."))
    if message is None:
        message = f.message if f.code == Code.UNIMPLEMENTED else f.described()
    status = 405 if f.reason == errors.METHOD_NOT_ALLOWED else f.status
    if f.reason == errors.ROUTE_NOT_FOUND:
        message = f"Cannot {request.method} {request.url.path}"
    return ModelResponse(CustomerError(message, kind), status)


def _sentence(name: str, description: str) -> str:
    """Service descriptions ("must be ...") read as the dialect's ("body must be ...")."""
    shown = _FIELD_NAMES.get(name, name)
    return description if description.startswith(shown) else f"{shown} {description}"


_CUSTOMER = Param("id", "path", SubjectId, required=True, subject="customer")
_AUTHOR_IDS = "Notes by any of these authors."

DIALECT = Dialect(
    "customer_notes",
    "/admin/",
    render_error,
    tag="Customer notes",
    error_model=(CustomerError, CustomerValidationError),
    security=({"bearer": []}, {"basicSecret": []}),
    schemes={
        "bearer": {"type": "http", "scheme": "bearer"},
        "basicSecret": {
            "type": "http",
            "scheme": "basic",
            "description": "A secret API key as the user name, with an empty password.",
        },
    },
    operations=(
        Operation(
            "GET",
            "/admin/customers/{id}/notes",
            "listCustomerNotes",
            list_notes,
            replies=(Reply(200, CustomerNoteList, "Notes of the customer, newest first"),),
            errors=(400, 401, 403, 404),
            params=(
                _CUSTOMER,
                Param(
                    "limit",
                    "query",
                    Annotated[int, Meta(ge=0, extra_json_schema={"default": LIMIT_DEFAULT})],
                    description=f"At most {LIMIT_MAX} notes are served, whatever is asked.",
                ),
                Param(
                    "offset",
                    "query",
                    Annotated[int, Meta(ge=0)],
                    description="Past the last note: an empty page with the count. "
                    "Otherwise at most 100000.",
                ),
                Param(
                    "q",
                    "query",
                    Annotated[str, Meta(max_length=QUERY_MAX)],
                    description="Notes whose body contains this text, case-insensitively "
                    "(ILIKE %q%).",
                ),
                Param("author_id", "query", SubjectId, array=True, description=_AUTHOR_IDS),
                Param("author_id[]", "query", SubjectId, array=True, description=_AUTHOR_IDS),
            ),
        ),
        Operation(
            "POST",
            "/admin/customers/{id}/notes",
            "createCustomerNote",
            create_note,
            replies=(Reply(201, CustomerNoteEnvelope, "The new note"),),
            errors=(400, 401, 403, 404, 413, 422),
            params=(_CUSTOMER,),
            body=CustomerNoteCreate,
        ),
    ),
)
routes = routes(DIALECT)
