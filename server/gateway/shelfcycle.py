"""ShelfCycle public API, notes (seed 001): POST /api/v1/notes, GET|PATCH /api/v1/notes/{id}.

Idempotency-Key becomes the service's request_id (a digest of route and key: the service scopes
it by organization); If-Match is compared with updatedAt and then sent as the version read.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal

import msgspec
from google.protobuf import field_mask_pb2, timestamp_pb2
from msgspec import UNSET, Meta, Struct, UnsetType
from notes.v1 import notes_pb2 as pb
from starlette.requests import Request
from starlette.responses import Response

from ..domain import errors as domain
from ..domain.ids import NOTE_ID_PATTERN
from ..domain.model import SubjectType
from ..domain.validation import BODY_MAX, ID_MAX, LINKS_MAX, TITLE_MAX
from . import bodies, calls, errors, timefmt
from .calls import Call
from .dialect import Dialect, ModelResponse, Operation, Param, Rendered, Reply, decoder, routes
from .errors import Code, Failure
from .observe import request_id_of
from .subjects import types

PRIMARY_TYPES = types(SubjectType.CUSTOMER, SubjectType.SUPPLIER, SubjectType.PRODUCT)
LINK_TYPES = {**PRIMARY_TYPES, **types(SubjectType.CONTACT, SubjectType.LOCATION)}
TYPE_NAMES = {v: k for k, v in LINK_TYPES.items()}
NOTE_TYPES = {
    name.removeprefix("NOTE_TYPE_"): value
    for name, value in pb.NoteType.items()
    if value != pb.NOTE_TYPE_UNSPECIFIED
}
NOTE_TYPE_NAMES = {v: k for k, v in NOTE_TYPES.items()}
IDEMPOTENCY_KEY_MAX = 255  # the dialect's own (seed 001)
CREATE_ROUTE = "POST /api/v1/notes"
AUTHOR_TYPES = {
    pb.AUTHOR_TYPE_USER: "user",
    pb.AUTHOR_TYPE_SYSTEM: "system",
    pb.AUTHOR_TYPE_API_KEY: "api_key",
}

# Local reasons of this dialect.
IDEMPOTENCY_KEY_REQUIRED = "IDEMPOTENCY_KEY_REQUIRED"
IF_MATCH_REQUIRED = "IF_MATCH_REQUIRED"
STALE_RECORD = "STALE_RECORD"
NOT_API_CREATED = "NOT_API_CREATED"
UNSUPPORTED_LINKED_RECORD = "UNSUPPORTED_LINKED_RECORD"

# --- models ------------------------------------------------------------------------------------

PrimaryType = Literal[tuple(PRIMARY_TYPES)]  # type: ignore[valid-type]
LinkType = Literal[tuple(LINK_TYPES)]  # type: ignore[valid-type]
NoteTypeName = Literal[tuple(NOTE_TYPES)]  # type: ignore[valid-type]
RecordId = Annotated[str, Meta(min_length=1, max_length=ID_MAX)]
Title = Annotated[str, Meta(max_length=TITLE_MAX)]
Body = Annotated[str, Meta(min_length=1, max_length=BODY_MAX)]
Links = Annotated[list["ShelfCycleRecord"], Meta(max_length=LINKS_MAX)]
DateTime = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]
IsoMs = Annotated[str, Meta(pattern=timefmt.ISO_MS)]
NoteId = Annotated[str, Meta(pattern=NOTE_ID_PATTERN)]


class ShelfCyclePrimarySubject(Struct, forbid_unknown_fields=True):
    type: PrimaryType
    id: RecordId


class ShelfCycleRecord(Struct, forbid_unknown_fields=True):
    type: LinkType
    id: RecordId


class ShelfCycleCreate(Struct, forbid_unknown_fields=True):
    primarySubject: ShelfCyclePrimarySubject
    body: Body
    linkedRecords: Links | None = None
    noteType: NoteTypeName = "NOTE"
    title: Title | None = None
    happenedAt: DateTime | None = None


class ShelfCyclePatch(Struct, forbid_unknown_fields=True):
    title: Title | None | UnsetType = UNSET
    body: Body | UnsetType = UNSET
    happenedAt: DateTime | None | UnsetType = UNSET
    noteType: NoteTypeName | UnsetType = UNSET
    linkedRecords: Links | None | UnsetType = UNSET


class CreatedBy(Struct, forbid_unknown_fields=True):
    type: str
    id: str
    displayName: str


class CreatedVia(Struct, forbid_unknown_fields=True):
    type: str
    actorUserId: str


class RequestedVia(Struct, forbid_unknown_fields=True):
    type: Literal["api_key"]
    id: str
    purpose: str


class _NoteHead(Struct, forbid_unknown_fields=True):
    """What every note response carries; GET and PATCH add the content fields."""

    id: NoteId
    type: Literal["note"]
    url: Annotated[str, Meta(extra_json_schema={"format": "uri"})]
    createdAt: IsoMs
    updatedAt: IsoMs
    createdBy: CreatedBy
    createdVia: CreatedVia
    requestedVia: RequestedVia | None


class ShelfCycleCreatedNote(_NoteHead, forbid_unknown_fields=True):
    idempotencyStatus: Literal["created", "replayed"]


class ShelfCycleNoteData(_NoteHead, forbid_unknown_fields=True):
    primarySubject: ShelfCyclePrimarySubject
    linkedRecords: Links
    noteType: NoteTypeName
    title: str
    body: str
    happenedAt: IsoMs | None


class ShelfCycleCreated(Struct, forbid_unknown_fields=True):
    data: ShelfCycleCreatedNote


class ShelfCycleNote(Struct, forbid_unknown_fields=True):
    data: ShelfCycleNoteData


class ShelfCycleErrorDetail(Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    type: str
    code: str
    message: str
    param: str | UnsetType = UNSET
    requestId: str


class ShelfCycleError(Struct, forbid_unknown_fields=True):
    error: ShelfCycleErrorDetail


_decode_create = decoder(ShelfCycleCreate)
_decode_patch = decoder(ShelfCyclePatch)


def request_id(route: str, key: str) -> str:
    """The service's request_id (at most 36 characters) for one route and Idempotency-Key."""
    return hashlib.sha256(f"{route}\x00{key}".encode()).hexdigest()[:32]


