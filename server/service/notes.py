"""Note use cases: permissions, subject rules, request ids, versions and the audit trail."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import ulid

from ..domain import validation
from ..domain.errors import (
    NotDeleted,
    NoteDeleted,
    NoteNotFound,
    PermissionDenied,
    SubjectArchived,
    SubjectNotFound,
    SubjectParentMismatch,
    ValidationFailed,
    VersionConflict,
)
from ..domain.ids import NOTE_ID_PREFIX
from ..domain.model import (
    ListQuery,
    Note,
    NoteEvent,
    NoteFields,
    NotePage,
    Outcome,
    Principal,
    Scope,
    SubjectRef,
    Surface,
)
from ..domain.paging import PageTokens
from ..memo import Memo
from ..store import audit, search, uow
from ..store import notes as note_store
from ..store import subjects as subject_store
from . import events, requests
from .clock import now_us

READ = (Scope.NOTES_READ,)  # notes:write grants it too (Principal.grants)
WRITE = (Scope.NOTES_WRITE,)


def require(p: Principal, scopes: tuple[Scope, ...]) -> None:
    """PERMISSION_DENIED unless the credential grants one of scopes."""
    if not any(p.grants(s.value) for s in scopes):
        raise PermissionDenied(
            f"the credential lacks the scope {scopes[-1].value}",
            metadata={"requiredScope": scopes[-1].value},
        )


def new_note_id() -> str:
    """A ULID whose 128 bits are also an RFC 9562 UUIDv7 (NewStore shows ids as UUIDs): both
    start with the 48-bit Unix time in milliseconds, so setting the version (7) and variant
    (0b10) bits in the random part makes one value both, and the ULID <-> UUID mapping stays
    the identity on the bits. Ids made before keep theirs."""
    raw = bytearray(ulid.ULID().bytes)
    raw[6] = 0x70 | (raw[6] & 0x0F)
    raw[8] = 0x80 | (raw[8] & 0x3F)
    return NOTE_ID_PREFIX + str(ulid.ULID.from_bytes(bytes(raw)))


def _idempotent(
    p: Principal,
    method: str,
    request_id: str,
    payload: Callable[[], object],
    work: Callable[[], Note],
) -> Outcome:
    note, replayed = requests.once(
        p, method, request_id, payload, work, Note.to_json, Note.from_json
    )
    return Outcome(note, replayed=replayed)


def _event(p: Principal, action: str, surface: Surface, request_id: str, old: int, new: int):
    return NoteEvent(
        action=action,
        actor=p.author,
        surface=surface,
        request_id=request_id,
        old_version=old,
        new_version=new,
        event_time=now_us(),
        api_key_id=p.api_key_id,
        purpose=p.purpose,
    )


def _check_subjects(
    p: Principal, subject: SubjectRef | None, links: list[SubjectRef]
) -> tuple[SubjectRef | None, list[SubjectRef]]:
    """The subject and the links as registered (order items with their order); refuses
    unknown or archived records, and an order item named under another order."""
    refs = ([subject] if subject else []) + links
    known = subject_store.get_subjects(p.org, refs)
    for field, ref in [("subject", subject)] + [
        (f"linked_records[{i}]", r) for i, r in enumerate(links)
    ]:
        if ref is None:
            continue
        found = known.get(ref.key)
        if found is None:
            raise SubjectNotFound(
                f"{field}: {ref.type.value} {ref.id!r} is not registered",
                metadata={"field": field, "subjectType": ref.type.value, "subjectId": ref.id},
            )
        if found.archive_time is not None:
            raise SubjectArchived(
                f"{field}: {ref.type.value} {ref.id!r} is archived",
                metadata={"field": field, "subjectType": ref.type.value, "subjectId": ref.id},
            )
        if ref.parent_id and ref.parent_id != found.parent_id:
            raise SubjectParentMismatch(
                f"{field}: {ref.type.value} {ref.id!r} is not registered under order "
                f"{ref.parent_id!r}",
                metadata={"field": field, "parentId": ref.parent_id},
            )

    def registered(ref: SubjectRef) -> SubjectRef:
        return SubjectRef(ref.type, ref.id, known[ref.key].parent_id)

    return (registered(subject) if subject else None), [registered(r) for r in links]


def _normalized(fields: NoteFields) -> NoteFields:
    assert fields.subject is not None
    return dataclasses.replace(
        fields,
        linked_records=validation.normalize_links(fields.subject, fields.linked_records),
        tags=list(dict.fromkeys(fields.tags)),
    )


def create_note(
    p: Principal, fields: NoteFields, *, request_id: str = "", surface: Surface = Surface.GRPC
) -> Outcome:
    require(p, WRITE)
    validation.validate_new_note(fields, request_id)
    fields = _normalized(fields)

    def work() -> Note:
        return _insert_new(p, fields, surface, request_id)

    def payload() -> object:
        return {"fields": dataclasses.asdict(fields), "surface": surface.value}

    return _idempotent(p, "CreateNote", request_id, payload, work)


def _insert_new(p: Principal, fields: NoteFields, surface: Surface, request_id: str) -> Note:
    """Inside a write transaction: the new note (fields validated and normalized)."""
    subject, links = _check_subjects(p, fields.subject, fields.linked_records)
    now = now_us()
    note = Note(
        **{f.name: getattr(fields, f.name) for f in dataclasses.fields(NoteFields)},
        id=new_note_id(),
        org=p.org,
        author=p.author,
        created_via=surface,
        api_key_id=p.api_key_id,
        purpose=p.purpose,
        create_time=now,
        update_time=now,
        version=1,
    )
    note.subject, note.linked_records = subject, links
    note.row, note.number = note_store.insert_note(p.org, note)
    audit.add_event(p.org, note.id, _event(p, "CREATE", surface, request_id, 0, 1))
    events.record(p, "CREATE", None, note, surface=surface, request_id=request_id, at=now)
    return note


BATCH_MAX = 1000


def batch_create_notes(
    p: Principal,
    batch: list[tuple[NoteFields, str]],
    *,
    request_id: str = "",
    surface: Surface = Surface.GRPC,
) -> tuple[list[Note], bool]:
    """AIP-233: every (fields, inner request_id) of batch created in one transaction, or none.
    Violations are named requests[i].<field>; a subject error names its request in the
    ErrorInfo's field. Returns (notes, replayed)."""
    require(p, WRITE)
    v = validation.Violations()
    if not 1 <= len(batch) <= BATCH_MAX:
        v.add("requests", f"must have 1 to {BATCH_MAX} items")
    validation.check_request_id(v, request_id)
    for i, (fields, inner) in enumerate(batch):
        prefix = f"requests[{i}]"
        if inner:
            v.add(f"{prefix}.request_id", "must be empty; the batch's request_id covers it")
        try:
            validation.validate_new_note(fields, "")
        except ValidationFailed as e:
            for field_path, description in e.violations:
                v.add(f"{prefix}.note.{field_path}", description)
    v.raise_if_any()
    normalized = [_normalized(fields) for fields, _ in batch]

    def work() -> list[Note]:
        out = []
        for i, fields in enumerate(normalized):
            try:
                out.append(_insert_new(p, fields, surface, request_id))
            except (SubjectNotFound, SubjectArchived, SubjectParentMismatch) as e:
                field_path = e.metadata.get("field", "subject")
                e.metadata["field"] = f"requests[{i}].note.{field_path}"
                e.message = f"requests[{i}].note.{e.message}"
                e.args = (e.message,)
                raise
        return out

    def payload() -> object:
        return {
            "batch": [dataclasses.asdict(fields) for fields in normalized],
            "surface": surface.value,
        }

    return requests.once(
        p,
        "BatchCreateNotes",
        request_id,
        payload,
        work,
        lambda notes: [n.to_json() for n in notes],
        lambda data: [Note.from_json(d) for d in data],
    )


