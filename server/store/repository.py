"""Queries over the models. Every function takes the organization and filters by it."""

from __future__ import annotations

import collections
import contextlib
import fcntl
import functools
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator

import peewee as pw

from ..domain import cancellation, search
from ..domain.errors import RequestInFlight, StoreUnavailable
from ..domain.model import (
    Author,
    AuthorType,
    ListQuery,
    Note,
    NoteEvent,
    NoteType,
    Subject,
    SubjectRef,
    SubjectType,
    Surface,
    Visibility,
)
from ..memo import Memo
from ..telemetry import store as telemetry
from . import db
from .models import (
    ApiKeyRow,
    NoteEventRow,
    NoteLinkRow,
    NoteRow,
    NoteTagRow,
    RequestRow,
    SubjectRow,
)

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


# --- subjects ---------------------------------------------------------------------------


# Subjects are read by every note written and every gateway list: plain SQL, as notes are.
_SUBJECTS = (
    'SELECT "type", "external_id", "parent_id", "display_name", "create_time", "update_time",'
    ' "archive_time" FROM "subjects" WHERE "org" = ? AND '
)


def _subject(row: tuple) -> Subject:
    kind, subject_id, parent_id, display_name, created, updated, archived = row
    return Subject(
        type=SubjectType(kind),
        id=subject_id,
        parent_id=parent_id,
        display_name=display_name,
        create_time=created,
        update_time=updated,
        archive_time=archived,
    )


def _subject_rows(where: str, params: tuple) -> list[tuple]:
    database = db.current().database
    sql = (_SUBJECTS + where).replace("?", database.param)
    return database.execute_sql(sql, params).fetchall()


def get_subject(org: str, subject_type: SubjectType, subject_id: str) -> Subject | None:
    rows = _subject_rows(
        '"type" = ? AND "external_id" = ? LIMIT 1', (org, subject_type.value, subject_id)
    )
    return _subject(rows[0]) if rows else None


def get_subjects(org: str, refs: list[SubjectRef]) -> dict[tuple[str, str], Subject]:
    """Inside a write transaction: the subjects a note is about to attach to. PostgreSQL reads
    them FOR SHARE, so an ArchiveSubject committing meanwhile either waits for the note or is
    seen by it (SQLite runs one write transaction at a time)."""
    if not refs:
        return {}
    ids = sorted({r.id for r in refs})
    where = f'"external_id" IN ({", ".join(["?"] * len(ids))})'
    if db.current().is_postgres:
        where += " FOR SHARE"
    rows = _subject_rows(where, (org, *ids))
    return {(row[0], row[1]): _subject(row) for row in rows}


def insert_subject(org: str, s: Subject) -> None:
    SubjectRow.insert(
        org=org,
        type=s.type.value,
        external_id=s.id,
        parent_id=s.parent_id,
        display_name=s.display_name,
        create_time=s.create_time,
        update_time=s.update_time,
    ).execute()


def update_subject(org: str, s: Subject) -> None:
    (
        SubjectRow.update(
            display_name=s.display_name, update_time=s.update_time, archive_time=s.archive_time
        )
        .where(
            (SubjectRow.org == org)
            & (SubjectRow.type == s.type.value)
            & (SubjectRow.external_id == s.id)
        )
        .execute()
    )


# --- notes ------------------------------------------------------------------------------


# Notes are read as plain tuples by SQL written here, not rendered by Peewee per call: building
# the 26-column selection and a model instance per row was most of GetNote's time (profiled:
# ~75%), and rendering a list's query cost more than SQLite's running it.
_NOTE_COLUMNS = [f.column_name for f in NoteRow._meta.sorted_fields]
_SELECT_NOTES = "SELECT " + ", ".join(f'"{c}"' for c in _NOTE_COLUMNS) + ' FROM "notes" WHERE '
_NoteTuple = collections.namedtuple("_NoteTuple", [f.name for f in NoteRow._meta.sorted_fields])
_ORG, _NUMBER, _VERSION = (_NOTE_COLUMNS.index(c) for c in ("org", "number", "version"))

