"""Request ids: the stored response of each request that carried one, and the guard
against two transactions of the same request id at once."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from ..domain.errors import RequestInFlight
from . import db
from .models import RequestRow
from .uow import _insert, writing


def _in_flight() -> RequestInFlight:
    return RequestInFlight("a request with this request_id is still in progress; retry")


class _RequestsInFlight:
    """SQLite: the request ids of this process whose transaction waits for, or holds, the
    writer's turn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: set[tuple[str, str, str]] = set()

    @contextlib.contextmanager
    def claim(self, key: tuple[str, str, str]) -> Iterator[None]:
        with self._lock:
            if key in self._keys:
                raise _in_flight()
            self._keys.add(key)
        try:
            yield
        finally:
            with self._lock:
                self._keys.discard(key)


_REQUESTS_IN_FLIGHT = _RequestsInFlight()


@contextlib.contextmanager
def writing_request(org: str, method: str, request_id: str) -> Iterator[None]:
    """writing() for a request that carries a request id: RequestInFlight (ABORTED) while
    another transaction of the same (org, method, request id) is under way.

    PostgreSQL decides across replicas with a transaction-scoped advisory lock, released at
    commit or rollback, crash included. SQLite runs one write transaction at a time, so the
    database never sees two: a duplicate from this process is refused while the first is
    queued or running, and one from another process on the same file waits for the first to
    commit and then finds it as a completed request. Either way the primary key of request_ids
    is what makes a request id create at most once.
    """
    if not db.current().is_postgres:
        with _REQUESTS_IN_FLIGHT.claim((org, method, request_id)), writing():
            yield
        return
    with writing():
        key = f"{org}\x1f{method}\x1f{request_id}"
        got = (
            db.current()
            .database.execute_sql(
                "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", (key,)
            )
            .fetchone()[0]
        )
        if not got:
            raise _in_flight()
        yield


def find_request(org: str, method: str, request_id: str) -> tuple[str, str] | None:
    database = db.current().database
    sql = (
        'SELECT "fingerprint", "response" FROM "request_ids"'
        ' WHERE "org" = ? AND "method" = ? AND "request_id" = ?'
    ).replace("?", database.param)
    row = database.execute_sql(sql, (org, method, request_id)).fetchone()
    return (row[0], row[1]) if row else None


def save_request(org: str, method: str, request_id: str, fingerprint: str, response: str, now):
    _insert(
        "request_ids",
        [
            {
                "org": org,
                "method": method,
                "request_id": request_id,
                "fingerprint": fingerprint,
                "response": response,
                "create_time": now,
            }
        ],
    )


def purge_requests(older_than: int) -> int:
    return RequestRow.delete().where(RequestRow.create_time < older_than).execute()
