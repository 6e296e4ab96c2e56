"""ListNotes and CountNotes: the filters, full-text match and contains of a list as SQL."""

from __future__ import annotations

import json

from ..domain import search
from ..domain.model import ListQuery, Note, SubjectType
from . import db
from .notes import _NOTE_COLUMNS, DECODED, _decode_all


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
