"""Subjects (customers, orders, order items...) of an organization."""

from __future__ import annotations

import json

from ..domain.model import Subject, SubjectRef, SubjectType
from . import db
from .models import SubjectRow
from .uow import run_sql

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


def lock_subject(org: str, subject_type: SubjectType, subject_id: str) -> Subject | None:
    """The subject, locked against notes being attached to it until the transaction ends:
    PostgreSQL's FOR UPDATE waits for every CreateNote holding it FOR SHARE (SQLite runs one
    write transaction at a time)."""
    lock = " FOR UPDATE" if db.current().is_postgres else ""
    rows = _subject_rows(
        f'"type" = ? AND "external_id" = ? LIMIT 1{lock}', (org, subject_type.value, subject_id)
    )
    return _subject(rows[0]) if rows else None


def order_items(org: str, order_id: str) -> list[str]:
    sql = 'SELECT "external_id" FROM "subjects" WHERE "org" = ? AND "type" = ? AND "parent_id" = ?'
    rows = run_sql(sql, (org, SubjectType.ORDER_ITEM.value, order_id)).fetchall()
    return [row[0] for row in rows]


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
