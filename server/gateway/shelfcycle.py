"""ShelfCycle public API, notes (seed 001): POST /api/v1/notes, GET|PATCH /api/v1/notes/{id}.

Idempotency-Key becomes the service's request_id (a digest of route and key: the service scopes
it by organization); If-Match is compared with updatedAt and then sent as the version read.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from google.protobuf import field_mask_pb2, timestamp_pb2
from notes.v1 import notes_pb2 as pb
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import bodies, calls, errors, timefmt
from .calls import Call
from .dialect import Dialect
from .errors import Code, Failure
from .observe import request_id_of

PRIMARY_TYPES = {
    "customer": pb.SUBJECT_TYPE_CUSTOMER,
    "supplier": pb.SUBJECT_TYPE_SUPPLIER,
    "product": pb.SUBJECT_TYPE_PRODUCT,
}
LINK_TYPES = {
    **PRIMARY_TYPES,
    "contact": pb.SUBJECT_TYPE_CONTACT,
    "location": pb.SUBJECT_TYPE_LOCATION,
}
TYPE_NAMES = {v: k for k, v in LINK_TYPES.items()}
NOTE_TYPES = {
    name.removeprefix("NOTE_TYPE_"): value
    for name, value in pb.NoteType.items()
    if value != pb.NOTE_TYPE_UNSPECIFIED
}
NOTE_TYPE_NAMES = {v: k for k, v in NOTE_TYPES.items()}
CREATE_FIELDS = {"primarySubject", "linkedRecords", "noteType", "title", "body", "happenedAt"}
PATCH_FIELDS = {"title", "body", "happenedAt", "noteType", "linkedRecords"}
IDEMPOTENCY_KEY_MAX = 255
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
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise errors.invalid(("happenedAt", "must be an ISO 8601 date-time string")) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
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
    _unknown(body, CREATE_FIELDS, "set")
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
    _unknown(body, PATCH_FIELDS, "changed")
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


# --- responses ---------------------------------------------------------------------------------


def render_note(
    note: pb.Note, request: Request, call: Call, *, idempotency: str = ""
) -> dict[str, Any]:
    settings = request.app.state.settings
    app_base = (settings.app_base_url or calls.base_url(request)).rstrip("/")
    author = note.author
    data: dict[str, Any] = {
        "id": note.id,
        "type": "note",
        "url": f"{app_base}/{note.organization}/notes/{note.id}",
        "createdAt": timefmt.iso_ms(note.create_time),
        "updatedAt": timefmt.iso_ms(note.update_time),
        "createdBy": {
            "type": AUTHOR_TYPES.get(author.type, "user"),
            "id": author.id,
            "displayName": author.display_name,
        },
        "createdVia": {
            "type": "public_api" if note.created_via == pb.SURFACE_SHELFCYCLE else "integration",
            "actorUserId": author.id,
        },
        "requestedVia": {
            "type": "api_key",
            "id": note.requested_via.api_key_id,
            "purpose": note.requested_via.purpose,
        }
        if note.HasField("requested_via")
        else None,
    }
    if idempotency:
        data["idempotencyStatus"] = idempotency
        return data
    data.update(
        primarySubject={"type": TYPE_NAMES[note.subject.type], "id": note.subject.id},
        linkedRecords=[
            {"type": TYPE_NAMES.get(r.type, "customer"), "id": r.id} for r in note.linked_records
        ],
        noteType=NOTE_TYPE_NAMES.get(note.note_type, "NOTE"),
        title=note.title,
        body=note.body,
        happenedAt=timefmt.iso_ms(note.happened_at) if note.HasField("happened_at") else None,
    )
    return data


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
    note = parse_create(await bodies.read_object(request))
    out = await call.invoke(
        call.notes.CreateNote,
        pb.CreateNoteRequest(note=note, request_id=request_id(CREATE_ROUTE, key)),
    )
    if out.idempotency_status == pb.IDEMPOTENCY_STATUS_REPLAYED:
        current = await call.get_note(out.note.id)  # the note as it is now, not as first sent
        return JSONResponse(
            {"data": render_note(current, request, call, idempotency="replayed")}, 200
        )
    return JSONResponse({"data": render_note(out.note, request, call, idempotency="created")}, 201)


async def _read(call: Call, note_id: str) -> pb.Note:
    """A live note about a ShelfCycle record; anything else is not found."""
    note = await call.get_note(note_id)
    if note.HasField("delete_time") or note.subject.type not in PRIMARY_TYPES.values():
        raise errors.note_not_found(note_id)
    return note


async def get_note(request: Request, call: Call) -> Response:
    await call.check_credentials(write=True)  # ShelfCycle reads need notes:write too
    note = await _read(call, request.path_params["id"])
    return JSONResponse({"data": render_note(note, request, call)})


_QUOTES = re.compile(r'^(W/)?"(.*)"$')


def _same_moment(if_match: str, ts: timestamp_pb2.Timestamp) -> bool:
    """If-Match carries an updatedAt string; compared at its precision, milliseconds."""
    quoted = _QUOTES.match(if_match.strip())
    text = quoted.group(2) if quoted else if_match.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    current = timefmt.to_datetime(ts)
    current = current.replace(microsecond=current.microsecond // 1000 * 1000)
    return moment == current


async def patch_note(request: Request, call: Call) -> Response:
    note_id = request.path_params["id"]
    if_match = request.headers.get("if-match", "")
    if not if_match.strip():
        raise errors.invalid(("If-Match", "header is required"), reason=IF_MATCH_REQUIRED)
    changes, mask = parse_patch(await bodies.read_object(request), note_id)
    current = await _read(call, note_id)
    if current.created_via != pb.SURFACE_SHELFCYCLE:
        raise Failure(Code.FAILED_PRECONDITION, NOT_API_CREATED, local=True)
    if not _same_moment(if_match, current.update_time):
        raise Failure(Code.FAILED_PRECONDITION, STALE_RECORD, local=True)
    if not mask:
        return JSONResponse({"data": render_note(current, request, call)})
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
        if f.reason == "NOTE_DELETED":
            raise errors.note_not_found(note_id) from None
        raise
    return JSONResponse({"data": render_note(out.note, request, call)})


# --- errors ------------------------------------------------------------------------------------

# reason -> (HTTP status, type, code, message); a message of None shows the failure's own.
ERRORS: dict[str, tuple[int, str, str, str | None]] = {
    "CREDENTIALS_MISSING": (401, "authentication_error", "invalid_api_key", "No API key provided."),
    "CREDENTIALS_MALFORMED": (401, "authentication_error", "invalid_api_key", "Invalid API key."),
    "API_KEY_INVALID": (401, "authentication_error", "invalid_api_key", "Invalid API key."),
    "TOKEN_INVALID": (401, "authentication_error", "invalid_api_key", "Invalid API key."),
    "TOKEN_EXPIRED": (401, "authentication_error", "api_key_expired", "The API key has expired."),
    "API_KEY_REVOKED": (401, "authentication_error", "api_key_revoked", "The API key was revoked."),
    "API_KEY_EXPIRED": (401, "authentication_error", "api_key_expired", "The API key has expired."),
    "MISSING_SCOPE": (
        403,
        "authorization_error",
        "missing_scope",
        "The API key lacks the scope notes:write.",
    ),
    "NOTE_NOT_FOUND": (404, "not_found_error", "not_found", "No such note."),
    "SUBJECT_NOT_FOUND": (404, "not_found_error", "not_found", None),
    "SUBJECT_ARCHIVED": (409, "conflict_error", "archived_record", None),
    "INVALID_ARGUMENT": (400, "validation_error", "validation_failed", None),
    UNSUPPORTED_LINKED_RECORD: (400, "validation_error", "unsupported_linked_record", None),
    IDEMPOTENCY_KEY_REQUIRED: (
        400,
        "invalid_request_error",
        "idempotency_key_required",
        "An Idempotency-Key header is required.",
    ),
    "REQUEST_ID_REUSED": (
        409,
        "conflict_error",
        "idempotency_key_reused",
        "The Idempotency-Key was reused with a different request body.",
    ),
    "REQUEST_IN_FLIGHT": (
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
    "VERSION_MISMATCH": (
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
    "RATE_LIMITED": (429, "rate_limit_error", "rate_limited", "Too many requests."),
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
    if f.reason == "SUBJECT_NOT_FOUND":
        kind, record_id = f.metadata.get("subjectType", "record"), f.metadata.get("subjectId", "")
        return f"No such {kind}: '{record_id}'."
    if f.reason == "SUBJECT_ARCHIVED":
        return "The referenced record is archived."
    return f.message or "The request failed."


def render_error(f: Failure, request: Request) -> Response:
    if f.reason in ERRORS:
        status, kind, code, fixed = ERRORS[f.reason]
    else:
        kind, code, fixed = BY_CODE.get(f.code, ("api_error", "internal_error", "Internal error."))
        status = f.status
    error: dict[str, Any] = {"type": kind, "code": code, "message": _message(f, fixed)}
    param = f.violations[0][0] if f.violations else f.metadata.get("field", "")
    if param:
        error["param"] = _param(param)
    error["requestId"] = request_id_of(request)
    return JSONResponse({"error": error}, status)  # a 429's Retry-After: Dialect.respond


DIALECT = Dialect("shelfcycle", "/api/v1/", render_error)

routes = [
    Route("/api/v1/notes", DIALECT.endpoint(create_note), methods=["POST"]),
    Route("/api/v1/notes/{id}", DIALECT.endpoint(get_note), methods=["GET"]),
    Route("/api/v1/notes/{id}", DIALECT.endpoint(patch_note), methods=["PATCH"]),
]
