"""The one table from domain errors to gRPC status codes, with rich error details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..domain.errors import DomainError, Kind, RateLimited, ValidationFailed

DOMAIN = "notes.v1"
# gRPC refuses trailers past 16 KiB (as RESOURCE_EXHAUSTED, which would read as a 429): a
# request with hundreds of bad fields gets the first ones and a count of the rest.
VIOLATIONS_SENT = 50

CODES: dict[Kind, grpc.StatusCode] = {
    Kind.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Kind.CONFLICT: grpc.StatusCode.ABORTED,
    Kind.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Kind.PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Kind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Kind.PERMISSION: grpc.StatusCode.PERMISSION_DENIED,
    Kind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Kind.EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Kind.DEADLINE: grpc.StatusCode.DEADLINE_EXCEEDED,
    Kind.CANCELLED: grpc.StatusCode.CANCELLED,
}


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def capped(violations) -> list[tuple[str, str]]:
    """The first VIOLATIONS_SENT violations, then one that counts the ones left out."""
    violations = list(violations)
    if len(violations) <= VIOLATIONS_SENT:
        return violations
    left_out = len(violations) - VIOLATIONS_SENT
    return [*violations[:VIOLATIONS_SENT], ("", f"and {left_out} more violations")]


def build(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    metadata=None,
    violations=(),
    retry_after: float | None = None,
):
    details = [
        _pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata or {}))
    ]
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(max(1, int(retry_after * 1000)))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    if violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                        for f, d in capped(violations)
                    ]
                )
            )
        )
    if len(message) > 1024:
        message = message[:1021] + "..."  # the message travels in the same trailers
    proto = status_pb2.Status(code=code.value[0], message=message, details=details)
    return rpc_status.to_status(proto)


def from_error(error: DomainError) -> grpc.Status:
    violations = error.violations if isinstance(error, ValidationFailed) else ()
    retry_after = error.retry_after if isinstance(error, RateLimited) else None
    return build(
        CODES[error.kind], error.message, error.reason, error.metadata, violations, retry_after
    )


def internal() -> grpc.Status:
    return build(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL")