def get_note(p: Principal, *, note_id: str = "", number: int = 0) -> Note:
    require(p, READ)
    if not number:
        validation.validate_note_id(note_id)
    with uow.reading():
        note = note_store.get_note(p.org, note_id=note_id, number=number)
    if note is None:
        raise _not_found(note_id or str(number))
    return note


def _not_found(note_id: str) -> NoteNotFound:
    return NoteNotFound(f"note {note_id!r} was not found", metadata={"noteId": note_id})


def _change(
    p: Principal,
    method: str,
    action: str,
    note_id: str,
    *,
    expected: int,
    request_id: str,
    payload: Callable[[], object],
    apply: Callable[[Note], tuple[Note, bool]],
    surface: Surface,
) -> Outcome:
    """Read, check, write one note under its version; the write is conditional on the version
    read, so no concurrent change is ever overwritten unseen."""

    def work() -> Note:
        note = note_store.get_note(p.org, note_id=note_id, for_update=True)
        if note is None:
            raise _not_found(note_id)
        if expected and note.version != expected:
            raise VersionConflict(expected, note.version)
        changed, index_changed = apply(note)
        if not write_version(
            p,
            action,
            note,
            changed,
            surface=surface,
            request_id=request_id,
            index_changed=index_changed,
        ):
            current = note_store.get_note(p.org, note_id=note_id)
            raise VersionConflict(expected or note.version, current.version if current else 0)
        return changed

    return _idempotent(p, method, request_id, payload, work)