# A row decodes to the same Note for as long as its version stands (every change bumps it), so
# decoded notes are kept by (org, number, version): a list of 50 notes decoded 1.0 ms of its
# 2.0 ms. Notes handed out are shared; callers change copies (dataclasses.replace), never them.
DECODED: Memo[Note] = Memo()


def _decode_all(rows: list[tuple]) -> list[Note]:
    """Straight from the driver's rows: every column is text or an integer already."""
    notes = []
    for values in rows:
        key = (values[_ORG], values[_NUMBER], values[_VERSION])
        note = DECODED.get(key)
        notes.append(note if note is not None else DECODED.put(key, _note(values)))
    return notes


def _note(values: tuple) -> Note:
    row = _NoteTuple._make(values)
    parent = row.subject_parent_id
    return Note(
        id=row.id,
        number=row.org_number,
        row=row.number,
        org=row.org,
        subject=SubjectRef(SubjectType(row.subject_type), row.subject_id, parent),
        linked_records=[SubjectRef(SubjectType(r[0]), *r[1:]) for r in json.loads(row.links)],
        note_type=NoteType(row.note_type),
        title=row.title,
        body=row.body,
        visibility=Visibility(row.visibility),
        tags=json.loads(row.tags),
        metadata=json.loads(row.metadata),
        source=row.source,
        source_type=row.source_type,
        author=Author(AuthorType(row.author_type), row.author_id, row.author_name),
        created_via=Surface(row.created_via),
        api_key_id=row.api_key_id,
        purpose=row.purpose,
        happened_at=row.happened_at,
        create_time=row.create_time,
        update_time=row.update_time,
        delete_time=row.delete_time,
        version=row.version,
    )


def _link(ref: SubjectRef) -> list[str]:
    """[type, id], and the order of an order item."""
    return [ref.type.value, ref.id, ref.parent_id] if ref.parent_id else [ref.type.value, ref.id]


def _columns(n: Note) -> dict[str, object]:
    return {
        "note_type": n.note_type.value,
        "title": n.title,
        "body": n.body,
        "visibility": n.visibility.value,
        "tags": json.dumps(n.tags, ensure_ascii=False),
        "links": json.dumps([_link(r) for r in n.linked_records], ensure_ascii=False),
        "metadata": json.dumps(n.metadata, ensure_ascii=False, separators=(",", ":")),
        "source": n.source,
        "source_type": n.source_type,
        "happened_at": n.happened_at,
        "update_time": n.update_time,
        "delete_time": n.delete_time,
        "version": n.version,
    }


def next_org_number(org: str) -> int:
    """The organization's next note number. The counter's row stays locked until the
    transaction ends (PostgreSQL; SQLite has one writer), so concurrent creates, on any
    replica, get consecutive numbers, and one rolled back gives its number back."""
    database = db.current().database
    sql = (
        'INSERT INTO "org_counters" ("org", "last") VALUES (?, 1) ON CONFLICT ("org")'
        ' DO UPDATE SET "last" = "org_counters"."last" + 1 RETURNING "last"'
    ).replace("?", database.param)
    return int(database.execute_sql(sql, (org,)).fetchone()[0])


def note_row(org: str, n: Note) -> dict[str, object]:
    """The columns of a new note's row, but its keys (number and org_number)."""
    assert n.subject is not None and n.author is not None
    return {
        "id": n.id,
        "org": org,
        "subject_type": n.subject.type.value,
        "subject_id": n.subject.id,
        "subject_parent_id": n.subject.parent_id,
        "author_type": n.author.type.value,
        "author_id": n.author.id,
        "author_name": n.author.display_name,
        "created_via": n.created_via.value,
        "api_key_id": n.api_key_id,
        "purpose": n.purpose,
        "create_time": n.create_time,
        **_columns(n),
    }


def insert_note(org: str, n: Note) -> tuple[int, int]:
    """Inserts the note with its index rows; returns its row key and its number."""
    row = {**note_row(org, n), "org_number": next_org_number(org)}
    key = int(_insert("notes", [row], returning="number"))
    _write_index_rows(org, key, n)
    return key, int(row["org_number"])


