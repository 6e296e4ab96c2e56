"""What every dialect shares: calling notes.v1 as the caller, reading its errors, JSON bodies,
the canonical status table, and the one place that turns failures into responses."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from notes.v1 import notes_pb2 as pb
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from ..service.credentials import sign_surface
from ..telemetry import tracing
from . import observe

log = logging.getLogger("notes.gateway")

BODY_LIMIT = 1024 * 1024
# Request headers, names and values together. Below the 64 KiB h11 refuses (runtime.py) so
# that a large head gets the dialect's 431, not the server's bare 400.
HEADERS_LIMIT = 32 * 1024
# gRPC refuses metadata past 8 KiB (some of it at random between 8 and 16 KiB) with
# RESOURCE_EXHAUSTED, which would read as a 429; no real credential comes near this.
AUTHORIZATION_LIMIT = 4 * 1024
RETRY_AFTER_DEFAULT = 1  # seconds, when the service gives no retry information (overload)
# Above the service's metadata depth (32), so that its rule answers (422 on metadata); as a
# Struct each level is two messages, and 40 levels stay inside protobuf's nesting limit (100).
JSON_MAX_DEPTH = 40
DEADLINE_SECONDS = float(os.environ.get("NOTES_GATEWAY_DEADLINE_SECONDS") or 10)
PAGE_SIZE = 1000  # the service's maximum: dialects without paging read every page
SURFACE_HEADER = "x-notes-surface"
SURFACE_SIG_HEADER = "x-notes-surface-sig"
ORG_HEADER = "x-notes-org"  # the caller's organization, sent back by the service
Code = grpc.StatusCode

# google.rpc.Code -> HTTP, as http-dialects.md gives it; dialects override where their docs say.
HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200,
    Code.INVALID_ARGUMENT: 400,
    Code.FAILED_PRECONDITION: 400,
    Code.OUT_OF_RANGE: 400,
    Code.UNAUTHENTICATED: 401,
    Code.PERMISSION_DENIED: 403,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.ABORTED: 409,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.CANCELLED: 499,
    Code.UNIMPLEMENTED: 501,
    Code.UNAVAILABLE: 503,
    Code.DEADLINE_EXCEEDED: 504,
    Code.INTERNAL: 500,
    Code.UNKNOWN: 500,
    Code.DATA_LOSS: 500,
}

# Reasons of failures the gateway finds itself, before or instead of the service.
MALFORMED_JSON = "MALFORMED_JSON"
BODY_TOO_LARGE = "BODY_TOO_LARGE"
HEADERS_TOO_LARGE = "HEADERS_TOO_LARGE"
ROUTE_NOT_FOUND = "ROUTE_NOT_FOUND"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
INVALID_ARGUMENT = "INVALID_ARGUMENT"
INTERNAL = "INTERNAL"
# Local reasons whose HTTP status is not their code's.
REASON_STATUS = {BODY_TOO_LARGE: 413, HEADERS_TOO_LARGE: 431}


@dataclass(eq=False)
class Failure(Exception):
    """A request that did not succeed, as data: a gRPC code, an ErrorInfo reason and details.

    Service errors arrive as these; the gateway raises its own with local=True. Each dialect's
    error table turns one into that dialect's status and body."""

    code: Code
    reason: str
    message: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[tuple[str, str]] = field(default_factory=list)
    local: bool = False
    retry_delay: float | None = None  # seconds, from a google.rpc.RetryInfo detail

    @property
    def status(self) -> int:
        return REASON_STATUS.get(self.reason) or HTTP_STATUS.get(self.code, 500)

    def retry_after(self) -> int:
        """Whole seconds to wait before retrying: the later of ErrorInfo's retryAfterSeconds
        and RetryInfo's delay rounded up; RETRY_AFTER_DEFAULT when the service sent neither,
        as gRPC's own RESOURCE_EXHAUSTED for too many concurrent calls."""
        seconds = [RETRY_AFTER_DEFAULT]
        given = self.metadata.get("retryAfterSeconds", "")
        if given.isascii() and given.isdigit():
            seconds.append(int(given))
        if self.retry_delay is not None and math.isfinite(self.retry_delay):
            seconds.append(math.ceil(self.retry_delay))
        return max(seconds)

    def described(self) -> str:
        if self.violations:
            return "; ".join(f"{f} {d}" if f else d for f, d in self.violations)
        return self.message