# --- requests ----------------------------------------------------------------------------------


def _ref(value: Any, param: str, types: dict[str, int]) -> pb.SubjectRef:
    if not isinstance(value, dict) or set(value) - {"type", "id"}:
        raise errors.invalid((param, "must be an object with type and id"))
    kind, record_id = value.get("type"), value.get("id")
    if not isinstance(kind, str) or kind not in types:
        raise errors.invalid(
            (f"{param}.type", f"must be one of {', '.join(types)}"),
            reason=UNSUPPORTED_LINKED_RECORD,
        )
    if not isinstance(record_id, str) or not record_id:
        raise errors.invalid((f"{param}.id", "must be a non-empty string"))
    return pb.SubjectRef(type=types[kind], id=record_id)


def _links(value: Any) -> list[pb.SubjectRef]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise errors.invalid(("linkedRecords", "must be an array"))
    return [_ref(item, f"linkedRecords[{i}]", LINK_TYPES) for i, item in enumerate(value)]


def _happened_at(value: Any) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.invalid(("happenedAt", "must be an ISO 8601 date-time string"))
    try:
        moment = timefmt.parse_iso(value)
    except ValueError:
        raise errors.invalid(("happenedAt", "must be an ISO 8601 date-time string")) from None
    ts = timestamp_pb2.Timestamp()
    try:
        ts.FromDatetime(moment)
    except (OverflowError, ValueError):
        # An offset that moves the instant past year 1 or 9999 in UTC, e.g.
        # 0001-01-01T00:00:00+01:00: OverflowError from utctimetuple (ValueError from
        # protobuf's own range check, should the two ever disagree).
        raise errors.invalid(("happenedAt", "is out of range")) from None
    return ts


def _text(body: dict[str, Any], name: str, *, nullable: bool) -> str:
    value = body.get(name)
    if value is None and nullable:
        return ""
    if not isinstance(value, str):
        raise errors.invalid((name, "must be a string"))
    return value


def _note_type(value: Any) -> int:
    if not isinstance(value, str) or value not in NOTE_TYPES:
        raise errors.invalid(("noteType", f"must be one of {', '.join(NOTE_TYPES)}"))
    return NOTE_TYPES[value]