def _write_index_rows(org: str, number: int, n: Note) -> None:
    if n.linked_records:
        _insert(
            "note_links",
            [
                {"note_number": number, "org": org, "type": r.type.value, "record_id": r.id}
                for r in n.linked_records
            ],
        )
    if n.tags:
        _insert("note_tags", [{"note_number": number, "org": org, "tag": t} for t in n.tags])


def update_note(org: str, n: Note, *, read_version: int, index_changed: bool) -> bool:
    """Writes n over the stored note if it is still at read_version; False if it moved on."""
    changed = (
        NoteRow.update(**_columns(n))
        .where((NoteRow.org == org) & (NoteRow.number == n.row))
        .where(NoteRow.version == read_version)
        .execute()
    )
    if changed and index_changed:
        NoteLinkRow.delete().where(NoteLinkRow.note_number == n.row).execute()
        NoteTagRow.delete().where(NoteTagRow.note_number == n.row).execute()
        _write_index_rows(org, n.row, n)
    return bool(changed)


@functools.cache
def _get_note_sql(by: str, param: str, for_update: bool) -> str:
    lock = " FOR UPDATE" if for_update else ""
    return f'{_SELECT_NOTES}"org" = {param} AND "{by}" = {param} LIMIT 1{lock}'


def get_note(org: str, *, note_id: str = "", number: int = 0, for_update: bool = False):
    engine = db.current()
    sql = _get_note_sql(
        "id" if note_id else "org_number", engine.database.param, for_update and engine.is_postgres
    )
    rows = engine.database.execute_sql(sql, (org, note_id or number)).fetchall()
    return _decode_all(rows)[0] if rows else None


class _Where:
    """A list's WHERE clause as SQL text and its parameters."""

    def __init__(self, param: str) -> None:
        self.param = param
        self.parts: list[str] = []
        self.params: list[object] = []

    def add(self, sql: str, *params: object) -> None:
        self.parts.append(sql.replace("?", self.param))
        self.params.extend(params)

    def marks(self, values: list) -> str:
        return ", ".join([self.param] * len(values))

    @property
    def sql(self) -> str:
        return " AND ".join(self.parts)


def _filtered(org: str, q: ListQuery, *, fts_driven: bool = False) -> _Where:
    engine = db.current()
    w = _Where(engine.database.param)
    w.add('"org" = ?', org)
    if q.subject is not None:
        s = q.subject
        if q.include_children:
            w.add(
                '(("subject_type" = ? AND "subject_id" = ?)'
                ' OR ("subject_parent_id" = ? AND "subject_type" = ?))',
                s.type.value,
                s.id,
                s.id,
                SubjectType.ORDER_ITEM.value,
            )
        else:
            w.add('"subject_type" = ? AND "subject_id" = ?', s.type.value, s.id)
    if q.linked_record is not None:
        r = q.linked_record
        w.add(
            '"number" IN (SELECT "note_number" FROM "note_links"'
            ' WHERE "org" = ? AND "type" = ? AND "record_id" = ?)',
            org,
            r.type.value,
            r.id,
        )
    if q.author_ids:
        w.add(f'"author_id" IN ({w.marks(q.author_ids)})', *q.author_ids)
    if q.visibility is not None:
        w.add('"visibility" = ?', q.visibility.value)
    if q.note_types:
        w.add(f'"note_type" IN ({w.marks(q.note_types)})', *(t.value for t in q.note_types))
    if q.tags:
        w.add(
            f'"number" IN (SELECT "note_number" FROM "note_tags"'
            f' WHERE "org" = ? AND "tag" IN ({w.marks(q.tags)}))',
            org,
            *q.tags,
        )
    if q.query:
        _match(w, search.parse(q.query), engine.is_postgres, fts_driven)
    if q.contains:
        _contains(w, q.contains, engine.is_postgres, narrowed=q.subject is not None)
    if not q.show_deleted:
        w.add('"delete_time" IS NULL')
    return w