def invalid(*violations: tuple[str, str], reason: str = INVALID_ARGUMENT) -> Failure:
    return Failure(Code.INVALID_ARGUMENT, reason, violations=list(violations), local=True)


def from_rpc_error(err: grpc.aio.AioRpcError) -> Failure:
    """The ErrorInfo and BadRequest details of a failed call, when the service sent them."""
    failure = Failure(err.code(), "", err.details() or "")
    for key, value in err.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status()
        status.ParseFromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                failure.reason = info.reason
                failure.metadata = dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                # Dialects name a note's fields as the domain does: "body", not "note.body".
                failure.violations = [
                    (v.field.removeprefix("note."), v.description) for v in bad.field_violations
                ]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                failure.retry_delay = retry.retry_delay.ToMilliseconds() / 1000
    return failure


class Call:
    """One HTTP request's way to the service: the caller's credentials and the surface."""

    def __init__(self, request: Request, surface: str, authorization: str | None) -> None:
        self.request = request
        self.notes = request.app.state.notes
        self.subjects = request.app.state.subjects
        self.access = request.app.state.access
        self.authorization = authorization
        self.authenticated = False
        signature = sign_surface(request.app.state.surface_key, surface, authorization or "")
        self._metadata: list[tuple[str, str]] = [
            (SURFACE_HEADER, surface),
            (SURFACE_SIG_HEADER, signature),
        ]
        if authorization:
            self._metadata.append(("authorization", authorization))

    async def invoke(self, method, message):
        if self.authorization and not (
            self.authorization.isascii()
            and self.authorization.isprintable()
            and len(self.authorization) <= AUTHORIZATION_LIMIT
        ):
            # gRPC metadata cannot carry it; the service would call it malformed anyway.
            raise Failure(Code.UNAUTHENTICATED, "CREDENTIALS_MALFORMED", local=True)
        if tracing.enabled():
            return await self._traced(method, message)
        return await self._invoke(method, message, self._metadata)

    async def _invoke(self, method, message, metadata):
        call = method(message, metadata=metadata, timeout=DEADLINE_SECONDS)
        try:
            response = await call
        except grpc.aio.AioRpcError as err:
            self._note_org(err.initial_metadata())
            raise from_rpc_error(err) from None
        self._note_org(await call.initial_metadata())
        self.authenticated = True
        return response

    def _note_org(self, metadata) -> None:
        for key, value in metadata or ():
            if key == ORG_HEADER:
                observe.set_org(self.request, value)

    async def _traced(self, method, message):
        """A client span for the call, its context sent along as W3C traceparent."""
        from opentelemetry.trace import SpanKind

        name = getattr(method, "_method", b"").decode().lstrip("/")
        service, _, rpc = name.rpartition("/")
        with tracing.tracer().start_as_current_span(
            name,
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc},
        ):
            metadata = list(self._metadata)
            tracing.inject(metadata)
            return await self._invoke(method, message, metadata)

    async def get_note(self, note_id: str = "", number: int = 0) -> pb.Note:
        """The note, deleted or not; NOTE_NOT_FOUND also for ids the service cannot parse."""
        request = pb.GetNoteRequest(number=number) if number else pb.GetNoteRequest(id=note_id)
        try:
            return (await self.invoke(self.notes.GetNote, request)).note
        except Failure as f:
            if f.code == Code.INVALID_ARGUMENT:
                raise note_not_found(note_id or str(number)) from None
            raise

    async def require_subject(self, subject_type: int, subject_id: str) -> pb.Subject:
        """The registered subject; SUBJECT_NOT_FOUND also for ids that cannot exist."""
        request = pb.GetSubjectRequest(type=subject_type, id=subject_id)
        try:
            return (await self.invoke(self.subjects.GetSubject, request)).subject
        except Failure as f:
            if f.code == Code.INVALID_ARGUMENT:
                raise subject_not_found(subject_type, subject_id) from None
            raise

    async def list_all(self, request: pb.ListNotesRequest) -> list[pb.Note]:
        """Every page of a list, for dialects whose lists have no paging."""
        request.page_size = PAGE_SIZE
        notes: list[pb.Note] = []
        while True:
            page = await self.invoke(self.notes.ListNotes, request)
            notes.extend(page.notes)
            if not page.next_page_token:
                return notes
            request.page_token = page.next_page_token

    async def check_credentials(self, write: bool) -> None:
        """Credentials and scope, checked by the service without touching any note."""
        scope = "notes:write" if write else "notes:read"
        await self.invoke(self.access.CheckAccess, pb.CheckAccessRequest(scopes=[scope]))


