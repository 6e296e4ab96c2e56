"""Notes and their index rows (tags, links). Every function takes the organization and
filters by it."""

from __future__ import annotations

import collections
import functools
import json

from ..domain.model import (
    Author,
    AuthorType,
    Note,
    NoteType,
    SubjectRef,
    SubjectType,
    Surface,
    Visibility,
)
from ..memo import Memo
from . import db
from .models import NoteLinkRow, NoteRow, NoteTagRow
from .uow import _insert, run_sql

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


def subject_note_numbers(org: str, subject_type: SubjectType, subject_id: str) -> list[int]:
    """Every note about the subject, deleted or not; for an order, its items' notes too."""
    sql = 'SELECT "number" FROM "notes" WHERE "org" = ? AND "subject_type" = ? AND "subject_id" = ?'
    params: list[object] = [org, subject_type.value, subject_id]
    if subject_type is SubjectType.ORDER:
        sql += ' UNION SELECT "number" FROM "notes" WHERE "org" = ? AND "subject_parent_id" = ?'
        sql += ' AND "subject_type" = ?'
        params += [org, subject_id, SubjectType.ORDER_ITEM.value]
    return sorted(row[0] for row in run_sql(sql, params).fetchall())


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