def _match(w: _Where, terms: list[search.Term], postgres: bool, fts_driven: bool) -> None:
    if postgres:
        parts, params = [], []
        for t in terms:
            if t.prefix:
                parts.append("to_tsquery('simple', ?)")
                params.append(f"'{t.words[0]}':*")
            else:
                parts.append("phraseto_tsquery('simple', ?)")
                params.append(" ".join(t.words))
        w.add('"search" @@ (' + " && ".join(parts) + ")", *params)
        return
    fts = " AND ".join('"' + " ".join(t.words) + '"' + ("*" if t.prefix else "") for t in terms)
    if fts_driven:
        w.add('"notes_fts" MATCH ?', fts)
    else:
        w.add('"number" IN (SELECT rowid FROM notes_fts WHERE notes_fts MATCH ?)', fts)


TRIGRAM = 3  # the shortest text a trigram index can look up


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _contains(w: _Where, text: str, postgres: bool, *, narrowed: bool) -> None:
    """Title or body containing text, case-insensitively. Three characters or more go through
    a trigram index (SQLite FTS5 trigram, PostgreSQL pg_trgm); shorter text cannot use one and
    is a scan of the notes the other filters leave (a subject's, for customer notes)."""
    if postgres:
        haystack = 'lower("title" || \' \' || "body")'  # notes_contains indexes this
        if len(text) >= TRIGRAM:
            w.add(f"{haystack} LIKE lower(?)", _like(text))
        else:
            w.add(f"strpos({haystack}, lower(?)) > 0", text)
        return
    if len(text) < TRIGRAM or narrowed:
        # A subject's notes are scanned: the cost follows the subject, never how common the
        # text is across every organization. (Looking each of them up in the trigram index
        # by rowid re-reads a common trigram's whole doclist per note: minutes for 10,000
        # notes at 1M.)
        w.add('notes_contains("title" || \' \' || "body", ?)', text)
        return
    phrase = '"' + text.replace('"', '""') + '"'
    w.add('"number" IN (SELECT rowid FROM notes_trgm WHERE notes_trgm MATCH ?)', phrase)


# A search with nothing narrower to go by (no subject, linked record or tag) walks the FTS
# index newest first and stops at the page's end, instead of collecting every match first
# (27,418 notes for one common word at 1M notes).
_FROM_FTS = '"notes_fts" JOIN "notes" ON "notes"."number" = "notes_fts"."rowid"'
_ALL_COLUMNS = ", ".join(f'"notes"."{c}"' for c in _NOTE_COLUMNS)


def _fts_driven(q: ListQuery) -> bool:
    return bool(
        q.query
        and not q.contains
        and q.subject is None
        and q.linked_record is None
        and not q.tags
        and not db.current().is_postgres
    )


def list_notes(org: str, q: ListQuery, *, before: int, limit: int, offset: int) -> list[Note]:
    fts_driven = _fts_driven(q)
    w = _filtered(org, q, fts_driven=fts_driven)
    source, number = (_FROM_FTS, '"notes_fts"."rowid"') if fts_driven else ('"notes"', '"number"')
    if before:
        w.add(f"{number} < ?", before)
    page = f"FROM {source} WHERE {w.sql} ORDER BY {number} DESC LIMIT {int(limit)}"
    if offset:
        page += f" OFFSET {int(offset)}"
    if db.current().is_postgres:
        rows = db.current().database.execute_sql(f"SELECT {_ALL_COLUMNS} {page}", w.params)
        return _decode_all(rows.fetchall())
    return _list_sqlite(org, page, w.params)


# Python's sqlite3 module lets go of the GIL for every row it steps through, and with other
# threads busy each step can wait a whole switch interval to get it back: 16 threads listing
# 50 notes managed 425 lists/s where one thread managed 3,027. So SQLite answers a page in one
# row: the page's (number, version) pairs as one JSON array, then, in the same snapshot, one
# JSON array of the notes not already decoded. 16 threads then list as fast as one.
def _list_sqlite(org: str, page: str, params: list) -> list[Note]:
    database = db.current().database
    keys_sql = (
        'SELECT json_group_array(json_array("number", "version")) FROM'
        f' (SELECT "notes"."number" AS "number", "notes"."version" AS "version" {page})'
    )
    database.execute_sql("BEGIN")  # one snapshot for both statements
    try:
        keys = json.loads(database.execute_sql(keys_sql, params).fetchone()[0])
        found = {n: note for n, v in keys if (note := DECODED.get((org, n, v))) is not None}
        missing = [n for n, _ in keys if n not in found]
        if missing:
            marks = ", ".join([database.param] * len(missing))
            rows_sql = (
                f"SELECT json_group_array(json_array({_ALL_COLUMNS})) FROM"
                f' "notes" WHERE "org" = {database.param} AND "number" IN ({marks})'
            )
            rows = json.loads(database.execute_sql(rows_sql, [org, *missing]).fetchone()[0])
            found.update((note.row, note) for note in _decode_all([tuple(r) for r in rows]))
    finally:
        database.execute_sql("COMMIT")
    return [found[n] for n in sorted(found, reverse=True)]  # newest first, whatever order