def _unknown(body: dict[str, Any], allowed: set[str], verb: str) -> None:
    for name in body:
        if name not in allowed:
            raise errors.invalid((name, f"cannot be {verb}"))


def parse_create(body: dict[str, Any]) -> pb.Note:
    _unknown(body, set(ShelfCycleCreate.__struct_fields__), "set")
    if "primarySubject" not in body:
        raise errors.invalid(("primarySubject", "is required"))
    note = pb.Note(
        subject=_ref(body["primarySubject"], "primarySubject", PRIMARY_TYPES),
        linked_records=_links(body.get("linkedRecords")),
        note_type=_note_type(body.get("noteType", "NOTE")),
        title=_text(body, "title", nullable=True),
        body=_text(body, "body", nullable=False),
    )
    happened_at = _happened_at(body.get("happenedAt"))
    if happened_at is not None:
        note.happened_at.CopyFrom(happened_at)
    return note


def parse_patch(body: dict[str, Any], note_id: str) -> tuple[pb.Note, list[str]]:
    _unknown(body, set(ShelfCyclePatch.__struct_fields__), "changed")
    note, mask = pb.Note(id=note_id), []
    if "title" in body:
        note.title = _text(body, "title", nullable=True)
        mask.append("title")
    if "body" in body:
        note.body = _text(body, "body", nullable=False)
        mask.append("body")
    if "noteType" in body:
        note.note_type = _note_type(body["noteType"])
        mask.append("note_type")
    if "linkedRecords" in body:
        note.linked_records.extend(_links(body["linkedRecords"]))
        mask.append("linked_records")
    if "happenedAt" in body:
        happened_at = _happened_at(body["happenedAt"])
        if happened_at is not None:
            note.happened_at.CopyFrom(happened_at)
        mask.append("happened_at")
    return note, mask


def _note_of(create: ShelfCycleCreate) -> pb.Note:
    """The note a body the model accepted asks for (parse_create's result for it)."""
    subject = create.primarySubject
    note = pb.Note(
        subject=pb.SubjectRef(type=PRIMARY_TYPES[subject.type], id=subject.id),
        linked_records=_refs(create.linkedRecords),
        note_type=NOTE_TYPES[create.noteType],
        title=create.title or "",
        body=create.body,
    )
    if create.happenedAt is not None:
        note.happened_at.CopyFrom(_happened_at(create.happenedAt))
    return note


def _refs(records: list[ShelfCycleRecord] | None) -> list[pb.SubjectRef]:
    return [pb.SubjectRef(type=LINK_TYPES[r.type], id=r.id) for r in records or ()]


def _changes_of(patch: ShelfCyclePatch, note_id: str) -> tuple[pb.Note, list[str]]:
    """The changes and mask a body the model accepted asks for (parse_patch's result)."""
    note, mask = pb.Note(id=note_id), []
    if patch.title is not UNSET:
        note.title = patch.title or ""
        mask.append("title")
    if patch.body is not UNSET:
        note.body = patch.body
        mask.append("body")
    if patch.noteType is not UNSET:
        note.note_type = NOTE_TYPES[patch.noteType]
        mask.append("note_type")
    if patch.linkedRecords is not UNSET:
        note.linked_records.extend(_refs(patch.linkedRecords))
        mask.append("linked_records")
    if patch.happenedAt is not UNSET:
        if patch.happenedAt is not None:
            note.happened_at.CopyFrom(_happened_at(patch.happenedAt))
        mask.append("happened_at")
    return note, mask


async def read_create(request: Request) -> pb.Note:
    raw = await bodies.read_body(request)
    try:
        return _note_of(_decode_create(raw))
    except msgspec.MsgspecError:  # refused by the model: the dialect's own words say why
        return parse_create(await bodies.read_object(request))


async def read_patch(request: Request, note_id: str) -> tuple[pb.Note, list[str]]:
    raw = await bodies.read_body(request)
    try:
        return _changes_of(_decode_patch(raw), note_id)
    except msgspec.MsgspecError:
        return parse_patch(await bodies.read_object(request), note_id)


# --- responses ---------------------------------------------------------------------------------