def note_not_found(note_id: str) -> Failure:
    return Failure(Code.NOT_FOUND, "NOTE_NOT_FOUND", metadata={"noteId": note_id}, local=True)


_SUBJECT_TYPE_NAMES = {
    pb.SUBJECT_TYPE_CUSTOMER: "customer",
    pb.SUBJECT_TYPE_ORDER: "order",
    pb.SUBJECT_TYPE_ORDER_ITEM: "order_item",
    pb.SUBJECT_TYPE_SUPPLIER: "supplier",
    pb.SUBJECT_TYPE_PRODUCT: "product",
    pb.SUBJECT_TYPE_CONTACT: "contact",
    pb.SUBJECT_TYPE_LOCATION: "location",
}


def subject_not_found(subject_type: int, subject_id: str, field_name: str = "subject") -> Failure:
    return Failure(
        Code.NOT_FOUND,
        "SUBJECT_NOT_FOUND",
        metadata={
            "field": field_name,
            "subjectType": _SUBJECT_TYPE_NAMES.get(subject_type, ""),
            "subjectId": subject_id,
        },
        local=True,
    )


def subject_ids_as_not_found(f: Failure, subject: pb.SubjectRef) -> Failure:
    """A path's subject id the service refuses as input is a record that does not exist,
    unless other fields are wrong too: those are reported first."""
    if f.code != Code.INVALID_ARGUMENT or not f.violations:
        return f
    others = [(n, d) for n, d in f.violations if not n.startswith("subject")]
    if others:
        f.violations = others
        return f
    return subject_not_found(subject.type, subject.id)


# --- request bodies -----------------------------------------------------------------------


def body_too_large() -> Failure:
    return Failure(
        Code.INVALID_ARGUMENT,
        BODY_TOO_LARGE,
        f"the request body must be at most {BODY_LIMIT} bytes",
        local=True,
    )


def malformed(description: str) -> Failure:
    return Failure(Code.INVALID_ARGUMENT, MALFORMED_JSON, description, local=True)


async def read_body(request: Request) -> bytes:
    """The raw body, refused past BODY_LIMIT without reading the rest.

    Content-Type is not checked: a body is read as JSON whatever it says (missing, text/plain,
    or the form type `curl -d` sends), as the real systems' JSON parsers mostly do, so that
    mislabelled requests from legacy clients keep working. A body that is not JSON is the
    dialect's 400 for malformed JSON, never a 415. WooCommerce alone also reads form bodies,
    as WordPress does."""
    cached = getattr(request.state, "raw_body", None)
    if cached is not None:  # read already, to check a signature over it
        return cached
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > BODY_LIMIT:
        raise body_too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > BODY_LIMIT:
            raise body_too_large()
        chunks.append(chunk)
    request.state.raw_body = b"".join(chunks)
    return request.state.raw_body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def parse_json(raw: bytes) -> Any:
    """A JSON document the service can hold: UTF-8, finite numbers, bounded nesting."""
    try:
        value = json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise malformed(f"the request body is not valid JSON: {str(e)[:200]}") from None
    _check_json(value)
    return value


def _check_json(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > JSON_MAX_DEPTH:
                raise malformed(f"the request body is nested deeper than {JSON_MAX_DEPTH} levels")
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str):
                    _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > 1e300:
            raise malformed("the request body holds a number out of range")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise malformed("the request body holds an unpaired surrogate") from None


async def read_json(request: Request, *, required: bool = True) -> Any:
    """The body as JSON; None when it is empty and not required."""
    raw = await read_body(request)
    if not raw.strip():
        if required:
            raise malformed("the request body is empty")
        return None
    return parse_json(raw)


async def read_object(request: Request) -> dict[str, Any]:
    value = await read_json(request)
    if not isinstance(value, dict):
        raise malformed("the request body must be a JSON object")
    return value


# --- values --------------------------------------------------------------------------------


# Timestamps are rendered for every note of every list: plain datetime arithmetic in C, where
# Timestamp.ToDatetime and strftime were 17 % of a customer-notes list's samples (py-spy).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def iso_ms(ts: timestamp_pb2.Timestamp) -> str:
    """ISO 8601 in UTC with milliseconds and Z (customer notes, ShelfCycle)."""
    return f"{_utc_second(ts.seconds)}.{ts.nanos // 1_000_000:03d}Z"