def write_version(
    p: Principal,
    action: str,
    before: Note,
    changed: Note,
    *,
    surface: Surface,
    request_id: str,
    index_changed: bool,
) -> bool:
    """Inside a write transaction: changed is stored as before's next version, with its audit
    record and change-feed events; False if the stored note has moved past before.version."""
    changed.version = before.version + 1
    # A millisecond later at least: HTTP clients send update_time back, to the millisecond,
    # as the version they saw (ShelfCycle's If-Match), so no two versions of a note may share
    # one.
    changed.update_time = max(now_us(), before.update_time + 1000)
    if not note_store.update_note(
        p.org, changed, read_version=before.version, index_changed=index_changed
    ):
        return False
    event = _event(p, action, surface, request_id, before.version, changed.version)
    audit.add_event(p.org, before.id, event)
    events.record(
        p, action, before, changed, surface=surface, request_id=request_id, at=event.event_time
    )
    return True


def update_note(
    p: Principal,
    note_id: str,
    fields: NoteFields,
    mask: tuple[str, ...],
    *,
    expected_version: int = 0,
    request_id: str = "",
    surface: Surface = Surface.GRPC,
) -> Outcome:
    require(p, WRITE)
    validation.validate_update(note_id, fields, mask, expected_version, request_id)
    mask = tuple(dict.fromkeys(mask))

    def apply(note: Note) -> tuple[Note, bool]:
        if note.delete_time is not None:
            raise NoteDeleted(f"note {note_id!r} is deleted", metadata={"noteId": note_id})
        assert note.subject is not None
        changed = dataclasses.replace(note)
        for name in mask:
            setattr(changed, name, getattr(fields, name))
        if "linked_records" in mask:
            links = validation.normalize_links(note.subject, changed.linked_records)
            changed.linked_records = _check_subjects(p, None, links)[1]
        if "tags" in mask:
            changed.tags = list(dict.fromkeys(changed.tags))
        return changed, "linked_records" in mask or "tags" in mask

    def payload() -> object:
        return {
            "id": note_id,
            "mask": list(mask),
            "fields": {name: _plain(getattr(fields, name)) for name in mask},
            "expected": expected_version,
        }

    return _change(
        p,
        "UpdateNote",
        "UPDATE",
        note_id,
        expected=expected_version,
        request_id=request_id,
        payload=payload,
        apply=apply,
        surface=surface,
    )


def _plain(value: object) -> object:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)  # type: ignore[arg-type]
    return value


