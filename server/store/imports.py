"""Writing imported notes as they were (ids, numbers, authors, surfaces, times, versions) and
reading an organization's notes out for export. Batches of notes, one transaction each.

A note whose id is already stored is skipped, so importing a file twice creates nothing new. A
note keeps its number (its organization's, org_number) unless another note of the organization
holds it (then it gets a fresh one from the organization's counter: `renumbered`); the counter
is moved past every number imported. The store's own row key is always fresh.
SQLite: the full-text insert trigger is dropped inside the batch's transaction and the batch's
FTS rows written by one INSERT ... SELECT, as bulk.py does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..domain.model import Note, NoteEvent, Subject, SubjectType
from . import db
from .bulk import EVENT_COLUMNS, NOTE_COLUMNS, fts_in_one_go
from .notes import _SELECT_NOTES, _decode_all, note_row, taken_numbers
from .subjects import list_subjects


@dataclass
class Written:
    created: int = 0
    skipped: int = 0
    renumbered: int = 0


def _row(org: str, n: Note) -> tuple:
    # The same encoding as a note written by the service, with the keys it kept.
    values = {"number": n.row, "org_number": n.number, **note_row(org, n)}
    return tuple(values[name] for name in NOTE_COLUMNS)


def _event_row(org: str, note_id: str, e: NoteEvent) -> tuple:
    return (
        org,
        note_id,
        e.action,
        e.actor.type.value,
        e.actor.id,
        e.actor.display_name,
        e.surface.value,
        e.api_key_id,
        e.purpose,
        e.request_id,
        e.old_version,
        e.new_version,
        e.event_time,
    )


def synthetic_events(n: Note) -> list[NoteEvent]:
    """The history of a note imported without one: its creation, and its deletion."""
    assert n.author is not None
    out = [NoteEvent("CREATE", n.author, n.created_via, "", 0, 1, n.create_time)]
    if n.delete_time is not None:
        out.append(
            NoteEvent(
                "DELETE", n.author, n.created_via, "", n.version - 1, n.version, n.delete_time
            )
        )
    return out


def ensure_subjects(org: str, subjects: list[Subject], now: int) -> None:
    """Registers the subjects not registered yet (orders before their items); registered ones
    are left as they are."""
    if not subjects:
        return
    database = db.current().database
    p = database.param
    ordered = sorted(subjects, key=lambda s: s.type is SubjectType.ORDER_ITEM)
    rows = [
        (
            org,
            s.type.value,
            s.id,
            s.parent_id,
            s.display_name,
            s.create_time or now,
            s.update_time or now,
            s.archive_time,
        )
        for s in ordered
    ]
    database.cursor().executemany(
        "INSERT INTO subjects (org, type, external_id, parent_id, display_name, create_time,"
        f" update_time, archive_time) VALUES ({', '.join([p] * 8)})"
        " ON CONFLICT (org, type, external_id) DO NOTHING",
        rows,
    )


def _existing_ids(ids: list[str]) -> set[str]:
    if db.current().is_postgres:
        sql, params = 'SELECT "id" FROM "notes" WHERE "id" = ANY(%s)', (ids,)
    else:
        sql = 'SELECT "id" FROM "notes" WHERE "id" IN (SELECT "value" FROM json_each(?))'
        params = (json.dumps(ids),)
    return {row[0] for row in db.current().database.execute_sql(sql, params).fetchall()}


def write_notes(org: str, notes: list[Note], events: dict[str, list[NoteEvent]]) -> Written:
    """Inside the caller's transaction: the notes not stored yet, with their tags, links and
    audit events (events[note.id], else synthetic_events)."""
    out = Written()
    engine = db.current()
    existing = _existing_ids([n.id for n in notes])
    fresh, seen = [], set()
    for n in notes:
        if n.id in existing or n.id in seen:
            out.skipped += 1
        else:
            seen.add(n.id)
            fresh.append(n)
    if not fresh:
        return out
    wanted = [n.number for n in fresh if n.number > 0]
    taken = taken_numbers(org, wanted)
    used: set[int] = set()
    renumber = []
    for n in fresh:
        if n.number <= 0 or n.number in taken or n.number in used:
            if n.number > 0:
                out.renumbered += 1
            renumber.append(n)
        else:
            used.add(n.number)
    cursor = engine.database.cursor()
    p = engine.database.param
    # The organization's counter, locked until commit (PostgreSQL: the row; SQLite: the
    # one writer), then moved past every number kept or given here.
    last = cursor.execute(
        f"INSERT INTO org_counters (org, last) VALUES ({p}, 0) "
        "ON CONFLICT (org) DO UPDATE SET last = org_counters.last RETURNING last",
        (org,),
    ).fetchone()[0]
    start = max([int(last), *used]) + 1
    for k, n in enumerate(renumber):
        n.number = start + k
    top = max([int(last), *used, *(n.number for n in renumber)])
    cursor.execute(f"UPDATE org_counters SET last = {p} WHERE org = {p}", (top, org))
    # Row keys: fresh, after every key the table has had.
    if engine.is_postgres:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('notes', 'number')) FROM generate_series(1, %s)",
            (len(fresh),),
        )
        keys = sorted(row[0] for row in cursor.fetchall())
    else:
        top_key = cursor.execute(
            "SELECT max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'notes'), 0),"
            " COALESCE((SELECT max(number) FROM notes), 0))"
        ).fetchone()[0]
        keys = list(range(top_key + 1, top_key + 1 + len(fresh)))
    for n, key in zip(fresh, keys, strict=True):
        n.row = key
    rows = [_row(org, n) for n in fresh]
    columns = ", ".join(NOTE_COLUMNS)
    tags = [(n.row, org, t) for n in fresh for t in n.tags]
    links = [(n.row, org, r.type.value, r.id) for n in fresh for r in n.linked_records]
    event_rows = [
        _event_row(org, n.id, e) for n in fresh for e in (events.get(n.id) or synthetic_events(n))
    ]
    if engine.is_postgres:
        with cursor.copy(f"COPY notes ({columns}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
        with cursor.copy("COPY note_tags (note_number, org, tag) FROM STDIN") as copy:
            for r in tags:
                copy.write_row(r)
        with cursor.copy("COPY note_links (note_number, org, type, record_id) FROM STDIN") as copy:
            for r in links:
                copy.write_row(r)
        with cursor.copy(f"COPY note_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
            for r in event_rows:
                copy.write_row(r)
        out.created = len(fresh)
        return out
    keys = (json.dumps([n.row for n in fresh]),)
    with fts_in_one_go(cursor, "number IN (SELECT value FROM json_each(?))", keys):
        cursor.executemany(
            f"INSERT INTO notes ({columns}) VALUES ({', '.join('?' * len(NOTE_COLUMNS))})", rows
        )
    cursor.executemany("INSERT INTO note_tags (note_number, org, tag) VALUES (?, ?, ?)", tags)
    cursor.executemany(
        "INSERT INTO note_links (note_number, org, type, record_id) VALUES (?, ?, ?, ?)", links
    )
    cursor.executemany(
        f"INSERT INTO note_events ({', '.join(EVENT_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
        event_rows,
    )
    out.created = len(fresh)
    return out


# --- export -----------------------------------------------------------------------------


def export_page(org: str, after: int, limit: int) -> list[Note]:
    """Notes of org, deleted too, by number after `after`."""
    p = db.current().database.param
    sql = f'{_SELECT_NOTES}"org" = {p} AND "number" > {p} ORDER BY "number" LIMIT {int(limit)}'
    rows = db.current().database.execute_sql(sql, (org, after)).fetchall()
    return _decode_all(rows)


def all_subjects(org: str) -> list[Subject]:
    out, after = [], 0
    while True:
        page = list_subjects(org, None, "", True, after=after, limit=1000)
        out.extend(s for _, s in page)
        if len(page) < 1000:
            return out
        after = page[-1][0]
