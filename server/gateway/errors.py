"""Failures as data: a gRPC code, an ErrorInfo reason and details. Service errors arrive as
these (from_rpc_error); the gateway raises its own (local=True). Each dialect's error table
turns one into that dialect's status and body; nothing else decides a status."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

from ..domain import errors as domain
from .subjects import SUBJECT_TYPE_NAMES

Code = grpc.StatusCode
RETRY_AFTER_DEFAULT = 1  # seconds, when the service gives no retry information (overload)

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
INVALID_ARGUMENT = domain.ValidationFailed.reason
INTERNAL = "INTERNAL"
# Local reasons whose HTTP status is not their code's.
REASON_STATUS = {BODY_TOO_LARGE: 413, HEADERS_TOO_LARGE: 431}


@dataclass(eq=False)
class Failure(Exception):
    """A request that did not succeed: a gRPC code, an ErrorInfo reason and details."""

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


def malformed(description: str) -> Failure:
    return Failure(Code.INVALID_ARGUMENT, MALFORMED_JSON, description, local=True)


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


def note_not_found(note_id: str) -> Failure:
    return Failure(
        Code.NOT_FOUND, domain.NoteNotFound.reason, metadata={"noteId": note_id}, local=True
    )


def subject_not_found(subject_type: int, subject_id: str, field_name: str = "subject") -> Failure:
    return Failure(
        Code.NOT_FOUND,
        domain.SubjectNotFound.reason,
        metadata={
            "field": field_name,
            "subjectType": SUBJECT_TYPE_NAMES.get(subject_type, ""),
            "subjectId": subject_id,
        },
        local=True,
    )


def subject_ids_as_not_found(f: Failure, subject) -> Failure:
    """A path's subject id the service refuses as input is a record that does not exist,
    unless other fields are wrong too: those are reported first."""
    if f.code != Code.INVALID_ARGUMENT or not f.violations:
        return f
    others = [(n, d) for n, d in f.violations if not n.startswith("subject")]
    if others:
        f.violations = others
        return f
    return subject_not_found(subject.type, subject.id)
