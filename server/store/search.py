"""ListNotes and CountNotes: the filters, full-text match and contains of a list as SQL."""

from __future__ import annotations

import json

import peewee

from ..domain import search
from ..domain.model import ListQuery, Note, SubjectType
from . import db
from .notes import _NOTE_COLUMNS, _NUMBER, DECODED, _decode_all


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


def _filtered(
    org: str, q: ListQuery, *, fts_driven: bool = False, window: str | None = None
) -> _Where:
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
        _match(w, search.parse(q.query), engine.is_postgres, fts_driven, window)
    if q.contains:
        _contains(w, org, q, engine.is_postgres)
    if not q.show_deleted:
        w.add('"delete_time" IS NULL')
    return w


# PostgreSQL's search index (migration 10) holds, besides the words of title and body, one
# lexeme per window of note numbers the note falls in: "N12.253" for numbers 253 * 4096 to
# 254 * 4096 - 1, and so on for windows of 4**k times that, up to 2**24 numbers. Words are
# lower case, window lexemes upper case, so no word ever matches a window; a query ANDed with
# a window's lexeme reads only the posting lists' part inside that window.
WINDOW_SHIFTS = (12, 14, 16, 18, 20, 22, 24)
SEARCH_VECTOR = (
    '("search" || array_to_tsvector(ARRAY['
    + ", ".join(f"'N{s}.' || (\"number\" >> {s})::text" for s in WINDOW_SHIFTS)
    + "]))"
)


def _match(
    w: _Where, terms: list[search.Term], postgres: bool, fts_driven: bool, window: str | None
) -> None:
    if postgres:
        parts, params = [], []
        for t in terms:
            if t.prefix:
                parts.append("to_tsquery('simple', ?)")
                params.append(f"'{t.words[0]}':*")
            else:
                parts.append("phraseto_tsquery('simple', ?)")
                params.append(" ".join(t.words))
        if window is not None:
            parts.append("?::tsquery")
            params.append(window)
        w.add(f"{SEARCH_VECTOR} @@ (" + " && ".join(parts) + ")", *params)
        return
    fts = " AND ".join('"' + " ".join(t.words) + '"' + ("*" if t.prefix else "") for t in terms)
    if fts_driven:
        w.add('"notes_fts" MATCH ?', fts)
    else:
        w.add('"number" IN (SELECT rowid FROM notes_fts WHERE notes_fts MATCH ?)', fts)


TRIGRAM = 3  # the shortest text a trigram index can look up


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _contains(w: _Where, org: str, q: ListQuery, postgres: bool) -> None:
    """Title or body containing text, case-insensitively. Three characters or more go through
    a trigram index (SQLite FTS5 trigram, PostgreSQL pg_trgm); shorter text is a scan of the
    notes the other filters leave (a subject's, for customer notes). On SQLite, a subject's
    notes are scanned in note_texts (migration 12): its own few pages, compared in C."""
    text = q.contains
    if postgres:
        haystack = 'lower("title" || \' \' || "body")'  # notes_contains indexes this
        if len(text) >= TRIGRAM:
            w.add(f"{haystack} LIKE lower(?)", _like(text))
        else:
            w.add(f"strpos({haystack}, lower(?)) > 0", text)
        return
    if q.subject is not None and not q.include_children:
        # The cost follows the subject, never how common the text is across every
        # organization. (Looking each of its notes up in the trigram index by rowid re-reads a
        # common trigram's whole doclist per note: a large subject took minutes.)
        s = q.subject
        w.add(
            '"number" IN (SELECT "number" FROM "note_texts" WHERE "org" = ?'
            ' AND "subject_type" = ? AND "subject_id" = ? AND instr("folded", ?) > 0)',
            org,
            s.type.value,
            s.id,
            db.folded(text),
        )
        return
    if len(text) < TRIGRAM or q.subject is not None:
        # An order with its items' notes: a scan of those notes.
        w.add('notes_contains("title" || \' \' || "body", ?)', text)
        return
    phrase = '"' + text.replace('"', '""') + '"'
    w.add('"number" IN (SELECT rowid FROM notes_trgm WHERE notes_trgm MATCH ?)', phrase)