def delete_note(
    p: Principal,
    note_id: str,
    *,
    expected_version: int = 0,
    request_id: str = "",
    surface: Surface = Surface.GRPC,
) -> Outcome:
    return _set_deleted(p, note_id, True, expected_version, request_id, surface)


def undelete_note(
    p: Principal,
    note_id: str,
    *,
    expected_version: int = 0,
    request_id: str = "",
    surface: Surface = Surface.GRPC,
) -> Outcome:
    return _set_deleted(p, note_id, False, expected_version, request_id, surface)


def _set_deleted(
    p: Principal, note_id: str, deleted: bool, expected: int, request_id: str, surface: Surface
) -> Outcome:
    """Soft delete, or its undoing. Deleting a deleted note is NOT_FOUND; undeleting a live
    one is ALREADY_EXISTS."""
    require(p, WRITE)
    validation.validate_note_call(note_id, expected, request_id)

    def apply(note: Note) -> tuple[Note, bool]:
        if deleted and note.delete_time is not None:
            raise _not_found(note_id)
        if not deleted and note.delete_time is None:
            raise NotDeleted(f"note {note_id!r} is not deleted", metadata={"noteId": note_id})
        return dataclasses.replace(note, delete_time=now_us() if deleted else None), False

    return _change(
        p,
        "DeleteNote" if deleted else "UndeleteNote",
        "DELETE" if deleted else "UNDELETE",
        note_id,
        expected=expected,
        request_id=request_id,
        payload=lambda: {"id": note_id, "expected": expected},
        apply=apply,
        surface=surface,
    )


# A list's filter fingerprint is a pure function of the filter (asdict, JSON and SHA-256, a
# visible share of a ListNotes: docs/benchmarks.md), so it is kept by the filter's values.
FINGERPRINTS: Memo[str] = Memo(1000)


def _filter_fingerprint(q: ListQuery) -> str:
    key = (
        q.subject,
        q.include_children,
        q.linked_record,
        tuple(q.author_ids),
        q.visibility,
        tuple(q.note_types),
        tuple(q.tags),
        q.query,
        q.contains,
        q.show_deleted,
    )
    found = FINGERPRINTS.get(key)
    return found if found is not None else FINGERPRINTS.put(key, _fingerprint_of(q))


def _fingerprint_of(q: ListQuery) -> str:
    data = dataclasses.asdict(q)
    for name in ("page_size", "page_token", "offset", "include_total_size"):
        data.pop(name)
    if not data["contains"]:
        data.pop("contains")  # tokens issued before the field existed stay good
    return requests.fingerprint("ListNotes", data)


def list_notes(p: Principal, q: ListQuery, tokens: PageTokens) -> NotePage:
    require(p, READ)
    validation.validate_list(q)
    size = validation.effective_page_size(q.page_size)
    fingerprint = _filter_fingerprint(q)
    before = tokens.read(q.page_token, fingerprint) if q.page_token else 0
    with uow.reading():
        counted = q.include_total_size or q.offset > validation.OFFSET_MAX
        # The first page, when it holds every match, is its own count (a search that finds a
        # few notes reads them once, not twice). Past it, counted first, so that an offset
        # past the end reads no rows at all.
        first = not before and not q.offset
        total = search.count_notes(p.org, q) if counted and not first else 0
        if counted and q.offset and q.offset >= total:
            notes = []
        else:
            validation.validate_offset_walk(q.offset)
            notes = search.list_notes(p.org, q, before=before, limit=size + 1, offset=q.offset)
            if counted and first:
                total = len(notes) if len(notes) <= size else search.count_notes(p.org, q)
    page = NotePage(notes[:size], total_size=total if q.include_total_size else 0)
    if len(notes) > size:
        page.next_page_token = tokens.issue(fingerprint, page.notes[-1].row)
    return page


def note_history(p: Principal, note_id: str) -> list[NoteEvent]:
    require(p, READ)
    validation.validate_note_id(note_id)
    with uow.reading():
        events = audit.list_events(p.org, note_id)
    if not events:
        raise _not_found(note_id)
    return events