def count_notes(org: str, q: ListQuery) -> int:
    w = _filtered(org, q)
    sql = f'SELECT COUNT(*) FROM "notes" WHERE {w.sql}'
    return int(db.current().database.execute_sql(sql, w.params).fetchone()[0])


# --- request ids ------------------------------------------------------------------------


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


# --- audit ------------------------------------------------------------------------------


def add_event(org: str, note_id: str, e: NoteEvent) -> None:
    _insert(
        "note_events",
        [
            {
                "org": org,
                "note_id": note_id,
                "action": e.action,
                "actor_type": e.actor.type.value,
                "actor_id": e.actor.id,
                "actor_name": e.actor.display_name,
                "surface": e.surface.value,
                "api_key_id": e.api_key_id,
                "purpose": e.purpose,
                "request_id": e.request_id,
                "old_version": e.old_version,
                "new_version": e.new_version,
                "event_time": e.event_time,
            }
        ],
    )


def list_events(org: str, note_id: str) -> list[NoteEvent]:
    rows = (
        NoteEventRow.select()
        .where((NoteEventRow.org == org) & (NoteEventRow.note_id == note_id))
        .order_by(NoteEventRow.pk)
    )
    return [
        NoteEvent(
            action=r.action,
            actor=Author(AuthorType(r.actor_type), r.actor_id, r.actor_name),
            surface=Surface(r.surface),
            request_id=r.request_id,
            old_version=r.old_version,
            new_version=r.new_version,
            event_time=r.event_time,
            api_key_id=r.api_key_id,
            purpose=r.purpose,
        )
        for r in rows
    ]


def list_events_of(org: str, note_ids: list[str]) -> dict[str, list[NoteEvent]]:
    """The audit trails of many notes (an export's page) in one query."""
    out: dict[str, list[NoteEvent]] = {i: [] for i in note_ids}
    if not note_ids:
        return out
    rows = (
        NoteEventRow.select()
        .where((NoteEventRow.org == org) & (NoteEventRow.note_id.in_(note_ids)))
        .order_by(NoteEventRow.pk)
        .tuples()
    )
    names = [f.name for f in NoteEventRow._meta.sorted_fields]
    for values in rows:
        r = dict(zip(names, values, strict=True))
        out[r["note_id"]].append(
            NoteEvent(
                action=r["action"],
                actor=Author(AuthorType(r["actor_type"]), r["actor_id"], r["actor_name"]),
                surface=Surface(r["surface"]),
                request_id=r["request_id"],
                old_version=r["old_version"],
                new_version=r["new_version"],
                event_time=r["event_time"],
                api_key_id=r["api_key_id"],
                purpose=r["purpose"],
            )
        )
    return out


# --- API keys ---------------------------------------------------------------------------


def insert_key(row: dict[str, object]) -> None:
    ApiKeyRow.insert(**row).execute()


def find_key(*, key_id: str = "", secret_hash: str = "") -> ApiKeyRow | None:
    query = ApiKeyRow.select()
    if key_id:
        query = query.where(ApiKeyRow.key_id == key_id)
    else:
        query = query.where(ApiKeyRow.secret_hash == secret_hash)
    return query.first()


def revoke_key(key_id: str, now: int) -> bool:
    return bool(
        ApiKeyRow.update(revoke_time=now)
        .where((ApiKeyRow.key_id == key_id) & ApiKeyRow.revoke_time.is_null())
        .execute()
    )