# A search with nothing narrower to go by (no subject, linked record or tag) walks the FTS
# index newest first and stops at the page's end, instead of collecting every match first
# (for a common word, a good part of the store).
_FROM_FTS = '"notes_fts" JOIN "notes" ON "notes"."number" = "notes_fts"."rowid"'
_ALL_COLUMNS = ", ".join(f'"notes"."{c}"' for c in _NOTE_COLUMNS)


def _index_driven(q: ListQuery) -> bool:
    return bool(
        q.query and not q.contains and q.subject is None and q.linked_record is None and not q.tags
    )


def list_notes(org: str, q: ListQuery, *, before: int, limit: int, offset: int) -> list[Note]:
    postgres = db.current().is_postgres
    if postgres and _index_driven(q):
        return _list_by_windows(org, q, before=before, limit=limit, offset=offset)
    fts_driven = _index_driven(q) and not postgres
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


def _window(end: int, longest: int) -> tuple[str, int]:
    """The longest window of the index that ends at end and is at most longest numbers long
    (4,096 at least), as its lexeme and its first number."""
    shift = WINDOW_SHIFTS[0]
    for larger in WINDOW_SHIFTS[1:]:
        if end % (1 << larger) or (1 << larger) > longest:
            break
        shift = larger
    return _lexeme(shift, end), end - (1 << shift)


def _lexeme(shift: int, end: int) -> str:
    """The index's lexeme of the window of 2**shift numbers holding the number end - 1."""
    return f"'N{shift}.{(end - 1) >> shift}'"


def _list_by_windows(org: str, q: ListQuery, *, before: int, limit: int, offset: int):
    """A search with nothing narrower to go by, newest first, window by window of note numbers:
    each probe reads the matches inside one window (ANDed with the window's lexeme, so only
    that part of the posting lists), and the probes stop once the page is full. After a window
    without a match the next is 4 times longer; after one with matches, as long as their
    density (from the window's start up to its newest match) says the rest of the page needs,
    at most 4 times longer. One query over every match would read and sort all of them (27,418
    notes for a common word at 1M), and walking the notes newest first reads every newer note
    that does not match (40,000 of them once a day of writes to other subjects sits on top); a
    probe reads neither. Each probe is its own statement, so a page that needs several is put
    together as keyset pages are: window by window, each as of when it was read, never a note
    twice."""
    database = db.current().database
    if before:
        end = before
    else:
        newest = database.execute_sql('SELECT max("number") FROM "notes"').fetchone()[0]
        end = int(newest or 0) + 1
    wanted = offset + limit
    rows: list[tuple] = []
    shift = WINDOW_SHIFTS[0]
    lexeme: str | None = _lexeme(shift, end)
    start = ((end - 1) >> shift) << shift  # the first window: from its start up to end
    while end > 0:
        w = _filtered(org, q, window=lexeme)
        w.add('"number" < ?', end)
        # "number" + 0: the planner must not walk the notes newest first (it cannot tell that
        # a window's matches may all lie below thousands of newer notes).
        sql = (
            f'SELECT {_ALL_COLUMNS} FROM "notes" WHERE {w.sql}'
            f' ORDER BY "number" + 0 DESC LIMIT {int(wanted - len(rows))}'
        )
        with peewee.__exception_wrapper__:
            # Planned for its own values each time: a generic plan cannot see how few
            # matches one window holds.
            cursor = database.cursor()
            cursor.execute(sql, w.params, prepare=False)
            found = cursor.fetchall()
        rows += found
        if len(rows) >= wanted:
            break
        length, end = end - start, start
        if found:
            span = found[0][_NUMBER] - start + 1  # found is newest first
            longest = min(4 * length, (wanted - len(rows)) * span // len(found))
        else:
            longest = 4 * length
        if longest >= 4 << WINDOW_SHIFTS[-1]:  # the rest in one go, without a window
            lexeme, start = None, 0
        else:
            lexeme, start = _window(end, longest)
    return _decode_all(rows[offset:wanted])


# Python's sqlite3 module lets go of the GIL for every row it steps through, and with other
# threads busy each step can wait a whole switch interval to get it back: many threads listing
# at once managed a fraction of what one thread managed alone (docs/benchmarks.md). So SQLite
# answers a page in one row: the page's (number, version) pairs as one JSON array, then, in the
# same snapshot, one JSON array of the notes not already decoded. Many threads then list as
# fast as one.
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
