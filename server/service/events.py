"""The change feed's events: which a change emits, and what each carries.

Every change to a note appends its events in the change's own transaction (the outbox,
server/store/outbox.py), so an event exists if and only if the change committed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import ulid

from ..domain import cursors
from ..domain.cursors import Cursor
from ..domain.errors import EventCursorExpired, TooManyWatchers
from ..domain.model import Author, Note, Principal, SubjectRef, SubjectType, Surface, Visibility
from ..domain.validation import Violations, check_id, check_page_size
from ..store import outbox, uow
from . import webhooks
from .clock import now_us

CREATED = "note.created"
UPDATED = "note.updated"
DELETED = "note.deleted"
UNDELETED = "note.undeleted"
CUSTOMER_VISIBLE = "note.customer_visible"
ERASED = "note.erased"
TYPES = (CREATED, UPDATED, DELETED, UNDELETED, CUSTOMER_VISIBLE, ERASED)

_BY_ACTION = {"CREATE": CREATED, "UPDATE": UPDATED, "DELETE": DELETED, "UNDELETE": UNDELETED}


def new_event_id() -> str:
    return "evt_" + str(ulid.ULID())


def emitted(action: str, before: Note | None, after: Note) -> list[str]:
    """The event types a change emits: one per change, and note.customer_visible as well when
    the note becomes visible to the customer (created so, or updated from internal)."""
    types = [_BY_ACTION[action]]
    if (
        action in ("CREATE", "UPDATE")
        and after.visibility == Visibility.CUSTOMER
        and (before is None or before.visibility != Visibility.CUSTOMER)
    ):
        types.append(CUSTOMER_VISIBLE)
    return types


def _append(
    org: str,
    event_type: str,
    note: Note,
    actor: Author,
    *,
    surface: Surface,
    request_id: str,
    at: int,
    api_key_id: str = "",
    purpose: str = "",
) -> None:
    """Appends one event carrying note, and the webhook deliveries it is due."""
    assert note.subject is not None
    payload = {
        "note": note.to_json(),
        "actor": {"type": actor.type.value, "id": actor.id, "display_name": actor.display_name},
        "surface": surface.value,
        "request_id": request_id,
        "api_key_id": api_key_id,
        "purpose": purpose,
    }
    subject = (note.subject.type.value, note.subject.id, note.subject.parent_id)
    event_id = new_event_id()
    outbox.append(org, event_id, event_type, note.id, subject, at, payload)
    webhooks.fan_out(org, event_id, event_type, at)


def record(
    p: Principal,
    action: str,
    before: Note | None,
    after: Note,
    *,
    surface: Surface,
    request_id: str,
    at: int,
) -> None:
    """Inside the change's transaction: appends the change's events."""
    for event_type in emitted(action, before, after):
        _append(
            p.org,
            event_type,
            after,
            p.author,
            surface=surface,
            request_id=request_id,
            at=at,
            api_key_id=p.api_key_id,
            purpose=p.purpose,
        )
    # Before the commit, so a watcher woken now may find nothing yet; its next poll will.
    FEED.notify()


def record_erased(org: str, actor: Author, notes: list[Note], *, request_id: str, at: int) -> None:
    """Inside the erasure's transaction, after the notes' earlier events went with them: one
    note.erased per note, carrying its id, number and subject and nothing of its content."""
    for n in notes:
        stub = Note(id=n.id, number=n.number, org=org, subject=n.subject, author=actor)
        _append(org, ERASED, stub, actor, surface=Surface.GRPC, request_id=request_id, at=at)
    FEED.notify()


# --- Reading the feed: ListEvents and WatchEvents -------------------------------------------

PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1000
DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class EventQuery:
    after: str = ""
    page_size: int = 0
    types: tuple[str, ...] = ()
    subject: SubjectRef | None = None


@dataclass(frozen=True)
class FeedEvent:
    """A stored event and the cursor right after it."""

    stored: outbox.StoredEvent
    cursor: str


@dataclass(frozen=True)
class EventPage:
    events: list[FeedEvent]
    next_cursor: str


@dataclass(frozen=True)
class Heartbeat:
    cursor: str
    time: int  # microseconds since the epoch


def _start(q: EventQuery, retention_days: int) -> Cursor:
    """The validated query's starting cursor."""
    v = Violations()
    check_page_size(v, q.page_size)
    for i, t in enumerate(q.types):
        if t not in TYPES:
            v.add(f"types[{i}]", f"must be one of {', '.join(TYPES)}")
    if q.subject is not None:
        if not isinstance(q.subject.type, SubjectType):
            v.add("subject.type", "must be a known subject type")
        check_id(v, "subject.id", q.subject.id)
    v.raise_if_any()
    start = cursors.decode(q.after)
    if start is None:
        return cursors.BEGINNING
    if start.time < now_us() - retention_days * DAY_US:
        raise EventCursorExpired(
            f"the cursor is older than the {retention_days} days events are retained; start"
            " again from an empty cursor (and reconcile from the source of truth)",
            metadata={"retentionDays": str(retention_days)},
        )
    return start


