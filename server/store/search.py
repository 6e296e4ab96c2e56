"""ListNotes and CountNotes: the filters, full-text match and contains of a list as SQL."""

from __future__ import annotations

import json

import peewee

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


def _filtered(
    org: str,
    q: ListQuery,
    *,
    fts_driven: bool = False,
    window: str | None = None,
    texts: bool = False,
) -> _Where:
    """texts: the statement reads FROM _TEXTS_SOURCE, which holds the subject."""
    engine = db.current()
    w = _Where(engine.database.param)
    w.add('"org" = ?', org)
    if q.subject is not None and not texts:
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
    if q.contains and texts:
        _contains_by_texts(w, q.contains, engine.is_postgres)
    elif q.contains:
        _contains(w, org, q, engine.is_postgres)
    if not q.show_deleted:
        w.add('"delete_time" IS NULL')
        if texts:
            w.add('"t"."t_live"')  # before the join: deleted notes' texts are not joined
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
        query = "(" + " && ".join(parts) + ")"
        if window is None:
            w.add(f"{SEARCH_VECTOR} @@ {query}", *params)
        else:
            # window: the lexeme of a window of note numbers (or NULL: no window) that the
            # statement of _windows_sql computes as it runs. So the planner estimates each
            # condition below at its default, and both together at a few rows whatever the
            # terms: the second one (the lexeme again, or the terms) is there for that alone.
            # It plans that statement as 10 probes, and with a large estimate PostgreSQL
            # compiles it (JIT), which costs far more than the probes.
            w.add(
                f"{SEARCH_VECTOR} @@ coalesce({query} && {window}, {query})"
                f" AND {SEARCH_VECTOR} @@ coalesce({window}, {query})",
                *params,
                *params,
                *params,
            )
        return
    fts = " AND ".join('"' + " ".join(t.words) + '"' + ("*" if t.prefix else "") for t in terms)
    if fts_driven:
        w.add('"notes_fts" MATCH ?', fts)
    else:
        w.add('"number" IN (SELECT rowid FROM notes_fts WHERE notes_fts MATCH ?)', fts)


TRIGRAM = 3  # the shortest text a trigram index can look up


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_HAYSTACK = 'lower("title" || \' \' || "body")'  # PostgreSQL: notes_contains indexes this


def _contains(w: _Where, org: str, q: ListQuery, postgres: bool) -> None:
    """Title or body containing text, case-insensitively, beyond a single subject (that one
    is _contains_by_texts). Three characters or more go through a trigram index (SQLite FTS5
    trigram, PostgreSQL pg_trgm); shorter text is a scan of the notes the other filters leave
    (an order's and its items', say)."""
    text = q.contains
    if postgres:
        if len(text) >= TRIGRAM:
            w.add(f"{_HAYSTACK} LIKE lower(?)", _like(text))
        else:
            w.add(f"strpos({_HAYSTACK}, lower(?)) > 0", text)
        return
    if len(text) < TRIGRAM or q.subject is not None:
        # An order with its items' notes: a scan of those notes.
        w.add('notes_contains("title" || \' \' || "body", ?)', text)
        return
    phrase = '"' + text.replace('"', '""') + '"'
    w.add('"number" IN (SELECT rowid FROM notes_trgm WHERE notes_trgm MATCH ?)', phrase)


# A subject's notes containing a text (customer notes' q) are read from note_texts
# (migrations 12 and 13): each note's folded text in the subject's order, on a few pages of
# their own, where the notes themselves each sit on a page of their own. The statement walks
# them newest first and joins each match to its note for the other filters, so a common text
# stops at the page's end and a rare one reads the subject's texts, not its notes. (Written as
# "number" IN (SELECT ... note_texts ...), SQLite builds the whole list of matches first and
# PostgreSQL walks notes_by_subject instead: docs/benchmarks.md.) The cost follows the subject,
# never how common the text is across every organization.
_TEXTS_SOURCE = (
    '(SELECT "number" AS "t_number", "live" AS "t_live", "folded" AS "t_folded"'
    ' FROM "note_texts" WHERE "org" = ? AND "subject_type" = ? AND "subject_id" = ?) AS "t"'
    ' {join} "notes" ON "notes"."number" = "t"."t_number"'
)


