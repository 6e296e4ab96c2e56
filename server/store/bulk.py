"""The store's bulk path: many notes written straight into the tables, in the caller's
transaction, for imports (imports.py) and the bench's data set (scripts/bench_dataset.py).

Rows are exactly what notes.py and audit.py write one at a time (times in microseconds since
the epoch, tags and links as JSON, ids "note_" + ULID, number the autoincrement key), with their
note_tags and note_links index rows and their audit events:

- SQLite: executemany with explicit numbers; the full-text rows are written per batch by one
  INSERT ... SELECT while the insert trigger is dropped inside that same transaction (DDL is
  transactional in SQLite, so no other connection ever sees the table without its trigger).
- PostgreSQL: numbers reserved from the sequence, then COPY; the tsvector column is generated.

A bulk load (writer()) registers the subjects first, writes the notes by batches, one
transaction per batch, and afterwards refreshes the planner statistics (ANALYZE) and merges
SQLite's FTS index into one segment, as a maintenance job would after an import.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from . import db

NOTE_COLUMNS = (
    "number",
    "org_number",
    "id",
    "org",
    "subject_type",
    "subject_id",
    "subject_parent_id",
    "note_type",
    "title",
    "body",
    "visibility",
    "tags",
    "links",
    "metadata",
    "source",
    "source_type",
    "author_type",
    "author_id",
    "author_name",
    "created_via",
    "api_key_id",
    "purpose",
    "happened_at",
    "create_time",
    "update_time",
    "delete_time",
    "version",
)
EVENT_COLUMNS = (
    "org",
    "note_id",
    "action",
    "actor_type",
    "actor_id",
    "actor_name",
    "surface",
    "api_key_id",
    "purpose",
    "request_id",
    "old_version",
    "new_version",
    "event_time",
)
TAG_COLUMNS = ("note_number", "org", "tag")
LINK_COLUMNS = ("note_number", "org", "type", "record_id")


def row_keys(cursor, count: int) -> list[int]:
    """count fresh row keys (notes.number), ascending, after every key the table has had.
    Inside the caller's write transaction: PostgreSQL takes them from the sequence; SQLite's
    one writer takes the next ones after the autoincrement's high-water mark."""
    if db.current().is_postgres:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('notes', 'number')) FROM generate_series(1, %s)",
            (count,),
        )
        return sorted(row[0] for row in cursor.fetchall())
    top = cursor.execute(
        "SELECT max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'notes'), 0),"
        " COALESCE((SELECT max(number) FROM notes), 0))"
    ).fetchone()[0]
    return list(range(top + 1, top + 1 + count))


def write_rows(cursor, notes: list[tuple], tags: list, links: list, events: list) -> None:
    """Inside the caller's transaction: rows of notes (NOTE_COLUMNS; at least one, keys from
    row_keys), note_tags (TAG_COLUMNS), note_links (LINK_COLUMNS), note_events (EVENT_COLUMNS)."""
    tables = (
        ("notes", NOTE_COLUMNS, notes),
        ("note_tags", TAG_COLUMNS, tags),
        ("note_links", LINK_COLUMNS, links),
        ("note_events", EVENT_COLUMNS, events),
    )
    if db.current().is_postgres:
        for table, columns, rows in tables:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
        return
    inserts = [
        (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            rows,
        )
        for table, columns, rows in tables
    ]
    # The keys are fresh and consecutive (row_keys): the notes between the first and the last
    # are exactly these.
    keys = [r[0] for r in notes]
    with fts_in_one_go(cursor, "number BETWEEN ? AND ?", (min(keys), max(keys))):
        cursor.executemany(*inserts[0])
    for sql, rows in inserts[1:]:
        cursor.executemany(sql, rows)


class _Writer:
    def __init__(self, engine: db.Engine) -> None:
        self.database = engine.database

    def subjects(self, org: str, plan, now: int) -> None:
        """Registers the subjects of plan ((type, id, parent_id) each) not registered yet."""
        rows = [(org, t, i, p, "", now, now) for t, i, p in plan]
        marks = ", ".join([self.database.param] * 7)
        with self.database.atomic():
            self.database.cursor().executemany(
                "INSERT INTO subjects (org, type, external_id, parent_id, display_name, "
                f"create_time, update_time) VALUES ({marks}) "
                "ON CONFLICT (org, type, external_id) DO NOTHING",
                rows,
            )

    def notes(self, org: str, rows: list[tuple]) -> tuple[int, int]:
        """One transaction: rows (a notes row without its keys, its tags, its links) numbered
        after every note of org. Returns the first and last row keys."""
        cursor = self.database.cursor()
        with self.database.atomic():  # SQLite: BEGIN IMMEDIATE, the keys stay ours
            keys = row_keys(cursor, len(rows))
            numbered = [(k, r[0], r[1], r[2]) for k, r in zip(keys, rows, strict=True)]
            org_first = _reserve_org_numbers(self.database, org, len(rows))
            tags, links, events = _index_rows(org, iter(numbered))
            notes = [(n, org_first + k, *row) for k, (n, row, _, _) in enumerate(numbered)]
            write_rows(cursor, notes, tags, links, events)
        return keys[0], keys[-1]