def _read(org: str, start: Cursor, limit: int, q: EventQuery) -> tuple[list[FeedEvent], Cursor]:
    """Up to limit events after start, and the cursor reached: the last event's when the
    page is full, otherwise a position past everything committed when the read began (on
    PostgreSQL, outbox.horizon: a later commit can never sort before it)."""
    subject = (q.subject.type.value, q.subject.id) if q.subject is not None else None
    with uow.reading():
        mark = outbox.horizon()  # first: everything below it committed before the read
        rows = outbox.read(org, start.position, limit, types=list(q.types), subject=subject)
    page = [FeedEvent(r, Cursor(r.txid, r.seq, r.event_time).encode()) for r in rows]
    if len(rows) == limit:
        last = rows[-1]
        return page, Cursor(last.txid, last.seq, last.event_time)
    reached = max([start.position, mark] + [(r.txid, r.seq) for r in rows[-1:]])
    return page, Cursor(*reached, now_us())


def list_events(p: Principal, q: EventQuery, *, retention_days: int) -> EventPage:
    from .notes import READ, require

    require(p, READ)
    start = _start(q, retention_days)
    size = PAGE_SIZE_DEFAULT if q.page_size == 0 else min(q.page_size, PAGE_SIZE_MAX)
    page, reached = _read(p.org, start, size, q)
    return EventPage(page, reached.encode())


class Feed:
    """This process's watchers: woken when it appends an event, capped in number (each holds a
    server thread), and ended at shutdown."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._version = 0
        self._watchers = 0
        self.closed = False

    @property
    def version(self) -> int:
        return self._version

    def notify(self) -> None:
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def close(self) -> None:
        """Shutdown: every watch ends at once, and no new one begins."""
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Until an append after version seen, closing, or timeout."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != seen or self.closed, timeout)

    @contextlib.contextmanager
    def watcher(self, limit: int) -> Iterator[None]:
        with self._changed:
            if self._watchers >= limit:
                raise TooManyWatchers(
                    f"this server already serves {limit} WatchEvents streams; retry later or"
                    " poll ListEvents",
                    metadata={"maxWatchers": str(limit)},
                )
            self._watchers += 1
        try:
            yield
        finally:
            with self._changed:
                self._watchers -= 1


FEED = Feed()
WATCH_BATCH = 500


def watch(
    p: Principal,
    q: EventQuery,
    *,
    active: Callable[[], bool],
    retention_days: int,
    heartbeat_seconds: float,
    poll_seconds: float,
    max_watchers: int,
) -> Iterator[FeedEvent | Heartbeat]:
    """What list_events would return, then each event as it commits; a heartbeat with the
    cursor reached once caught up and then every heartbeat_seconds. Ends when active() turns
    false (the client left) or the feed closes (shutdown): the client resumes from its last
    cursor."""
    from .notes import READ, require

    require(p, READ)
    position = _start(q, retention_days)
    with FEED.watcher(max_watchers):
        next_beat = 0.0
        while active() and not FEED.closed:
            seen = FEED.version
            page, position = _read(p.org, position, WATCH_BATCH, q)
            yield from page
            if len(page) == WATCH_BATCH:
                continue
            now = time.monotonic()
            if now >= next_beat:
                yield Heartbeat(position.encode(), now_us())
                next_beat = now + heartbeat_seconds
            FEED.wait(seen, min(poll_seconds, max(0.0, next_beat - now)))


def purge_expired(retention_days: int, batch: int = 1000) -> int:
    """Deletes events older than the retention period, a batch per transaction (short write
    locks; several replicas purging at once only delete fewer each); returns how many."""
    cutoff = now_us() - retention_days * DAY_US
    total = 0
    while True:
        with uow.writing():
            purged = outbox.purge(cutoff, batch)
        total += purged
        if purged < batch:
            return total
