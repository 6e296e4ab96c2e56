"""The subject registry: the records notes may attach to."""

from __future__ import annotations

import dataclasses

from ..domain import validation
from ..domain.errors import SubjectNotFound, SubjectParentMismatch
from ..domain.model import Principal, Scope, Subject, SubjectType
from ..domain.paging import PageTokens
from ..store import subjects as subject_store
from ..store import uow
from . import requests
from .clock import now_us
from .notes import require

WRITE = (Scope.SUBJECTS_WRITE,)
READ = (Scope.NOTES_READ, Scope.SUBJECTS_WRITE)


def _not_found(subject_type: SubjectType, subject_id: str) -> SubjectNotFound:
    return SubjectNotFound(
        f"{subject_type.value} {subject_id!r} is not registered",
        metadata={"subjectType": subject_type.value, "subjectId": subject_id},
    )


def upsert_subject(p: Principal, s: Subject, request_id: str = "") -> tuple[Subject, bool, bool]:
    """Registers s, or updates the display name of the registered subject:
    (subject, created, replayed)."""
    require(p, WRITE)
    validation.validate_subject(s.type, s.id, s.parent_id, s.display_name, request_id)
    if s.type is SubjectType.ORDER_ITEM:
        with uow.reading():
            parent = subject_store.get_subject(p.org, SubjectType.ORDER, s.parent_id)
        if parent is None:
            raise _not_found(SubjectType.ORDER, s.parent_id)

    def work() -> tuple[Subject, bool]:
        existing = subject_store.get_subject(p.org, s.type, s.id)
        now = now_us()
        if existing is None:
            created = dataclasses.replace(s, create_time=now, update_time=now)
            subject_store.insert_subject(p.org, created)
            return created, True
        if existing.parent_id != s.parent_id:
            raise SubjectParentMismatch(
                f"{s.type.value} {s.id!r} is registered under order {existing.parent_id!r}",
                metadata={"parentId": existing.parent_id},
            )
        if s.display_name == existing.display_name:
            return existing, False
        updated = dataclasses.replace(existing, display_name=s.display_name, update_time=now)
        subject_store.update_subject(p.org, updated)
        return updated, False

    for _ in range(2):
        try:
            (subject, created), replayed = requests.once(
                p,
                "UpsertSubject",
                request_id,
                s.to_json,
                work,
                lambda out: {"subject": out[0].to_json(), "created": out[1]},
                lambda data: (Subject.from_json(data["subject"]), data["created"]),
            )
            return subject, created, replayed
        except uow.IntegrityError:
            continue  # registered concurrently: read it back as an update
    raise AssertionError("unreachable: the subject exists after a unique violation")


def get_subject(p: Principal, subject_type: SubjectType, subject_id: str) -> Subject:
    require(p, READ)
    validation.validate_subject_key(subject_type, subject_id)
    with uow.reading():
        found = subject_store.get_subject(p.org, subject_type, subject_id)
    if found is None:
        raise _not_found(subject_type, subject_id)
    return found


def archive_subject(
    p: Principal, subject_type: SubjectType, subject_id: str, request_id: str = ""
) -> tuple[Subject, bool]:
    """The archived subject (archiving an archived one changes nothing), and whether this
    was a replay."""
    require(p, WRITE)
    validation.validate_subject_key(subject_type, subject_id, request_id)

    def work() -> Subject:
        found = subject_store.get_subject(p.org, subject_type, subject_id)
        if found is None:
            raise _not_found(subject_type, subject_id)
        if found.archive_time is not None:
            return found
        now = now_us()
        archived = dataclasses.replace(found, archive_time=now, update_time=now)
        subject_store.update_subject(p.org, archived)
        return archived

    return requests.once(
        p,
        "ArchiveSubject",
        request_id,
        lambda: {"type": subject_type.value, "id": subject_id},
        work,
        Subject.to_json,
        Subject.from_json,
    )


def _list_fingerprint(subject_type: SubjectType | None, parent_id: str, show_archived: bool):
    return requests.fingerprint(
        "ListSubjects",
        {
            "type": subject_type.value if subject_type else "",
            "parent_id": parent_id,
            "show_archived": show_archived,
        },
    )


def list_subjects(
    p: Principal,
    subject_type: SubjectType | None,
    parent_id: str,
    show_archived: bool,
    page_size: int,
    page_token: str,
    tokens: PageTokens,
) -> tuple[list[Subject], str]:
    """A page of registered subjects in registration order, and the next page's token (AIP-132:
    a sealed keyset position bound to the filter, as ListNotes issues)."""
    require(p, READ)
    v = validation.Violations()
    if subject_type is not None and not isinstance(subject_type, SubjectType):
        v.add("type", "must be a known subject type")
    if parent_id:
        validation.check_id(v, "parent_id", parent_id)
    validation.check_page_size(v, page_size)
    v.raise_if_any()
    size = validation.effective_page_size(page_size)
    fingerprint = _list_fingerprint(subject_type, parent_id, show_archived)
    after = tokens.read(page_token, fingerprint) if page_token else 0
    with uow.reading():
        rows = subject_store.list_subjects(
            p.org, subject_type, parent_id, show_archived, after=after, limit=size + 1
        )
    page = rows[:size]
    token = tokens.issue(fingerprint, page[-1][0]) if len(rows) > size else ""
    return [s for _, s in page], token