def _app_base(request: Request) -> str:
    settings = request.app.state.settings
    return (settings.app_base_url or calls.base_url(request)).rstrip("/")


def _head(note: pb.Note, app_base: str) -> dict[str, Any]:
    author = note.author
    via = note.requested_via
    return {
        "id": note.id,
        "type": "note",
        "url": f"{app_base}/{note.organization}/notes/{note.id}",
        "createdAt": timefmt.iso_ms(note.create_time),
        "updatedAt": timefmt.iso_ms(note.update_time),
        "createdBy": CreatedBy(
            AUTHOR_TYPES.get(author.type, "user"), author.id, author.display_name
        ),
        "createdVia": CreatedVia(
            "public_api" if note.created_via == pb.SURFACE_SHELFCYCLE else "integration",
            author.id,
        ),
        "requestedVia": RequestedVia("api_key", via.api_key_id, via.purpose)
        if note.HasField("requested_via")
        else None,
    }


def render_created(note: pb.Note, request: Request, idempotency: str) -> ShelfCycleCreated:
    return ShelfCycleCreated(
        ShelfCycleCreatedNote(**_head(note, _app_base(request)), idempotencyStatus=idempotency)
    )


def render_note(note: pb.Note, request: Request) -> ShelfCycleNote:
    return _render(note, _app_base(request))


def _render(note: pb.Note, app_base: str) -> ShelfCycleNote:
    return ShelfCycleNote(
        ShelfCycleNoteData(
            **_head(note, app_base),
            primarySubject=ShelfCyclePrimarySubject(TYPE_NAMES[note.subject.type], note.subject.id),
            linkedRecords=[
                ShelfCycleRecord(TYPE_NAMES.get(r.type, "customer"), r.id)
                for r in note.linked_records
            ],
            noteType=NOTE_TYPE_NAMES.get(note.note_type, "NOTE"),
            title=note.title,
            body=note.body,
            happenedAt=timefmt.iso_ms(note.happened_at) if note.HasField("happened_at") else None,
        )
    )


_rendered = Rendered(_render)


# --- routes ------------------------------------------------------------------------------------


async def create_note(request: Request, call: Call) -> Response:
    key = request.headers.get("idempotency-key", "").strip()
    if not key:
        raise errors.invalid(
            ("Idempotency-Key", "header is required"), reason=IDEMPOTENCY_KEY_REQUIRED
        )
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise errors.invalid(
            ("Idempotency-Key", f"must be at most {IDEMPOTENCY_KEY_MAX} characters")
        )
    note = await read_create(request)
    out = await call.invoke(
        call.notes.CreateNote,
        pb.CreateNoteRequest(note=note, request_id=request_id(CREATE_ROUTE, key)),
    )
    if out.idempotency_status == pb.IDEMPOTENCY_STATUS_REPLAYED:
        current = await call.get_note(out.note.id)  # the note as it is now, not as first sent
        return ModelResponse(render_created(current, request, "replayed"), 200)
    return ModelResponse(render_created(out.note, request, "created"), 201)


async def _read(call: Call, note_id: str) -> pb.Note:
    """A live note about a ShelfCycle record; anything else is not found."""
    note = await call.get_note(note_id)
    if note.HasField("delete_time") or note.subject.type not in PRIMARY_TYPES.values():
        raise errors.note_not_found(note_id)
    return note


async def get_note(request: Request, call: Call) -> Response:
    # ShelfCycle reads need notes:write too: the service asks it of every ShelfCycle call.
    note = await _read(call, request.path_params["id"])
    return ModelResponse(_rendered(note, _app_base(request)))


_QUOTES = re.compile(r'^(W/)?"(.*)"$')


def _same_moment(if_match: str, ts: timestamp_pb2.Timestamp) -> bool:
    """If-Match carries an updatedAt string; compared at its precision, milliseconds."""
    quoted = _QUOTES.match(if_match.strip())
    text = quoted.group(2) if quoted else if_match.strip()
    try:
        return timefmt.parse_iso(text) == timefmt.to_millisecond(ts)
    except ValueError:
        return False


