"""Versioned schema migrations. Each runs once, in a transaction, recorded in schema_migrations.

Migrations are fixed SQL per engine, so an existing database upgrades in place whatever the
models look like later. Concurrent starters (several replicas) serialize on a lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .db import Engine

_TABLES = """
CREATE TABLE subjects (
    pk {serial} PRIMARY KEY,
    org TEXT NOT NULL,
    type TEXT NOT NULL,
    external_id TEXT NOT NULL,
    parent_id TEXT NOT NULL DEFAULT '',
    display_name TEXT NOT NULL DEFAULT '',
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    archive_time BIGINT,
    UNIQUE (org, type, external_id)
);
CREATE TABLE notes (
    number {serial} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    subject_parent_id TEXT NOT NULL DEFAULT '',
    note_type TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    visibility TEXT NOT NULL,
    tags TEXT NOT NULL,
    links TEXT NOT NULL,
    metadata TEXT NOT NULL,
    source TEXT NOT NULL,
    source_type TEXT NOT NULL,
    author_type TEXT NOT NULL,
    author_id TEXT NOT NULL,
    author_name TEXT NOT NULL,
    created_via TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    happened_at BIGINT,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    delete_time BIGINT,
    version BIGINT NOT NULL
);
CREATE INDEX notes_by_subject ON notes (org, subject_type, subject_id, number);
CREATE INDEX notes_by_parent ON notes (org, subject_parent_id, number);
CREATE INDEX notes_by_author ON notes (org, author_id, number);
CREATE INDEX notes_by_org ON notes (org, number);
CREATE TABLE note_links (
    note_number BIGINT NOT NULL REFERENCES notes (number) ON DELETE CASCADE,
    org TEXT NOT NULL,
    type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (note_number, type, record_id)
);
CREATE INDEX note_links_by_record ON note_links (org, type, record_id, note_number);
CREATE TABLE note_tags (
    note_number BIGINT NOT NULL REFERENCES notes (number) ON DELETE CASCADE,
    org TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (note_number, tag)
);
CREATE INDEX note_tags_by_tag ON note_tags (org, tag, note_number);
CREATE TABLE request_ids (
    org TEXT NOT NULL,
    method TEXT NOT NULL,
    request_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (org, method, request_id)
);
CREATE INDEX request_ids_by_time ON request_ids (create_time);
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    purpose TEXT NOT NULL,
    scopes TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    expire_time BIGINT,
    revoke_time BIGINT
);
CREATE INDEX api_keys_by_org ON api_keys (org, create_time);
CREATE TABLE note_events (
    pk {serial} PRIMARY KEY,
    org TEXT NOT NULL,
    note_id TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    surface TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    request_id TEXT NOT NULL,
    old_version BIGINT NOT NULL,
    new_version BIGINT NOT NULL,
    event_time BIGINT NOT NULL
);
CREATE INDEX note_events_by_note ON note_events (org, note_id, pk);
"""

_SQLITE_SEARCH = """
CREATE VIRTUAL TABLE notes_fts USING fts5(
    title, body, content='notes', content_rowid='number',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER notes_fts_insert AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts (rowid, title, body) VALUES (new.number, new.title, new.body);
END;
CREATE TRIGGER notes_fts_delete AFTER DELETE ON notes BEGIN
    INSERT INTO notes_fts (notes_fts, rowid, title, body)
    VALUES ('delete', old.number, old.title, old.body);
END;
CREATE TRIGGER notes_fts_update AFTER UPDATE OF title, body ON notes BEGIN
    INSERT INTO notes_fts (notes_fts, rowid, title, body)
    VALUES ('delete', old.number, old.title, old.body);
    INSERT INTO notes_fts (rowid, title, body) VALUES (new.number, new.title, new.body);
END;
"""

_POSTGRES_SEARCH = """
ALTER TABLE notes ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', title || ' ' || body)) STORED;
CREATE INDEX notes_search ON notes USING GIN (search);
"""


def _initial(engine: Engine) -> list[str]:
    serial = "BIGSERIAL" if engine.is_postgres else "INTEGER"
    sql = _TABLES.replace("{serial}", serial)
    if not engine.is_postgres:
        # In SQLite only INTEGER PRIMARY KEY is the rowid; AUTOINCREMENT never reuses a number.
        sql = sql.replace("INTEGER PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT")
    sql += _POSTGRES_SEARCH if engine.is_postgres else _SQLITE_SEARCH
    return _split(sql)


def _split(sql: str) -> list[str]:
    """Statements separated by ';' at line ends, keeping trigger bodies whole."""
    out, buf = [], []
    for line in sql.strip().splitlines():
        buf.append(line)
        stripped = line.strip()
        if stripped.endswith(";") and (
            not buf[0].lstrip().startswith("CREATE TRIGGER") or stripped == "END;"
        ):
            out.append("\n".join(buf).strip().rstrip(";"))
            buf = []
    return out


def _covering_deleted(engine: Engine) -> list[str]:
    """Lists filter on delete_time IS NULL; with it in the index, counting a subject's notes
    (total_size) reads only the index (docs/benchmarks.md has the SQLite figure)."""
    indexes = {
        "notes_by_subject": "org, subject_type, subject_id, number, delete_time",
        "notes_by_parent": "org, subject_parent_id, number, delete_time",
        "notes_by_author": "org, author_id, number, delete_time",
        "notes_by_org": "org, number, delete_time",
    }
    out = []
    for name, columns in indexes.items():
        out.append(f"DROP INDEX {name}")
        out.append(f"CREATE INDEX {name} ON notes ({columns})")
    return out


def _events(engine: Engine) -> list[str]:
    """The change feed's outbox (server/store/outbox.py): ordered by (txid, seq)."""
    serial = "BIGSERIAL" if engine.is_postgres else "INTEGER"
    key = "PRIMARY KEY" if engine.is_postgres else "PRIMARY KEY AUTOINCREMENT"
    return [
        f"""CREATE TABLE events (
    seq {serial} {key},
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL,
    type TEXT NOT NULL,
    note_id TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    subject_parent_id TEXT NOT NULL DEFAULT '',
    txid BIGINT NOT NULL,
    event_time BIGINT NOT NULL,
    payload TEXT NOT NULL
)""",
        "CREATE INDEX events_by_org ON events (org, txid, seq)",
        "CREATE INDEX events_by_time ON events (event_time)",
    ]


_OAUTH = """
ALTER TABLE api_keys ADD COLUMN secret_sealed TEXT;
CREATE TABLE oauth_nonces (
    key_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    oauth_timestamp BIGINT NOT NULL,
    request_ref TEXT NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX oauth_nonces_by_time ON oauth_nonces (key_id, oauth_timestamp);
"""

# Substring search ("notes containing the text", Medusa's ILIKE %q%): a trigram index.
_SQLITE_CONTAINS = """
CREATE VIRTUAL TABLE notes_trgm USING fts5(
    title, body, content='notes', content_rowid='number', tokenize='trigram'
);
CREATE TRIGGER notes_trgm_insert AFTER INSERT ON notes BEGIN
    INSERT INTO notes_trgm (rowid, title, body) VALUES (new.number, new.title, new.body);
END;
CREATE TRIGGER notes_trgm_delete AFTER DELETE ON notes BEGIN
    INSERT INTO notes_trgm (notes_trgm, rowid, title, body)
    VALUES ('delete', old.number, old.title, old.body);
END;
CREATE TRIGGER notes_trgm_update AFTER UPDATE OF title, body ON notes BEGIN
    INSERT INTO notes_trgm (notes_trgm, rowid, title, body)
    VALUES ('delete', old.number, old.title, old.body);
    INSERT INTO notes_trgm (rowid, title, body) VALUES (new.number, new.title, new.body);
END;
INSERT INTO notes_trgm (notes_trgm) VALUES ('rebuild');
"""


def _trgm_schema(engine: Engine) -> str:
    """Where pg_trgm lives: an extension is installed once per database, in one schema, so a
    database with several notes schemas shares it. Installed in public when missing (pg_trgm
    is a trusted extension: the database's owner or any user with CREATE on it may)."""
    db = engine.database
    sql = (
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'pg_trgm'"
    )
    row = db.execute_sql(sql).fetchone()
    if row is None:
        public = db.execute_sql("SELECT 1 FROM pg_namespace WHERE nspname = 'public'").fetchone()
        target = "public" if public else (engine.schema or "public")
        db.execute_sql(f'CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA "{target}"')
        row = db.execute_sql(sql).fetchone()
    return row[0]


def _numbers_per_org(engine: Engine) -> list[str]:
    """Each organization numbers its notes from 1, from a counter row of its own, so that
    nobody learns another's volume from the gaps. Existing notes keep their numbers."""
    return [
        "ALTER TABLE notes ADD COLUMN org_number BIGINT NOT NULL DEFAULT 0",
        "UPDATE notes SET org_number = number",
        "ALTER TABLE notes ALTER COLUMN org_number DROP DEFAULT" if engine.is_postgres else "",
        "CREATE UNIQUE INDEX notes_by_org_number ON notes (org, org_number)",
        "CREATE TABLE org_counters (org TEXT PRIMARY KEY, last BIGINT NOT NULL)",
        "INSERT INTO org_counters (org, last) SELECT org, max(number) FROM notes GROUP BY org",
    ]


def _legacy_clients(engine: Engine) -> list[str]:
    """OAuth 1.0a (sealed secrets, used nonces) and the containment search's trigram index."""
    out = _split(_OAUTH)
    if engine.is_postgres:
        schema = _trgm_schema(engine).replace('"', '""')
        out.append(
            "CREATE INDEX notes_contains ON notes USING GIN"
            f" ((lower(title || ' ' || body)) \"{schema}\".gin_trgm_ops)"
        )
    else:
        out += _split(_SQLITE_CONTAINS)
    return out


def _erasures(engine: Engine) -> list[str]:
    """One row per erasure (EraseSubject, purge-deleted): who, when, what, how many notes; never
    any note content. subject_type/subject_id are empty for a retention purge."""
    serial = "BIGSERIAL" if engine.is_postgres else "INTEGER"
    return [
        f"""CREATE TABLE erasures (
    pk {serial} PRIMARY KEY,
    org TEXT NOT NULL,
    reason TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    notes_erased BIGINT NOT NULL,
    links_removed BIGINT NOT NULL,
    erase_time BIGINT NOT NULL
)""",
        "CREATE INDEX erasures_by_org ON erasures (org, pk)",
    ]


def _feed_positions(engine: Engine) -> list[str]:
    """Where each follower of the outbox (the NATS publisher) has got to: server/store/feed.py."""
    return [
        """CREATE TABLE feed_positions (
    consumer TEXT PRIMARY KEY,
    txid BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    update_time BIGINT NOT NULL
)"""
    ]


def _webhooks(engine: Engine) -> list[str]:
    """Webhooks and their deliveries (server/store/webhooks.py)."""
    serial = "BIGSERIAL" if engine.is_postgres else "INTEGER"
    key = "PRIMARY KEY" if engine.is_postgres else "PRIMARY KEY AUTOINCREMENT"
    return [
        f"""CREATE TABLE webhooks (
    seq {serial} {key},
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL,
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    disabled_reason TEXT NOT NULL DEFAULT '',
    sealed_secret TEXT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
)""",
        "CREATE INDEX webhooks_by_org ON webhooks (org, seq)",
        f"""CREATE TABLE webhook_deliveries (
    seq {serial} {key},
    webhook_id TEXT NOT NULL,
    org TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    next_attempt_time BIGINT NOT NULL,
    last_attempt_time BIGINT,
    create_time BIGINT NOT NULL,
    UNIQUE (webhook_id, event_id)
)""",
        "CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, seq)",
        "CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, seq)"
        " WHERE state = 'pending'",
    ]


def _search_windows(engine: Engine) -> list[str]:
    """PostgreSQL search newest first, window by window (server/store/search.py): the search
    index also holds, for each note, one upper-case lexeme per window of note numbers it falls
    in (4,096 numbers, and 4 times more at each of 7 sizes), so that a query ANDed with one
    window reads only that window's part of its posting lists. Without a pending list
    (fastupdate off): a search would otherwise rescan every note inserted since the last
    merge. SQLite's FTS5 index already answers newest first."""
    if not engine.is_postgres:
        return []
    return [
        # Built before the old one goes: writes wait for the build (SHARE lock), reads do not;
        # dropping the old index last holds its exclusive lock only until the commit.
        "CREATE INDEX notes_search_windows ON notes USING GIN"
        """ (("search" || array_to_tsvector(ARRAY['N12.' || ("number" >> 12)::text,"""
        """ 'N14.' || ("number" >> 14)::text, 'N16.' || ("number" >> 16)::text,"""
        """ 'N18.' || ("number" >> 18)::text, 'N20.' || ("number" >> 20)::text,"""
        """ 'N22.' || ("number" >> 22)::text, 'N24.' || ("number" >> 24)::text])))"""
        " WITH (fastupdate = off)",
        "DROP INDEX notes_search",
    ]


# Substring search within a subject (customer notes' q): the folded text of each note, in a
# table clustered by (org, subject, number), so that scanning a subject reads its own pages
# only (WITHOUT ROWID: the primary key is the table's order), and compares without calling
# Python per note (notes_fold is db.folded, the folding notes_contains applies). The note's
# own triggers keep it, in the note's transaction, whichever path writes the note.
_SQLITE_SUBJECT_TEXTS = """
CREATE TABLE note_texts (
    org TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    folded TEXT NOT NULL,
    PRIMARY KEY (org, subject_type, subject_id, number)
) WITHOUT ROWID;
CREATE TRIGGER note_texts_insert AFTER INSERT ON notes BEGIN
    INSERT INTO note_texts (org, subject_type, subject_id, number, folded)
    VALUES (new.org, new.subject_type, new.subject_id, new.number,
            notes_fold(new.title || ' ' || new.body));
END;
CREATE TRIGGER note_texts_update AFTER UPDATE OF title, body ON notes BEGIN
    UPDATE note_texts SET folded = notes_fold(new.title || ' ' || new.body)
    WHERE org = new.org AND subject_type = new.subject_type AND subject_id = new.subject_id
      AND number = new.number;
END;
CREATE TRIGGER note_texts_delete AFTER DELETE ON notes BEGIN
    DELETE FROM note_texts
    WHERE org = old.org AND subject_type = old.subject_type AND subject_id = old.subject_id
      AND number = old.number;
END;
INSERT INTO note_texts (org, subject_type, subject_id, number, folded)
SELECT org, subject_type, subject_id, number, notes_fold(title || ' ' || body) FROM notes;
"""


def _contains_by_subject(engine: Engine) -> list[str]:
    """SQLite: substring search within a subject bounded by the subject (server/store/search.py,
    _contains): each note's folded text in a table clustered by (org, subject, number), kept
    by the note's triggers (_SQLITE_SUBJECT_TEXTS), and filled here for the notes there are.
    PostgreSQL: unchanged (docs/benchmarks.md, "Customer-notes `q` bounded by the subject")."""
    if engine.is_postgres:
        return []
    return _split(_SQLITE_SUBJECT_TEXTS)


# Migration 13: whether each note is live, beside its folded text, so that a subject's count
# for customer notes' q reads note_texts alone; and the same table on PostgreSQL, where a
# subject's notes each sit on a heap page of their own (testing 10,000 of them read 9,700
# pages) and note_texts' primary key holds the texts in the subject's order (index-only: 300
# to 500 pages). A B-tree entry holds at most 2,704 bytes, so a text that would not fit with
# its keys is NULL there and read from notes (server/store/search.py, _contains_by_texts).
NOTE_TEXT_BYTES = 2000

_SQLITE_LIVE_TEXTS = """
ALTER TABLE note_texts ADD COLUMN live INTEGER NOT NULL DEFAULT 1;
UPDATE note_texts SET live = 0
WHERE (org, subject_type, subject_id, number) IN
    (SELECT org, subject_type, subject_id, number FROM notes WHERE delete_time IS NOT NULL);
DROP TRIGGER note_texts_insert;
CREATE TRIGGER note_texts_insert AFTER INSERT ON notes BEGIN
    INSERT INTO note_texts (org, subject_type, subject_id, number, folded, live)
    VALUES (new.org, new.subject_type, new.subject_id, new.number,
            notes_fold(new.title || ' ' || new.body), new.delete_time IS NULL);
END;
CREATE TRIGGER note_texts_live AFTER UPDATE OF delete_time ON notes BEGIN
    UPDATE note_texts SET live = new.delete_time IS NULL
    WHERE org = new.org AND subject_type = new.subject_type AND subject_id = new.subject_id
      AND number = new.number;
END;
"""

_POSTGRES_TEXTS = (
    """CREATE TABLE note_texts (
    org TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    number BIGINT NOT NULL,
    live BOOLEAN NOT NULL,
    folded TEXT
)""",
    """CREATE FUNCTION {schema}.note_texts_folded(n {schema}.notes) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN octet_length(n.org) + octet_length(n.subject_type)
        + octet_length(n.subject_id) + octet_length(t.folded) < {limit} THEN t.folded END
    FROM (SELECT lower(n.title || ' ' || n.body) AS folded) AS t
$$""",
    """CREATE FUNCTION {schema}.note_texts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.org = OLD.org AND NEW.subject_type = OLD.subject_type
        AND NEW.subject_id = OLD.subject_id AND NEW.title = OLD.title AND NEW.body = OLD.body
        AND (NEW.delete_time IS NULL) = (OLD.delete_time IS NULL) THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM {schema}.note_texts
        WHERE org = OLD.org AND subject_type = OLD.subject_type
          AND subject_id = OLD.subject_id AND number = OLD.number;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO {schema}.note_texts (org, subject_type, subject_id, number, live, folded)
        VALUES (NEW.org, NEW.subject_type, NEW.subject_id, NEW.number,
                NEW.delete_time IS NULL, {schema}.note_texts_folded(NEW));
    END IF;
    RETURN NULL;
END
$$""",
    """CREATE TRIGGER note_texts_keep AFTER INSERT OR UPDATE OR DELETE ON notes
    FOR EACH ROW EXECUTE FUNCTION {schema}.note_texts_keep()""",
    """INSERT INTO note_texts (org, subject_type, subject_id, number, live, folded)
SELECT org, subject_type, subject_id, number, delete_time IS NULL, note_texts_folded(notes)
FROM notes""",
    # After the fill: built sorted, the index is 228 MB at 1M notes instead of 368.
    """ALTER TABLE note_texts
    ADD PRIMARY KEY (org, subject_type, subject_id, number) INCLUDE (live, folded)""",
)


def _live_texts(engine: Engine) -> list[str]:
    """note_texts knows which notes are live (SQLite); and PostgreSQL gets note_texts, kept by
    a trigger in the note's transaction whichever path writes the note."""
    if not engine.is_postgres:
        return _split(_SQLITE_LIVE_TEXTS)
    # The functions name the schema the tables are in, so that a session with another
    # search_path that writes notes still keeps this schema's note_texts.
    schema = engine.database.execute_sql("SELECT current_schema()").fetchone()[0]
    quoted = '"' + schema.replace('"', '""') + '"'
    return [sql.format(schema=quoted, limit=NOTE_TEXT_BYTES) for sql in _POSTGRES_TEXTS]


MIGRATIONS: list[tuple[int, str, Callable[[Engine], list[str]]]] = [
    (1, "initial schema", _initial),
    (2, "list indexes cover delete_time", _covering_deleted),
    (3, "note numbers per organization", _numbers_per_org),
    (4, "the change feed's outbox", _events),
    (5, "webhooks and their deliveries", _webhooks),
    (6, "OAuth 1.0a secrets and nonces; substring search", _legacy_clients),
    (7, "erasure records", _erasures),
    (9, "positions of the change feed's followers", _feed_positions),
    (10, "search index by windows of note numbers", _search_windows),
    (12, "SQLite: the folded texts of each subject's notes", _contains_by_subject),
    (13, "whether each note is live beside its text; PostgreSQL's note_texts", _live_texts),
]

LATEST = MIGRATIONS[-1][0]


def migrate(engine: Engine, target: int | None = None) -> list[int]:
    """Applies what is missing (up to target); returns the versions applied now."""
    db = engine.database
    applied_now: list[int] = []
    ph = "%s" if engine.is_postgres else "?"
    with db.connection_context():
        if engine.is_postgres:
            # Waiting for another replica's migrations, or one over a large table, may take
            # longer than a request's statement may.
            db.execute_sql("SET statement_timeout = 0")
            db.execute_sql("SELECT pg_advisory_lock(727274)")
        try:
            if engine.is_postgres and engine.schema:
                # ?schema=NAME names where the tables go; a new name is a new schema.
                quoted = engine.schema.replace('"', '""')
                db.execute_sql(f'CREATE SCHEMA IF NOT EXISTS "{quoted}"')
            db.execute_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            )
            for version, name, statements in MIGRATIONS:
                if target is not None and version > target:
                    break
                with db.atomic():
                    done = db.execute_sql(
                        f"SELECT 1 FROM schema_migrations WHERE version = {ph}", (version,)
                    ).fetchone()
                    if done:
                        continue
                    for statement in statements(engine):
                        if statement:
                            db.execute_sql(statement)
                    db.execute_sql(
                        "INSERT INTO schema_migrations (version, name, applied_at) "
                        f"VALUES ({ph}, {ph}, {ph})",
                        (version, name, int(time.time())),
                    )
                applied_now.append(version)
        finally:
            if engine.is_postgres:
                db.execute_sql("SELECT pg_advisory_unlock(727274)")
                db.execute_sql("RESET statement_timeout")
    return applied_now


def current_version(engine: Engine) -> int:
    db = engine.database
    with db.connection_context():
        row = db.execute_sql("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)