def _by_texts(q: ListQuery) -> bool:
    return bool(q.contains) and q.subject is not None and not q.include_children


def _texts_source(org: str, q: ListQuery) -> tuple[str, list[object]]:
    engine = db.current()
    # SQLite: CROSS JOIN keeps note_texts the outer loop, whatever the other filters are.
    join = "JOIN" if engine.is_postgres else "CROSS JOIN"
    sql = _TEXTS_SOURCE.format(join=join).replace("?", engine.database.param)
    return sql, [org, q.subject.type.value, q.subject.id]


def _contains_by_texts(w: _Where, text: str, postgres: bool) -> None:
    if postgres:
        # t_folded is NULL for a text too long for note_texts' index: tested on the note.
        w.add('("t"."t_folded" IS NULL OR strpos("t"."t_folded", lower(?)) > 0)', text)
        w.add(f'("t"."t_folded" IS NOT NULL OR strpos({_HAYSTACK}, lower(?)) > 0)', text)
    else:
        w.add('instr("t"."t_folded", ?) > 0', db.folded(text))


def _count_by_texts(org: str, q: ListQuery) -> int:
    """The count of a subject's notes containing a text, when nothing else filters them: from
    note_texts alone (live says which notes are not deleted), no note read."""
    engine = db.current()
    s = q.subject
    w = _Where(engine.database.param)
    w.add('"org" = ? AND "subject_type" = ? AND "subject_id" = ?', org, s.type.value, s.id)
    if not q.show_deleted:
        w.add('"live"')
    if engine.is_postgres:
        w.add(
            '(strpos("folded", lower(?)) > 0 OR ("folded" IS NULL AND EXISTS (SELECT 1'
            ' FROM "notes" WHERE "notes"."number" = "note_texts"."number"'
            f" AND strpos({_HAYSTACK}, lower(?)) > 0)))",
            q.contains,
            q.contains,
        )
    else:
        w.add('instr("folded", ?) > 0', db.folded(q.contains))
    sql = f'SELECT COUNT(*) FROM "note_texts" WHERE {w.sql}'
    return int(engine.database.execute_sql(sql, w.params).fetchone()[0])


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
    texts = _by_texts(q)
    w = _filtered(org, q, fts_driven=fts_driven, texts=texts)
    params: list[object] = []
    if fts_driven:
        source, number = _FROM_FTS, '"notes_fts"."rowid"'
    elif texts:
        (source, params), number = _texts_source(org, q), '"t"."t_number"'
    else:
        source, number = '"notes"', '"number"'
    if before:
        w.add(f"{number} < ?", before)
    page = f"FROM {source} WHERE {w.sql} ORDER BY {number} DESC LIMIT {int(limit)}"
    if offset:
        page += f" OFFSET {int(offset)}"
    params += w.params
    if postgres:
        rows = db.current().database.execute_sql(f"SELECT {_ALL_COLUMNS} {page}", params)
        return _decode_all(rows.fetchall())
    return _list_sqlite(org, page, params)


def _next_shift(end: str, longest: str) -> str:
    """SQL: the shift of the longest window of the index that ends at end and is at most
    longest numbers long (4,096 at least); NULL (no window: all the rest in one go) once
    longest reaches 4 times the longest window."""
    sql = f"CASE WHEN {longest} >= {4 << WINDOW_SHIFTS[-1]} THEN NULL"
    for shift, larger in zip(WINDOW_SHIFTS, WINDOW_SHIFTS[1:], strict=False):
        sql += f" WHEN mod({end}, {1 << larger}) <> 0 OR {1 << larger} > {longest} THEN {shift}"
    return sql + f" ELSE {WINDOW_SHIFTS[-1]} END"


