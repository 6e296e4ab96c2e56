"""Opening the database named by a URL: SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import select
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlparse

import peewee
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

try:
    from psycopg.pq import TransactionStatus

    _IDLE = TransactionStatus.IDLE
except ImportError:  # PostgreSQL's driver is an extra: serving SQLite never installs it
    _IDLE = None

DEFAULT_URL = "sqlite:///var/notes.db"

# Models are bound to this proxy; open() fills it.
proxy = peewee.DatabaseProxy()


@dataclass(frozen=True)
class Engine:
    database: peewee.Database
    kind: str  # "sqlite" or "postgres"
    schema: str = ""

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgres"


_current: Engine | None = None


def current() -> Engine:
    if _current is None:
        raise RuntimeError("the store is not open")
    return _current


def open_database(url: str, *, pool_size: int = 16, statement_timeout_ms: int = 0) -> Engine:
    """Connects the models to the database at url. Connections are pooled per thread.
    PostgreSQL cuts a statement that runs (or waits for a lock) past statement_timeout_ms,
    so that a stalled database holds no worker for ever; 0 leaves it unbounded."""
    global _current
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)
        if not path:
            raise ValueError("a sqlite URL needs a file path, e.g. sqlite:///var/notes.db")
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        db = PooledSqliteDatabase(
            path,
            max_connections=pool_size,
            stale_timeout=300,
            timeout=10,
            check_same_thread=False,
            # Every write transaction takes the write lock up front, so two writers queue on
            # the busy timeout instead of failing to upgrade a read lock.
            lock_type="IMMEDIATE",
            pragmas={
                "journal_mode": "wal",
                "synchronous": "full",
                "busy_timeout": 10_000,
                "foreign_keys": 1,
                "cache_size": -32_000,
                # Freed space is overwritten with zeros, so an erased note leaves no bytes
                # behind in the file (README: Erasure).
                "secure_delete": 1,
            },
        )
        # Case-insensitive containment beyond ASCII (SQLite's LIKE and lower() fold ASCII
        # only): the scan behind customer notes' q within a subject, for non-ASCII text.
        db.register_function(contains_folded, "notes_contains", 2, deterministic=True)
        # The same folding, kept per note by the note_texts triggers (migration 12).
        db.register_function(folded, "notes_fold", 1, deterministic=True)
        engine = Engine(db, "sqlite")
    elif parsed.scheme in ("postgres", "postgresql"):
        _require_psycopg()
        params = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        schema = params.pop("schema", "")
        kwargs: dict[str, object] = {
            "host": parsed.hostname or "127.0.0.1",
            "port": parsed.port or 5432,
            "user": unquote(parsed.username) if parsed.username else None,
            "password": unquote(parsed.password) if parsed.password else None,
            "connect_timeout": int(params.pop("connect_timeout", "5")),
        }
        options = []
        if schema:
            options.append(f"-c search_path={schema}")
        if statement_timeout_ms > 0:
            options.append(f"-c statement_timeout={int(statement_timeout_ms)}")
        if options:
            kwargs["options"] = " ".join(options)
        kwargs.update(params)
        db = _PooledPostgres(
            parsed.path.lstrip("/") or "postgres",
            max_connections=pool_size,
            stale_timeout=300,
            timeout=10,
            **{k: v for k, v in kwargs.items() if v is not None},
        )
        engine = Engine(db, "postgres", schema)
    else:
        raise ValueError(f"unsupported database URL scheme {parsed.scheme!r}")
    proxy.initialize(db)
    _current = engine
    return engine


class _PooledPostgres(PooledPostgresqlDatabase):
    """Peewee's pool asks every idle connection `SELECT 1` when it is checked out, to learn
    whether the server still has it: a second round trip for a read that is one SELECT,
    made under the lock every thread's checkout takes (its cost under load is in
    docs/benchmarks.md, "PostgreSQL reads: one round trip each").
    A connection the server has closed (a restart, pg_terminate_backend, an idle timeout)
    has something to read on its socket, the server's goodbye or the end of the stream,
    where a live idle connection in autocommit has nothing to say. So the socket is looked
    at without waiting, and the server is asked only when there is something to read."""

    def _is_closed(self, conn) -> bool:
        if conn.closed or conn.broken:
            return True
        if conn.pgconn.transaction_status == _IDLE and not _readable(conn.fileno()):
            return False
        return super()._is_closed(conn)


def _readable(fd: int) -> bool:
    poller = select.poll()  # not select(): a serving process may hold descriptors past 1024
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _require_psycopg() -> None:
    """PostgreSQL's driver is an extra: serving SQLite never installs it."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ValueError(
            "a PostgreSQL database URL needs PostgreSQL's driver: "
            "pip install 'notes-service[postgres]'"
        ) from None


def warm(count: int) -> None:
    """Opens count pooled connections now (each thread of its own holds one at once) and
    leaves them idle in the pool: a serving process then needs no new descriptor for its
    database when a flood of client connections has taken every one left."""
    database = current().database
    barrier = threading.Barrier(count)

    def hold() -> None:
        with contextlib.suppress(Exception), database.connection_context():
            database.execute_sql("SELECT 1")
            barrier.wait(timeout=10)

    threads = [threading.Thread(target=hold) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def contains_folded(haystack: str | None, needle: str | None) -> int:
    """Whether haystack contains needle, both lower-cased letter by letter (as PostgreSQL's
    lower(), so both engines find the same notes)."""
    if haystack is None or needle is None:
        return 0
    return int(needle.lower() in haystack.lower())


def folded(text: str | None) -> str | None:
    """text lower-cased letter by letter, as contains_folded compares it."""
    return None if text is None else text.lower()


def close() -> None:
    global _current
    if _current is not None:
        _current.database.close_all()
        _current = None


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    parsed = urlparse(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return url
