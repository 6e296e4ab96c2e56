"""Erasure (the right to be forgotten) and the retention of soft-deleted notes.

An erasure destroys notes outright: their rows, tags, links, full-text rows, audit events and
the stored request responses that hold their text (erasure.erase_notes). Erasing a subject
also removes it from other notes' linked records (each such note gets a new version and an
UPDATE audit event), clears its display name and archives it; the subject row stays, so its id
is not silently registered afresh. One row in `erasures` records who erased what and how many
notes, never any content. After the transaction commits, SQLite's WAL is checkpointed and
truncated and PostgreSQL's tables are vacuumed (erasure.after_erasure).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from dataclasses import dataclass

from ..domain import validation
from ..domain.errors import SubjectNotFound
from ..domain.model import Author, AuthorType, Principal, Scope, Subject, SubjectRef, SubjectType
from ..store import erasure, uow
from ..store import notes as note_store
from ..store import subjects as subject_store
from . import events, requests
from .clock import now_us
from .notes import require, write_version

log = logging.getLogger("notes.erasure")

WRITE = (Scope.SUBJECTS_WRITE,)
PURGE_BATCH = 500


@dataclass(frozen=True)
class Erased:
    notes_erased: int
    links_removed: int


def _unlink(p: Principal, target: Subject, request_id: str) -> int:
    """Removes target from the linked records of every note naming it; returns how many links
    went. Each changed note gets a new version and an UPDATE event."""
    removed = 0
    for note in note_store.notes_linking(p.org, target.type, target.id):
        links = [r for r in note.linked_records if r.key != (target.type.value, target.id)]
        if len(links) == len(note.linked_records):
            continue
        removed += len(note.linked_records) - len(links)
        # Locked by notes_linking (PostgreSQL) or the one writer (SQLite): it cannot move.
        write_version(
            p,
            "UPDATE",
            note,
            dataclasses.replace(note, linked_records=links),
            surface=note.created_via,
            request_id=request_id,
            index_changed=True,
        )
    return removed


def erase_subject(
    p: Principal, subject_type: SubjectType, subject_id: str, request_id: str = ""
) -> tuple[Erased, bool]:
    """(what was erased, replayed). Erasing an erased subject erases nothing more."""
    require(p, WRITE)
    validation.validate_subject_key(subject_type, subject_id, request_id)

    def work() -> Erased:
        subject = subject_store.lock_subject(p.org, subject_type, subject_id)
        if subject is None:
            raise SubjectNotFound(
                f"{subject_type.value} {subject_id!r} is not registered",
                metadata={"subjectType": subject_type.value, "subjectId": subject_id},
            )
        targets = [subject]
        if subject.type is SubjectType.ORDER:
            for item in subject_store.order_items(p.org, subject.id):
                targets.append(Subject(SubjectType.ORDER_ITEM, item, subject.id))
        numbers = note_store.subject_note_numbers(p.org, subject.type, subject.id)
        erased = erasure.erase_notes(p.org, numbers)
        events.record_erased(p.org, p.author, erased, request_id=request_id, at=now_us())
        removed = sum(_unlink(p, t, request_id) for t in targets)
        now = now_us()
        for t in targets:
            subject_store.forget_subject(p.org, t, now)
        if erased:
            erasure.compact_search_index()
        erasure.add_erasure(
            p.org,
            reason="subject",
            subject=SubjectRef(subject.type, subject.id),
            actor=p.author,
            request_id=request_id,
            notes_erased=len(erased),
            links_removed=removed,
            now=now,
        )
        return Erased(len(erased), removed)

    result, replayed = requests.once(
        p,
        "EraseSubject",
        request_id,
        lambda: {"type": subject_type.value, "id": subject_id},
        work,
        dataclasses.asdict,
        lambda data: Erased(**data),
    )
    if not replayed:
        erasure.after_erasure()
    return result, replayed


def purge_deleted(older_than_us: int) -> int:
    """Erases every note soft-deleted before now - older_than_us; returns how many. Batches of
    PURGE_BATCH notes, one transaction each. Safe on several replicas at once: PostgreSQL
    locks each batch FOR UPDATE SKIP LOCKED, so two purges never take the same notes; SQLite
    runs one write transaction at a time, and a note erased by one is not found by the other."""
    cutoff = now_us() - older_than_us
    actor = Author(AuthorType.SYSTEM, "purge-deleted")
    total = 0
    while True:
        with uow.writing():
            found = note_store.deleted_note_numbers(cutoff, PURGE_BATCH)
            by_org: dict[str, list[int]] = defaultdict(list)
            for org, number in found:
                by_org[org].append(number)
            for org, numbers in by_org.items():
                erased = erasure.erase_notes(org, numbers)
                events.record_erased(org, actor, erased, request_id="", at=now_us())
                erasure.add_erasure(
                    org,
                    reason="retention",
                    subject=None,
                    actor=actor,
                    request_id="",
                    notes_erased=len(erased),
                    links_removed=0,
                    now=now_us(),
                )
                total += len(erased)
        if len(found) < PURGE_BATCH:
            break
    if total:
        with uow.writing():
            erasure.compact_search_index()
        erasure.after_erasure()
    return total
