"""The unit of work: reading() and writing() make each block one use of a pooled connection,
writing() one transaction that is committed (visible to every reader) at the block's end or
rolled back; plus the SQL helpers every store module writes through."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
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


# SQLite has one writer at a time, and each commit waits for an fsync (synchronous=FULL).
# Writers of this process queue for the connection on a condition, in turn, instead of sleeping
# in SQLite's busy handler, which backs off in steps of up to 100 ms (CreateNote's p99 was those
# sleeps: docs/benchmarks.md); processes sharing the file (--workers, replicas) on an flock of a
# file beside it. SQLite's own lock stays the arbiter, so correctness never depends on these: a
# writer that does not take them (a migration, a bulk load) meets the busy timeout as before.
#
# Group commit: writers that queue while a transaction is open join it instead of each
# opening and fsyncing its own. Each writer's block runs alone on the group's connection inside
# a SAVEPOINT of its own, so a block that fails rolls back its own changes only and its caller
# gets its error at once; the last writer in line commits, and every writer whose block went
# in returns only after that COMMIT is durable, or gets StoreUnavailable if it failed (then
# none of the group's changes were committed). A request id, its response and its outbox
# events are written in one block, so they are committed together or not at all, as before.
WRITE_WAIT_SECONDS = 10.0
GROUP_MAX = 64  # writers in one transaction at most


class _Group:
    """One open transaction on one connection, shared by the writers that join it."""

    __slots__ = ("conn", "fd", "members", "broken", "done", "error")

    def __init__(self, conn, fd: int) -> None:
        self.conn, self.fd = conn, fd
        self.members = 0  # writers whose block went in and who wait for the commit
        self.broken = False  # SQLite rolled the whole transaction back (SQLITE_FULL, IOERR...)
        self.done = False
        self.error: BaseException | None = None


class _SqliteWriters:
    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._busy = False  # a writer has the connection: runs its block, or commits
        self._waiting = 0  # writers waiting for the connection
        self._group: _Group | None = None
        self._files: dict[str, int] = {}

    @contextlib.contextmanager
    def turn(self, database: pw.Database) -> Iterator[None]:
        """The block as one writer of a group: returns once the group's COMMIT is durable."""
        started = time.perf_counter()
        self._take(time.monotonic() + WRITE_WAIT_SECONDS)
        group = None
        try:
            group = self._group or self._open(database)
            telemetry.writer_waited(time.perf_counter() - started)
            with _bound(database, group.conn):
                _sql(group.conn, "SAVEPOINT writer")
                try:
                    yield
                    _sql(group.conn, "RELEASE writer")
                except BaseException:
                    self._undo(group)
                    raise
            group.members += 1
        except BaseException:
            self._pass_on(group, database)
            raise
        self._pass_on(group, database)
        with self._cv:
            while not group.done:
                self._cv.wait()
        if group.error is not None:
            raise pw.OperationalError("the group's commit failed") from group.error

    def _take(self, deadline: float) -> None:
        with self._cv:
            self._waiting += 1
            try:
                while self._busy:
                    remaining = deadline - time.monotonic()
                    timed_out = remaining <= 0 or not self._cv.wait(remaining)
                    if timed_out and self._busy:
                        raise StoreUnavailable("the database is busy; retry later")
                self._busy = True
            finally:
                self._waiting -= 1

    def _open(self, database: pw.Database) -> _Group:
        fd = self._file(database.database)
        self._flock(fd)
        conn = None
        try:
            conn = _checkout(database)
            _sql(conn, "BEGIN IMMEDIATE")
        except BaseException:
            if conn is not None:
                database._close(conn)
            if fd >= 0:
                fcntl.flock(fd, fcntl.LOCK_UN)
            raise
        self._group = _Group(conn, fd)
        return self._group

    @staticmethod
    def _undo(group: _Group) -> None:
        """After a writer's block failed: its changes go, the group's stay."""
        try:
            if group.conn.in_transaction:
                _sql(group.conn, "ROLLBACK TO writer")
                _sql(group.conn, "RELEASE writer")
                return
        except pw.DatabaseError:
            pass
        group.broken = True

    def _pass_on(self, group: _Group | None, database: pw.Database) -> None:
        """The connection goes to the next writer in line, who joins the group; with nobody
        in line (or a full or broken group) the group ends here: committed, or rolled back."""
        with self._cv:
            if group is None or (
                self._waiting > 0 and not group.broken and group.members < GROUP_MAX
            ):
                self._busy = False
                self._cv.notify_all()
                return
        try:
            self._end(group, database)
        finally:
            with self._cv:
                self._group = None
                group.done = True
                self._busy = False
                self._cv.notify_all()

    @staticmethod
    def _end(group: _Group, database: pw.Database) -> None:
        conn = group.conn
        try:
            if group.broken or group.members == 0:
                if conn.in_transaction:
                    _sql(conn, "ROLLBACK")
                if group.broken:
                    group.error = pw.OperationalError("the transaction was rolled back")
                    telemetry.rolled_back(group.members)
            else:
                try:
                    _sql(conn, "COMMIT")
                except BaseException as e:
                    group.error = e
                    telemetry.rolled_back(group.members)
                    with contextlib.suppress(Exception):
                        _sql(conn, "ROLLBACK")
        finally:
            database._close(conn, close_conn=group.error is not None)
            if group.fd >= 0:
                fcntl.flock(group.fd, fcntl.LOCK_UN)

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


def _sql(conn, sql: str) -> None:
    """A statement on a raw connection, failing as Peewee's statements fail."""
    try:
        conn.execute(sql)
    except sqlite3.Error as e:
        raise pw.OperationalError(str(e)) from e


def _checkout(database: pw.Database):
    """A pooled connection that belongs to no thread (the group's)."""
    state = database._state
    saved = (state.closed, state.conn, state.ctx, state.transactions, state.commit_callbacks)
    state.reset()
    try:
        database.connect()
        return state.conn
    finally:
        state.closed, state.conn, state.ctx, state.transactions, state.commit_callbacks = saved


@contextlib.contextmanager
def _bound(database: pw.Database, conn) -> Iterator[None]:
    """conn as this thread's connection for the block (Peewee keeps it per thread); a
    reading() inside the block uses it and leaves it open."""
    state = database._state
    saved = (state.closed, state.conn, state.ctx, state.transactions, state.commit_callbacks)
    state.set_connection(conn)
    state.ctx.append(None)
    try:
        yield
    finally:
        state.closed, state.conn, state.ctx, state.transactions, state.commit_callbacks = saved


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """One transaction for the block: committed at its end, rolled back on any exception, and
    also when the caller stopped waiting, before the work or before the commit. On SQLite the
    transaction may be shared with other writers' blocks (group commit, above); the block
    returns once it is durably committed, and fails alone."""
    engine = db.current()
    database = engine.database
    if engine.is_postgres:
        with (
            _unavailable_on_failure(),
            database.connection_context(),
            telemetry.unit("write", engine.kind),
            database.atomic(),
        ):
            cancellation.check()  # after any wait for a connection
            yield
            cancellation.check()  # a statement may have waited on a lock past the deadline
        return
    with (
        _unavailable_on_failure(),
        _SQLITE_WRITERS.turn(database),
        telemetry.unit("write", engine.kind),  # the block's use of the group's connection
    ):
        cancellation.check()  # after any wait for the writer's turn
        yield
        cancellation.check()


def _insert(table: str, rows: list[dict[str, object]], *, returning: str = "") -> int:
    """INSERT of rows (all with the same columns) as SQL text: Peewee's rendering of the four
    inserts of a CreateNote cost more than SQLite's executing them (docs/benchmarks.md).
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