def list_keys(org: str) -> list[ApiKeyRow]:
    return list(ApiKeyRow.select().where(ApiKeyRow.org == org).order_by(ApiKeyRow.create_time))


def set_key_sealed(key_id: str, sealed: str) -> None:
    ApiKeyRow.update(secret_sealed=sealed).where(ApiKeyRow.key_id == key_id).execute()


def use_nonce(key_id: str, nonce: str, timestamp: int, request_ref: str, oldest: int) -> bool:
    """Records an OAuth nonce of a key; False when it was used before by another request.

    The unique key (key_id, nonce) decides across replicas. A request the gateway serves with
    several calls presents the same request_ref each time; those are the same use. Nonces
    whose timestamp is older than `oldest` are forgotten: their timestamp is refused anyway."""
    database = db.current().database
    ph = database.param
    database.execute_sql(
        f"DELETE FROM oauth_nonces WHERE key_id = {ph} AND oauth_timestamp < {ph}",
        (key_id, oldest),
    )
    conflict = "ON CONFLICT (key_id, nonce) DO NOTHING"
    cursor = database.execute_sql(
        "INSERT INTO oauth_nonces (key_id, nonce, oauth_timestamp, request_ref)"
        f" VALUES ({ph}, {ph}, {ph}, {ph}) {conflict}",
        (key_id, nonce, timestamp, request_ref),
    )
    if cursor.rowcount == 1:
        return True
    row = database.execute_sql(
        f"SELECT request_ref FROM oauth_nonces WHERE key_id = {ph} AND nonce = {ph}",
        (key_id, nonce),
    ).fetchone()
    return row is not None and hmac.compare_digest(row[0], request_ref)


def list_all_keys() -> list[ApiKeyRow]:
    return list(ApiKeyRow.select().order_by(ApiKeyRow.create_time))


# --- listing subjects -------------------------------------------------------------------


def list_subjects(
    org: str,
    subject_type: SubjectType | None,
    parent_id: str,
    show_archived: bool,
    *,
    after: int,
    limit: int,
) -> list[tuple[int, Subject]]:
    """(pk, subject) in registration order, after the keyset position after."""
    where, params = '"pk" > ?', [org, after]
    if subject_type is not None:
        where += ' AND "type" = ?'
        params.append(subject_type.value)
    if parent_id:
        where += ' AND "parent_id" = ?'
        params.append(parent_id)
    if not show_archived:
        where += ' AND "archive_time" IS NULL'
    database = db.current().database
    sql = (
        'SELECT "pk", "type", "external_id", "parent_id", "display_name", "create_time",'
        ' "update_time", "archive_time" FROM "subjects" WHERE "org" = ? AND '
        f'{where} ORDER BY "pk" LIMIT {int(limit)}'
    ).replace("?", database.param)
    rows = database.execute_sql(sql, params).fetchall()
    return [(row[0], _subject(row[1:])) for row in rows]


# --- erasure ----------------------------------------------------------------------------


def run_sql(sql: str, params: tuple | list = ()):
    """sql with ? placeholders, in the engine's own parameter style."""
    database = db.current().database
    return database.execute_sql(sql.replace("?", database.param), params)


def lock_subject(org: str, subject_type: SubjectType, subject_id: str) -> Subject | None:
    """The subject, locked against notes being attached to it until the transaction ends:
    PostgreSQL's FOR UPDATE waits for every CreateNote holding it FOR SHARE (SQLite runs one
    write transaction at a time)."""
    lock = " FOR UPDATE" if db.current().is_postgres else ""
    rows = _subject_rows(
        f'"type" = ? AND "external_id" = ? LIMIT 1{lock}', (org, subject_type.value, subject_id)
    )
    return _subject(rows[0]) if rows else None


def subject_note_numbers(org: str, subject_type: SubjectType, subject_id: str) -> list[int]:
    """Every note about the subject, deleted or not; for an order, its items' notes too."""
    sql = 'SELECT "number" FROM "notes" WHERE "org" = ? AND "subject_type" = ? AND "subject_id" = ?'
    params: list[object] = [org, subject_type.value, subject_id]
    if subject_type is SubjectType.ORDER:
        sql += ' UNION SELECT "number" FROM "notes" WHERE "org" = ? AND "subject_parent_id" = ?'
        sql += ' AND "subject_type" = ?'
        params += [org, subject_id, SubjectType.ORDER_ITEM.value]
    return sorted(row[0] for row in run_sql(sql, params).fetchall())