def _list_by_windows(org: str, q: ListQuery, *, before: int, limit: int, offset: int):
    """A search with nothing narrower to go by, newest first, window by window of note numbers:
    each probe reads the matches inside one window (ANDed with the window's lexeme, so only
    that part of the posting lists), and the probes stop once the page is full. After a window
    without a match the next is 4 times longer; after one with matches, as long as their
    density (from the window's start up to its newest match) says the rest of the page needs,
    at most 4 times longer. One query over every match would read and sort all of them (27,418
    notes for a common word at 1M), and walking the notes newest first reads every newer note
    that does not match (40,000 of them once a day of writes to other subjects sits on top); a
    probe reads neither. The probes are the steps of one recursive statement: one round trip,
    one plan, one snapshot."""
    sql, params = _windows_sql(org, q, before=before, limit=limit, offset=offset)
    with peewee.__exception_wrapper__:
        cursor = db.current().database.cursor()
        cursor.execute(sql, params, prepare=False)
        return _decode_all(cursor.fetchall())


def _windows_sql(org: str, q: ListQuery, *, before: int, limit: int, offset: int):
    """Each row of "probe" is a window to read: "end", "shift" (its length; NULL for no
    window, everything below end) and how many notes the page still needs ("left"), with the
    notes the probe of the window before it found ("found"). The next row follows from
    those notes as _list_by_windows says; the probes stop once nothing is left to find."""
    engine = db.current()
    params: list[object] = []
    if before:
        end = f"{engine.database.param}::bigint"
        params.append(before)
    else:
        end = '(SELECT coalesce(max("number"), 0) + 1 FROM "notes")'
    lexeme = """quote_literal('N' || "w"."shift" || '.' || (("w"."end" - 1) >> "w"."shift"))"""
    probe = _filtered(org, q, window=f"{lexeme}::tsquery")
    params += probe.params
    found, n = '"f"."found"', 'cardinality("f"."found")'
    length = '("w"."end" - "s"."start")'
    density = f'("w"."left" - {n}) * (({found}[1])."number" - "s"."start" + 1) / {n}'
    # "number" + 0: the planner must neither walk the notes newest first (it cannot tell that
    # a window's matches may all lie below thousands of newer notes) nor AND a range of the
    # primary key with what the window's lexeme already says. OFFSET 0: the probe runs once
    # per window, not once for each mention of "found" below.
    sql = f"""WITH RECURSIVE "probe" ("end", "shift", "left", "found") AS (
    SELECT {end}, {WINDOW_SHIFTS[0]}, {int(offset + limit)}, ARRAY[]::"notes"[]
  UNION ALL
    SELECT "s"."start", {_next_shift('"s"."start"', '"l"."longest"')}, "w"."left" - {n}, {found}
    FROM "probe" AS "w",
      LATERAL (SELECT coalesce((("w"."end" - 1) >> "w"."shift") << "w"."shift", 0) AS "start")
        AS "s",
      LATERAL (SELECT ARRAY(SELECT "notes" FROM "notes" WHERE {probe.sql}
        AND "number" + 0 < "w"."end"
        ORDER BY "number" + 0 DESC LIMIT "w"."left") AS "found" OFFSET 0) AS "f",
      LATERAL (SELECT CASE WHEN {n} = 0 THEN 4 * {length}
        ELSE least(4 * {length}, {density}) END AS "longest") AS "l"
    WHERE "w"."left" > 0 AND "w"."end" > 0
)
SELECT {", ".join(f'"u"."{c}"' for c in _NOTE_COLUMNS)}
FROM "probe", unnest("probe"."found") AS "u"
ORDER BY "u"."number" DESC LIMIT {int(limit)} OFFSET {int(offset)}"""
    return sql, params


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


_PAGING = ("page_size", "page_token", "offset", "include_total_size")


def count_notes(org: str, q: ListQuery) -> int:
    if not _by_texts(q):
        w = _filtered(org, q)
        sql = f'SELECT COUNT(*) FROM "notes" WHERE {w.sql}'
        return int(db.current().database.execute_sql(sql, w.params).fetchone()[0])
    if q == ListQuery(
        subject=q.subject,
        contains=q.contains,
        show_deleted=q.show_deleted,
        **{k: getattr(q, k) for k in _PAGING},
    ):
        return _count_by_texts(org, q)  # nothing but the subject and the text filter them
    w = _filtered(org, q, texts=True)
    source, params = _texts_source(org, q)
    sql = f"SELECT COUNT(*) FROM {source} WHERE {w.sql}"
    return int(db.current().database.execute_sql(sql, params + w.params).fetchone()[0])
