"""The unit of work: reading() and writing() make each block one use of a pooled connection,
writing() one transaction that is committed (visible to every reader) at the block's end or
rolled back; plus the SQL helpers every store module writes through."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator

import peewee as pw

from ..domain import cancellation
from ..domain.errors import StoreUnavailable
from ..telemetry import store as telemetry
from . import db

IntegrityError = pw.IntegrityError


@contextlib.contextmanager
def _unavailable_on_failure() -> Iterator[None]:
    try:
        yield
    except (pw.OperationalError, pw.InterfaceError) as exc:
        # Connection refused, server gone, SQLite still locked after the busy timeout:
        # the client may retry. The driver's message stays out of the reply. Idle pooled
        # connections may be as dead as this one, so they go too: the next call reconnects.
        with contextlib.suppress(Exception):
            db.current().database.close_idle()
        raise StoreUnavailable("the database is unavailable; retry later") from exc


@contextlib.contextmanager
def reading() -> Iterator[None]:
    """A pooled connection for the block; statements autocommit."""
    engine = db.current()
    database = engine.database
    with (
        _unavailable_on_failure(),
        database.connection_context(),
        telemetry.unit("read", engine.kind),
    ):
        cancellation.check()  # after any wait for a connection
        yield


# SQLite has one writer at a time. Writers queue here instead of sleeping in SQLite's busy
# handler, which backs off in steps of up to 100 ms: threads of this process on a lock, in
# order (CreateNote p99 534-734 ms -> 39-89 ms), and processes sharing the file (--workers,
# replicas) on an flock of a file beside it. SQLite's own lock stays the arbiter, so
# correctness never depends on these: a writer that does not take them (a migration, a bulk
# load) meets the busy timeout as before.
WRITE_WAIT_SECONDS = 10.0


class _SqliteWriters:
    def __init__(self) -> None:
        self._thread = threading.Lock()
        self._files: dict[str, int] = {}

    @contextlib.contextmanager
    def turn(self, path: str) -> Iterator[None]:
        started = time.perf_counter()
        if not self._thread.acquire(timeout=WRITE_WAIT_SECONDS):
            raise StoreUnavailable("the database is busy; retry later")
        try:
            fd = self._file(path)
            self._flock(fd)
            telemetry.writer_waited(time.perf_counter() - started)
            try:
                yield
            finally:
                if fd >= 0:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def _file(self, path: str) -> int:
        if path == ":memory:" or path.startswith("file:"):
            return -1
        if path not in self._files:
            try:
                self._files[path] = os.open(path + "-writer", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # a read-only directory, another user's file: queue on SQLite alone
                self._files[path] = -1
        return self._files[path]

    @staticmethod
    def _flock(fd: int) -> None:
        """Polls, in steps growing from 0.1 to 2 ms, for at most WRITE_WAIT_SECONDS: a holder
        that stopped without dying (SIGSTOP, a debugger) must not hold every writer of every
        other process past its deadline. A holder that dies releases it."""
        if fd < 0:
            return
        deadline = time.monotonic() + WRITE_WAIT_SECONDS
        pause = 0.0001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreUnavailable("the database is busy; retry later") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.002)


_SQLITE_WRITERS = _SqliteWriters()


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """One transaction for the block: committed at its end, rolled back on any exception, and
    also when the caller stopped waiting, before the work or before the commit."""
    engine = db.current()
    database = engine.database
    with (
        contextlib.nullcontext() if engine.is_postgres else _SQLITE_WRITERS.turn(database.database),
        _unavailable_on_failure(),
        database.connection_context(),
        telemetry.unit("write", engine.kind),
        database.atomic(),
    ):
        cancellation.check()  # after any wait for the writer's turn or a connection
        yield
        cancellation.check()  # a statement may have waited on a lock past the deadline


def _insert(table: str, rows: list[dict[str, object]], *, returning: str = "") -> int:
    """INSERT of rows (all with the same columns) as SQL text: Peewee's rendering of the four
    inserts of a CreateNote cost more than SQLite's executing them (profiled: about half).
    Returns the column named by returning of the last row (its autoincrement key)."""
    engine = db.current()
    param = engine.database.param
    columns = tuple(rows[0])
    marks = "(" + ", ".join([param] * len(columns)) + ")"
    names = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table}" ({names}) VALUES ' + ", ".join([marks] * len(rows))
    params = [row[c] for row in rows for c in columns]
    if not returning:
        engine.database.execute_sql(sql, params)
        return 0
    if engine.is_postgres:
        return engine.database.execute_sql(f'{sql} RETURNING "{returning}"', params).fetchone()[0]
    return engine.database.execute_sql(sql, params).lastrowid


def run_sql(sql: str, params: tuple | list = ()):
    """sql with ? placeholders, in the engine's own parameter style."""
    database = db.current().database
    return database.execute_sql(sql.replace("?", database.param), params)
