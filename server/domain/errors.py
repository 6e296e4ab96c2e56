"""Domain errors. Each carries a reason (ErrorInfo) and a kind the transports map to a status."""

from __future__ import annotations

import enum
import math


class Kind(enum.Enum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"  # stale version, request in flight
    ALREADY_EXISTS = "already_exists"
    PRECONDITION = "precondition"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION = "permission"
    UNAVAILABLE = "unavailable"
    EXHAUSTED = "exhausted"
    DEADLINE = "deadline"
    CANCELLED = "cancelled"


class DomainError(Exception):
    kind: Kind = Kind.INVALID
    reason: str = "INVALID"

    def __init__(
        self, message: str, *, metadata: dict[str, str] | None = None, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata or {}
        if reason:
            self.reason = reason


class ValidationFailed(DomainError):
    kind = Kind.INVALID
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {d}" for f, d in violations))
        self.violations = violations


class NotFound(DomainError):
    kind = Kind.NOT_FOUND
    reason = "NOT_FOUND"


class NoteNotFound(NotFound):
    reason = "NOTE_NOT_FOUND"


class SubjectNotFound(NotFound):
    reason = "SUBJECT_NOT_FOUND"


class SubjectArchived(DomainError):
    kind = Kind.PRECONDITION
    reason = "SUBJECT_ARCHIVED"


class SubjectParentMismatch(DomainError):
    kind = Kind.PRECONDITION
    reason = "SUBJECT_PARENT_MISMATCH"


class VersionConflict(DomainError):
    kind = Kind.CONFLICT
    reason = "VERSION_MISMATCH"

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"expected version {expected} but the note is at version {current}",
            metadata={"expectedVersion": str(expected), "currentVersion": str(current)},
        )
        self.current = current


class RequestInFlight(DomainError):
    kind = Kind.CONFLICT
    reason = "REQUEST_IN_FLIGHT"


class RequestIdReused(DomainError):
    kind = Kind.PRECONDITION
    reason = "REQUEST_ID_REUSED"


class NotDeleted(DomainError):
    kind = Kind.ALREADY_EXISTS
    reason = "NOTE_NOT_DELETED"


class NoteDeleted(DomainError):
    kind = Kind.PRECONDITION
    reason = "NOTE_DELETED"


class Unauthenticated(DomainError):
    kind = Kind.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    kind = Kind.PERMISSION
    reason = "MISSING_SCOPE"


class StoreUnavailable(DomainError):
    kind = Kind.UNAVAILABLE
    reason = "STORE_UNAVAILABLE"


class RateLimited(DomainError):
    kind = Kind.EXHAUSTED
    reason = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: float) -> None:
        # Rounded up: a client that waits the advertised time must find a token.
        seconds = max(1, math.ceil(retry_after))
        super().__init__(message, metadata={"retryAfterSeconds": str(seconds)})
        self.retry_after = retry_after


class DeadlineExceeded(DomainError):
    kind = Kind.DEADLINE
    reason = "DEADLINE_EXCEEDED"


class CallerGone(DomainError):
    kind = Kind.CANCELLED
    reason = "CALLER_GONE"


class EventCursorExpired(DomainError):
    """A change-feed cursor older than the retention period: events after it may be gone."""

    kind = Kind.PRECONDITION
    reason = "EVENT_CURSOR_EXPIRED"


class TooManyWatchers(DomainError):
    kind = Kind.EXHAUSTED
    reason = "TOO_MANY_WATCHERS"


# Reasons of Unauthenticated, as the credentials rules raise them (service/credentials.py).
CREDENTIALS_MISSING = "CREDENTIALS_MISSING"
CREDENTIALS_MALFORMED = "CREDENTIALS_MALFORMED"
API_KEY_INVALID = "API_KEY_INVALID"
API_KEY_REVOKED = "API_KEY_REVOKED"
API_KEY_EXPIRED = "API_KEY_EXPIRED"
TOKEN_INVALID = "TOKEN_INVALID"
TOKEN_EXPIRED = "TOKEN_EXPIRED"
OAUTH_PARAMETER_MISSING = "OAUTH_PARAMETER_MISSING"
OAUTH_CONSUMER_KEY_INVALID = "OAUTH_CONSUMER_KEY_INVALID"
OAUTH_SIGNATURE_INVALID = "OAUTH_SIGNATURE_INVALID"
OAUTH_SIGNATURE_METHOD_INVALID = "OAUTH_SIGNATURE_METHOD_INVALID"
OAUTH_TIMESTAMP_INVALID = "OAUTH_TIMESTAMP_INVALID"
OAUTH_NONCE_USED = "OAUTH_NONCE_USED"