async def patch_note(request: Request, call: Call) -> Response:
    note_id = request.path_params["id"]
    if_match = request.headers.get("if-match", "")
    if not if_match.strip():
        raise errors.invalid(("If-Match", "header is required"), reason=IF_MATCH_REQUIRED)
    changes, mask = await read_patch(request, note_id)
    current = await _read(call, note_id)
    if current.created_via != pb.SURFACE_SHELFCYCLE:
        raise Failure(Code.FAILED_PRECONDITION, NOT_API_CREATED, local=True)
    if not _same_moment(if_match, current.update_time):
        raise Failure(Code.FAILED_PRECONDITION, STALE_RECORD, local=True)
    if not mask:
        return ModelResponse(render_note(current, request))
    try:
        out = await call.invoke(
            call.notes.UpdateNote,
            pb.UpdateNoteRequest(
                note=changes,
                update_mask=field_mask_pb2.FieldMask(paths=mask),
                expected_version=current.version,
            ),
        )
    except Failure as f:
        if f.reason == domain.NoteDeleted.reason:
            raise errors.note_not_found(note_id) from None
        raise
    return ModelResponse(render_note(out.note, request))


# --- errors ------------------------------------------------------------------------------------

# reason -> (HTTP status, type, code, message); a message of None shows the failure's own.
ERRORS: dict[str, tuple[int, str, str, str | None]] = {
    domain.CREDENTIALS_MISSING: (
        401,
        "authentication_error",
        "invalid_api_key",
        "No API key provided.",
    ),
    domain.CREDENTIALS_MALFORMED: (
        401,
        "authentication_error",
        "invalid_api_key",
        "Invalid API key.",
    ),
    domain.API_KEY_INVALID: (401, "authentication_error", "invalid_api_key", "Invalid API key."),
    domain.TOKEN_INVALID: (401, "authentication_error", "invalid_api_key", "Invalid API key."),
    domain.TOKEN_EXPIRED: (
        401,
        "authentication_error",
        "api_key_expired",
        "The API key has expired.",
    ),
    domain.API_KEY_REVOKED: (
        401,
        "authentication_error",
        "api_key_revoked",
        "The API key was revoked.",
    ),
    domain.API_KEY_EXPIRED: (
        401,
        "authentication_error",
        "api_key_expired",
        "The API key has expired.",
    ),
    domain.PermissionDenied.reason: (
        403,
        "authorization_error",
        "missing_scope",
        "The API key lacks the scope notes:write.",
    ),
    domain.NoteNotFound.reason: (404, "not_found_error", "not_found", "No such note."),
    domain.SubjectNotFound.reason: (404, "not_found_error", "not_found", None),
    domain.SubjectArchived.reason: (409, "conflict_error", "archived_record", None),
    domain.ValidationFailed.reason: (400, "validation_error", "validation_failed", None),
    UNSUPPORTED_LINKED_RECORD: (400, "validation_error", "unsupported_linked_record", None),
    IDEMPOTENCY_KEY_REQUIRED: (
        400,
        "invalid_request_error",
        "idempotency_key_required",
        "An Idempotency-Key header is required.",
    ),
    domain.RequestIdReused.reason: (
        409,
        "conflict_error",
        "idempotency_key_reused",
        "The Idempotency-Key was reused with a different request body.",
    ),
    domain.RequestInFlight.reason: (
        409,
        "conflict_error",
        "idempotency_key_in_use",
        "A request with this Idempotency-Key is still in progress; retry later.",
    ),
    IF_MATCH_REQUIRED: (
        428,
        "invalid_request_error",
        "if_match_required",
        "An If-Match header with the note's updatedAt is required.",
    ),
    STALE_RECORD: (
        412,
        "conflict_error",
        "stale_record",
        "If-Match does not match the note's current updatedAt.",
    ),
    domain.VersionConflict.reason: (
        412,
        "conflict_error",
        "stale_record",
        "If-Match does not match the note's current updatedAt.",
    ),
    NOT_API_CREATED: (
        409,
        "conflict_error",
        "not_api_created",
        "Only notes created through the public API can be updated.",
    ),
    errors.MALFORMED_JSON: (400, "invalid_request_error", "invalid_json", None),
    errors.BODY_TOO_LARGE: (413, "invalid_request_error", "payload_too_large", None),
    errors.HEADERS_TOO_LARGE: (431, "invalid_request_error", "headers_too_large", None),
    errors.ROUTE_NOT_FOUND: (404, "not_found_error", "not_found", "No such route."),
    errors.METHOD_NOT_ALLOWED: (405, "invalid_request_error", "method_not_allowed", None),
    domain.RateLimited.reason: (429, "rate_limit_error", "rate_limited", "Too many requests."),
}
BY_CODE: dict[Code, tuple[str, str, str | None]] = {
    Code.INVALID_ARGUMENT: ("validation_error", "validation_failed", None),
    Code.UNAUTHENTICATED: ("authentication_error", "invalid_api_key", "Invalid API key."),
    Code.PERMISSION_DENIED: ("authorization_error", "missing_scope", "Permission denied."),
    Code.NOT_FOUND: ("not_found_error", "not_found", "Not found."),
    Code.RESOURCE_EXHAUSTED: ("rate_limit_error", "rate_limited", "Too many requests."),
    Code.UNAVAILABLE: ("api_error", "service_unavailable", "The service is unavailable."),
    Code.DEADLINE_EXCEEDED: ("api_error", "timeout", "The service did not answer in time."),
}