def writer(engine: db.Engine) -> _Writer:
    """The bulk loader of the engine: begin_load(), subjects(), notes() by batches, maintain(),
    end_load()."""
    return _PostgresWriter(engine) if engine.is_postgres else _SqliteWriter(engine)


def _index_rows(org: str, numbered: Iterator[tuple[int, tuple, list, list]]):
    tags, links, events = [], [], []
    for number, row, row_tags, row_links in numbered:
        tags.extend((number, org, t) for t in row_tags)
        links.extend((number, org, t, i) for t, i in row_links)
        # note id, actor type/id/name, surface, event time: as service.notes._event writes them
        actor = (row[14], row[15], row[16], row[17], "", "", "")
        events.append((org, row[0], "CREATE", *actor, 0, 1, row[21]))
        if row[23] is not None:  # deleted: its DELETE event too
            events.append((org, row[0], "DELETE", *actor, 1, 2, row[23]))
    return tags, links, events


# The tables a trigger fills on every insert into notes (migrations 1, 6, 12 and 13), and how a
# batch of notes fills each in one statement.
_INSERT_TRIGGERS = (
    ("notes_fts_insert", "notes_fts (rowid, title, body)", "number, title, body"),
    ("notes_trgm_insert", "notes_trgm (rowid, title, body)", "number, title, body"),
    (
        "note_texts_insert",
        "note_texts (org, subject_type, subject_id, number, folded, live)",
        "org, subject_type, subject_id, number, notes_fold(title || ' ' || body),"
        " delete_time IS NULL",
    ),
)


@contextlib.contextmanager
def fts_in_one_go(cursor, rows_where: str, params: tuple) -> Iterator[None]:
    """SQLite, inside a transaction: the insert triggers of the full-text tables and of
    note_texts are dropped while the block inserts notes; then each table gets the rows
    rows_where selects by one INSERT ... SELECT and its trigger is back (one statement per
    table, not one per note: the trigram trigger alone made large loads much slower;
    docs/benchmarks.md)."""
    dropped = []
    for trigger, table, values in _INSERT_TRIGGERS:
        found = cursor.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (trigger,)
        ).fetchone()
        if found:
            cursor.execute(f"DROP TRIGGER {trigger}")
            dropped.append((table, values, found[0]))
    yield
    for table, values, create in dropped:
        cursor.execute(f"INSERT INTO {table} SELECT {values} FROM notes WHERE {rows_where}", params)
        cursor.execute(create)


def _reserve_org_numbers(database, org: str, count: int) -> int:
    """The first of count consecutive note numbers of org, taken from its counter."""
    param = database.param
    last = database.execute_sql(
        f"INSERT INTO org_counters (org, last) VALUES ({param}, {param}) "
        "ON CONFLICT (org) DO UPDATE SET last = org_counters.last + excluded.last "
        "RETURNING last",
        (org, count),
    ).fetchone()[0]
    return int(last) - count + 1


class _SqliteWriter(_Writer):
    def __init__(self, engine: db.Engine) -> None:
        super().__init__(engine)
        self.saved: dict[str, object] = {}

    def _pragma(self, name: str, value: object | None = None):
        sql = f"PRAGMA {name}" + ("" if value is None else f" = {value}")
        row = self.database.execute_sql(sql).fetchone()
        return row[0] if row else None

    def begin_load(self) -> None:
        # Connection-scoped settings for the load only; restored before the connection is
        # returned to the pool. Each batch still commits; a crash loses at most the last batch.
        for name, value in (("synchronous", 1), ("cache_size", -262_144)):
            self.saved[name] = self._pragma(name)
            self._pragma(name, value)

    def end_load(self) -> None:
        for name, value in self.saved.items():
            self._pragma(name, value)

    def maintain(self) -> None:
        has_fts = self.database.execute_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'notes_fts'"
        ).fetchone()
        if has_fts:
            with self.database.atomic():
                self.database.execute_sql("INSERT INTO notes_fts (notes_fts) VALUES ('optimize')")
        self.database.execute_sql("ANALYZE")
        self.database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")


class _PostgresWriter(_Writer):
    def begin_load(self) -> None:
        self.database.execute_sql("SET maintenance_work_mem = '256MB'")

    def end_load(self) -> None:
        self.database.execute_sql("RESET maintenance_work_mem")

    def maintain(self) -> None:
        # VACUUM sets the visibility map (index-only scans); it cannot run in a transaction,
        # and the pooled connection is in autocommit between transactions.
        for table in ("notes", "note_tags", "note_links", "note_events", "subjects", "note_texts"):
            self.database.execute_sql(f"VACUUM (ANALYZE) {table}")