def order_items(org: str, order_id: str) -> list[str]:
    sql = 'SELECT "external_id" FROM "subjects" WHERE "org" = ? AND "type" = ? AND "parent_id" = ?'
    rows = run_sql(sql, (org, SubjectType.ORDER_ITEM.value, order_id)).fetchall()
    return [row[0] for row in rows]


def notes_linking(org: str, subject_type: SubjectType, subject_id: str) -> list[Note]:
    """The notes (deleted too) whose linked records name the subject, locked on PostgreSQL."""
    engine = db.current()
    lock = " FOR UPDATE" if engine.is_postgres else ""
    sql = (
        f'{_SELECT_NOTES}"org" = ? AND "number" IN (SELECT "note_number" FROM "note_links"'
        f' WHERE "org" = ? AND "type" = ? AND "record_id" = ?) ORDER BY "number"{lock}'
    )
    rows = run_sql(sql, (org, org, subject_type.value, subject_id)).fetchall()
    return _decode_all(rows)


def deleted_note_numbers(cutoff: int, limit: int) -> list[tuple[str, int]]:
    """(org, number) of up to limit notes soft-deleted before cutoff. PostgreSQL locks them,
    skipping rows another purge holds, so replicas purging at once share the work."""
    lock = " FOR UPDATE SKIP LOCKED" if db.current().is_postgres else ""
    sql = (
        'SELECT "org", "number" FROM "notes" WHERE "delete_time" < ?'
        f' ORDER BY "number" LIMIT {int(limit)}{lock}'
    )
    return [(row[0], row[1]) for row in run_sql(sql, (cutoff,)).fetchall()]


def erase_notes(org: str, numbers: list[int]) -> list[Note]:
    """Destroys these notes of org and everything holding their content, inside the caller's
    transaction: the rows, their tags and links, their full-text rows (SQLite: the FTS5
    'delete' by the notes_fts_delete trigger; PostgreSQL: the generated column goes with the
    row), their audit events, and every stored request response that names one of them (the
    replay of a CreateNote/UpdateNote/BatchCreateNotes holds the note's text). Returns the
    erased notes (ids and subjects, for whoever reports them)."""
    if not numbers:
        return []
    engine = db.current()
    erased: list[Note] = []
    for lo in range(0, len(numbers), 500):
        chunk = numbers[lo : lo + 500]
        marks = ", ".join("?" * len(chunk))
        rows = run_sql(
            f'{_SELECT_NOTES}"org" = ? AND "number" IN ({marks})', [org, *chunk]
        ).fetchall()
        notes = _decode_all(rows)
        if not notes:
            continue
        erased.extend(notes)
        found = [n.row for n in notes]
        ids = [n.id for n in notes]
        marks = ", ".join("?" * len(found))
        run_sql(f'DELETE FROM "note_tags" WHERE "note_number" IN ({marks})', found)
        run_sql(f'DELETE FROM "note_links" WHERE "note_number" IN ({marks})', found)
        run_sql(f'DELETE FROM "notes" WHERE "org" = ? AND "number" IN ({marks})', [org, *found])
        marks = ", ".join("?" * len(ids))
        run_sql(
            f'DELETE FROM "note_events" WHERE "org" = ? AND "note_id" IN ({marks})', [org, *ids]
        )
        if engine.is_postgres:
            run_sql(
                'DELETE FROM "request_ids" WHERE "org" = ? AND EXISTS'
                ' (SELECT 1 FROM unnest(?::text[]) AS i WHERE strpos("response", i) > 0)',
                (org, ids),
            )
        else:
            run_sql(
                'DELETE FROM "request_ids" WHERE "org" = ? AND EXISTS'
                ' (SELECT 1 FROM json_each(?) WHERE instr("response", "value") > 0)',
                (org, json.dumps(ids)),
            )
        # The change feed's events carry the notes as they were: they go too, with the
        # webhook deliveries that would send them (the service appends one content-free
        # note.erased per note afterwards).
        run_sql(
            'DELETE FROM "webhook_deliveries" WHERE "org" = ? AND "event_id" IN (SELECT "id"'
            f' FROM "events" WHERE "org" = ? AND "note_id" IN ({marks}))',
            [org, org, *ids],
        )
        run_sql(f'DELETE FROM "events" WHERE "org" = ? AND "note_id" IN ({marks})', [org, *ids])
        for n in notes:
            DECODED.discard((org, n.row, n.version))
    return erased


