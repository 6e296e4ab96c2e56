"""Erasure: destroying notes and everything holding their content, the record of each
erasure, and the clean-up that keeps erased text off the disk."""

from __future__ import annotations

import json

from ..domain.model import Author, Note, SubjectRef
from . import db
from .notes import _SELECT_NOTES, DECODED, _decode_all
from .uow import _insert, _unavailable_on_failure, run_sql


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


ERASED_TABLES = (
    "notes",
    "note_tags",
    "note_links",
    "note_events",
    "request_ids",
    "subjects",
    "note_texts",
)


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