def _param(name: str) -> str:
    """A service field path as the request named it: linked_records[0].id ->
    linkedRecords[0].id, subject -> primarySubject."""
    if name == "subject" or name.startswith("subject."):
        name = "primary_" + name
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def _message(f: Failure, fixed: str | None) -> str:
    if fixed:
        return fixed
    if f.violations:
        return "; ".join(f"{_param(n)} {d}" for n, d in f.violations)
    if f.reason == domain.SubjectNotFound.reason:
        kind, record_id = f.metadata.get("subjectType", "record"), f.metadata.get("subjectId", "")
        return f"No such {kind}: '{record_id}'."
    if f.reason == domain.SubjectArchived.reason:
        return "The referenced record is archived."
    return f.message or "The request failed."


def render_error(f: Failure, request: Request) -> Response:
    if f.reason in ERRORS:
        status, kind, code, fixed = ERRORS[f.reason]
    else:
        kind, code, fixed = BY_CODE.get(f.code, ("api_error", "internal_error", "Internal error."))
        status = f.status
    param = f.violations[0][0] if f.violations else f.metadata.get("field", "")
    error = ShelfCycleErrorDetail(
        type=kind,
        code=code,
        message=_message(f, fixed),
        param=_param(param) if param else UNSET,
        requestId=request_id_of(request),
    )
    return ModelResponse(ShelfCycleError(error), status)  # a 429's Retry-After: Dialect.respond


_NOTE_ID = Param("id", "path", Annotated[str, Meta(min_length=1)], required=True)
_WRITE = (400, 401, 403, 404, 409, 413)

DIALECT = Dialect(
    "shelfcycle",
    "/api/v1/",
    render_error,
    tag="ShelfCycle",
    error_model=ShelfCycleError,
    security=({"bearer": []},),
    schemes={"bearer": {"type": "http", "scheme": "bearer"}},
    operations=(
        Operation(
            "POST",
            "/api/v1/notes",
            "createShelfCycleNote",
            create_note,
            replies=(
                Reply(201, ShelfCycleCreated, "Created"),
                Reply(200, ShelfCycleCreated, "Replayed: the note the key created"),
            ),
            errors=_WRITE,
            params=(
                Param(
                    "Idempotency-Key",
                    "header",
                    Annotated[str, Meta(min_length=1, max_length=IDEMPOTENCY_KEY_MAX)],
                    required=True,
                ),
            ),
            body=ShelfCycleCreate,
        ),
        Operation(
            "GET",
            "/api/v1/notes/{id}",
            "getShelfCycleNote",
            get_note,
            replies=(Reply(200, ShelfCycleNote, "The note"),),
            errors=(401, 403, 404),
            params=(_NOTE_ID,),
        ),
        Operation(
            "PATCH",
            "/api/v1/notes/{id}",
            "patchShelfCycleNote",
            patch_note,
            replies=(Reply(200, ShelfCycleNote, "The updated note"),),
            errors=(*_WRITE, 412, 428),
            params=(
                _NOTE_ID,
                Param("If-Match", "header", Annotated[str, Meta(min_length=1)], required=True),
            ),
            body=ShelfCyclePatch,
        ),
    ),
)
routes = routes(DIALECT)