def forget_subject(org: str, s: Subject, now: int) -> None:
    """Clears the subject's display name and archives it; the row stays, so its id is not
    silently registered afresh (UpsertSubject finds it archived). Request responses of
    UpsertSubject/ArchiveSubject, which hold the display name, go too."""
    run_sql(
        'UPDATE "subjects" SET "display_name" = \'\', "update_time" = ?,'
        ' "archive_time" = COALESCE("archive_time", ?)'
        ' WHERE "org" = ? AND "type" = ? AND "external_id" = ?',
        (now, now, org, s.type.value, s.id),
    )
    fragment = json.dumps({"type": s.type.value, "id": s.id})[1:-1]
    found = 'strpos("response", ?)' if db.current().is_postgres else 'instr("response", ?)'
    run_sql(
        f'DELETE FROM "request_ids" WHERE "org" = ? AND "method" IN (?, ?) AND {found} > 0',
        (org, "UpsertSubject", "ArchiveSubject", fragment),
    )


def add_erasure(
    org: str,
    *,
    reason: str,
    subject: SubjectRef | None,
    actor: Author,
    request_id: str,
    notes_erased: int,
    links_removed: int,
    now: int,
) -> None:
    _insert(
        "erasures",
        [
            {
                "org": org,
                "reason": reason,
                "subject_type": subject.type.value if subject else "",
                "subject_id": subject.id if subject else "",
                "actor_type": actor.type.value,
                "actor_id": actor.id,
                "request_id": request_id,
                "notes_erased": notes_erased,
                "links_removed": links_removed,
                "erase_time": now,
            }
        ],
    )


def compact_search_index() -> None:
    """SQLite: merges the FTS5 index into one segment, so the segments that held erased notes'
    terms (a 'delete' only adds a tombstone) are rewritten without them. Inside the erasing
    transaction; PostgreSQL needs nothing here (see after_erasure)."""
    if not db.current().is_postgres:
        run_sql("INSERT INTO notes_fts (notes_fts) VALUES ('optimize')")


ERASED_TABLES = ("notes", "note_tags", "note_links", "note_events", "request_ids", "subjects")


def after_erasure() -> None:
    """Outside any transaction, after an erasure committed. SQLite: checkpoint the WAL into
    the database file and truncate it (the WAL holds old page images; secure_delete has zeroed
    the freed space in the file). PostgreSQL: VACUUM the tables, so the dead tuples holding
    the text are reclaimed (their space is reused; VACUUM FULL would rewrite the files)."""
    engine = db.current()
    with _unavailable_on_failure(), engine.database.connection_context():
        if engine.is_postgres:
            for table in ERASED_TABLES:
                engine.database.execute_sql(f'VACUUM "{table}"')
        else:
            engine.database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")


# --- import -----------------------------------------------------------------------------


def taken_numbers(org: str, numbers: list[int]) -> set[int]:
    """The note numbers of org among numbers that a note already holds. An import preserves a
    note's number (a WooCommerce note id) through this one function."""
    if not numbers:
        return set()
    if db.current().is_postgres:
        rows = run_sql(
            'SELECT "org_number" FROM "notes" WHERE "org" = ? AND "org_number" = ANY(?)',
            (org, numbers),
        )
    else:
        rows = run_sql(
            'SELECT "org_number" FROM "notes" WHERE "org" = ? AND "org_number" IN'
            ' (SELECT "value" FROM json_each(?))',
            (org, json.dumps(numbers)),
        )
    return {row[0] for row in rows.fetchall()}