@functools.lru_cache(maxsize=65_536)
def _utc_second(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).replace(tzinfo=None).isoformat()


def base_url(request: Request) -> str:
    """NOTES_PUBLIC_BASE_URL, or the base URL the request came in on."""
    configured = request.app.state.settings.public_base_url
    return (configured or str(request.base_url)).rstrip("/")


def authorization_header(request: Request) -> str | None:
    return request.headers.get("authorization")


# --- dialects ------------------------------------------------------------------------------

Render = Callable[[Failure, Request], Response]
Credentials = Callable[[Request], str | None | Awaitable[str | None]]
Handler = Callable[[Request, Call], Awaitable[Response]]


@dataclass(frozen=True)
class Dialect:
    """One legacy API: the surface it records, the path prefix it owns, and its error table.

    auth_first: an input error the gateway finds waits for a credentials check, so that a
    caller without valid credentials learns nothing else (as the real systems' auth middleware).
    """

    surface: str
    prefix: str
    render: Render
    credentials: Credentials = authorization_header
    auth_first: bool = True

    def respond(self, failure: Failure, request: Request) -> Response:
        """The dialect's error response, with the rules every dialect shares: a 429 always
        says when to retry."""
        response = self.render(failure, request)
        if response.status_code == 429 and "retry-after" not in response.headers:
            response.headers["Retry-After"] = str(failure.retry_after())
        return response

    def endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                authorization = self.credentials(request)
                if inspect.isawaitable(authorization):  # one that reads the body (OAuth forms)
                    authorization = await authorization
            except Failure as f:
                return self.respond(f, request)
            call = Call(request, self.surface, authorization)
            try:
                return await handler(request, call)
            except Failure as f:
                failure = f
                if f.local and self.auth_first and not call.authenticated:
                    try:
                        await call.check_credentials(write=request.method not in ("GET", "HEAD"))
                    except Failure as auth_failure:
                        failure = auth_failure
            except Exception as e:  # noqa: BLE001
                log.error(
                    "unexpected_error",
                    extra={
                        "error": type(e).__name__,
                        "method": request.method,
                        "dialect": self.surface,
                    },
                )
                failure = Failure(Code.INTERNAL, INTERNAL, "internal error", local=True)
            return self.respond(failure, request)

        endpoint.__name__ = handler.__name__
        return endpoint


def _plain_render(failure: Failure, request: Request) -> Response:
    return JSONResponse({"message": failure.described() or "error"}, failure.status)


_PLAIN = Dialect("", "/", _plain_render)


def owner(dialects: list[Dialect], path: str) -> Dialect:
    for dialect in dialects:
        if path.startswith(dialect.prefix):
            return dialect
    return _PLAIN


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def route_errors(dialects: list[Dialect]):
    """Starlette's 404 and 405, rendered by the dialect that owns the path."""

    async def handle(request: Request, exc: Exception) -> Response:
        dialect = owner(dialects, request.url.path)
        status = getattr(exc, "status_code", 500)
        if status == 405:
            failure = Failure(
                Code.UNIMPLEMENTED, METHOD_NOT_ALLOWED, f"{request.method} is not allowed here"
            )
        elif status == 404:
            failure = Failure(Code.NOT_FOUND, ROUTE_NOT_FOUND, "no route matches the URL")
        else:
            log.error(
                "unexpected_error", extra={"error": type(exc).__name__, "prefix": dialect.prefix}
            )
            failure = Failure(Code.INTERNAL, INTERNAL, "internal error")
        response = dialect.respond(failure, request)
        if failure.reason == METHOD_NOT_ALLOWED:  # also where the dialect answers 404
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    return handle


def headers_too_large() -> Failure:
    return Failure(
        Code.INVALID_ARGUMENT,
        HEADERS_TOO_LARGE,
        f"the request headers must be at most {HEADERS_LIMIT} bytes",
        local=True,
    )


class HeadersLimit:
    """ASGI middleware: a request whose headers pass HEADERS_LIMIT is answered 431 by the
    dialect that owns its path, before routing, and none of its headers reach the service."""

    def __init__(self, app: Any, dialects: list[Dialect]) -> None:
        self.app = app
        self.dialects = dialects

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > HEADERS_LIMIT:
                request = Request(scope, receive)
                dialect = owner(self.dialects, scope["path"])
                response = dialect.respond(headers_too_large(), request)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
