"""Every input rule of the service, in one place. Violations are collected, never stopped at."""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import ValidationFailed
from .model import (
    UPDATABLE_FIELDS,
    ListQuery,
    NoteFields,
    NoteType,
    SubjectRef,
    SubjectType,
    Visibility,
)

BODY_MAX = 65_536
TITLE_MAX = 512
TAGS_MAX = 256
TAG_MAX = 128
LINKS_MAX = 50
METADATA_MAX_BYTES = 64 * 1024
METADATA_MAX_DEPTH = 32
ID_MAX = 128
REQUEST_ID_MAX = 36
SOURCE_MAX = 256
DISPLAY_NAME_MAX = 256
QUERY_MAX = 512
AUTHOR_IDS_MAX = 50
PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 1000
OFFSET_MAX = 100_000


class Violations:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self.items.append((field, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationFailed(self.items)


def _tags(v: Violations, tags: list[str]) -> None:
    """A note's tags and a list's tag filter: the same limits."""
    if len(tags) > TAGS_MAX:
        v.add("tags", f"must have at most {TAGS_MAX} items")
    for i, tag in enumerate(tags):
        _text(v, f"tags[{i}]", tag, 1, TAG_MAX)


def _text(v: Violations, field: str, value: str, lo: int, hi: int) -> None:
    if "\x00" in value:
        v.add(field, "must not contain NUL characters")
    elif _has_surrogate(value):
        v.add(field, "must be valid Unicode")
    elif not lo <= len(value) <= hi:
        if lo and not value:
            v.add(field, "is required")
        else:
            v.add(field, f"must be {lo}..{hi} characters")


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_id(v: Violations, field: str, value: str) -> None:
    """Ids are 1..128 printable characters (no control, no separator other than space)."""
    if not value:
        v.add(field, "is required")
    elif len(value) > ID_MAX:
        v.add(field, f"must be at most {ID_MAX} characters")
    elif not value.isprintable() or value != value.strip():
        v.add(field, "must be printable characters without surrounding spaces")
    elif _has_surrogate(value):
        v.add(field, "must be valid Unicode")


def check_request_id(v: Violations, value: str) -> None:
    if len(value) > REQUEST_ID_MAX:
        v.add("request_id", f"must be at most {REQUEST_ID_MAX} characters")
    elif value and not all(33 <= ord(c) < 127 for c in value):
        v.add("request_id", "must be printable ASCII")


def check_subject_ref(
    v: Violations, field: str, ref: SubjectRef | None, *, required: bool = True
) -> None:
    if ref is None:
        if required:
            v.add(field, "is required")
        return
    if not isinstance(ref.type, SubjectType):
        v.add(f"{field}.type", "must be a known subject type")
    check_id(v, f"{field}.id", ref.id)
    if ref.parent_id:
        check_id(v, f"{field}.parent_id", ref.parent_id)
        if ref.type is not SubjectType.ORDER_ITEM:
            v.add(f"{field}.parent_id", "is only for ORDER_ITEM subjects")


def _metadata_depth(value: Any, depth: int = 0) -> int:
    if isinstance(value, dict):
        return max([_metadata_depth(x, depth + 1) for x in value.values()], default=depth + 1)
    if isinstance(value, list):
        return max([_metadata_depth(x, depth + 1) for x in value], default=depth + 1)
    return depth


def _strings_ok(value: Any) -> bool:
    """Strings are valid Unicode without NUL; numbers are finite (JSON has no Infinity)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return "\x00" not in value and not _has_surrogate(value)
    if isinstance(value, dict):
        return all(_strings_ok(k) and _strings_ok(x) for k, x in value.items())
    if isinstance(value, list):
        return all(_strings_ok(x) for x in value)
    return True


def check_metadata(v: Violations, value: Any) -> None:
    if not isinstance(value, dict):
        v.add("metadata", "must be a JSON object")
        return
    # Depth is checked first so that serializing a hostile structure stays bounded.
    if _metadata_depth(value) > METADATA_MAX_DEPTH:
        v.add("metadata", f"must be nested at most {METADATA_MAX_DEPTH} levels deep")
    elif not _strings_ok(value):
        v.add("metadata", "must hold finite numbers and valid Unicode without NUL characters")
    elif len(canonical_json(value).encode()) > METADATA_MAX_BYTES:
        v.add("metadata", f"must be at most {METADATA_MAX_BYTES} bytes serialized")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_fields(v: Violations, fields: NoteFields, names: tuple[str, ...] = UPDATABLE_FIELDS):
    if "note_type" in names and not isinstance(fields.note_type, NoteType):
        v.add("note_type", "must be a known note type")
    if "visibility" in names and not isinstance(fields.visibility, Visibility):
        v.add("visibility", "must be a known visibility")
    if "body" in names:
        _text(v, "body", fields.body, 1, BODY_MAX)
    if "title" in names:
        _text(v, "title", fields.title, 0, TITLE_MAX)
    if "source" in names:
        _text(v, "source", fields.source, 0, SOURCE_MAX)
    if "source_type" in names:
        _text(v, "source_type", fields.source_type, 0, SOURCE_MAX)
    if "tags" in names:
        _tags(v, fields.tags)
    if "linked_records" in names:
        if len(fields.linked_records) > LINKS_MAX:
            v.add("linked_records", f"must have at most {LINKS_MAX} items")
        for i, ref in enumerate(fields.linked_records):
            check_subject_ref(v, f"linked_records[{i}]", ref)
    if "metadata" in names:
        check_metadata(v, fields.metadata)
    # 0001-01-01 .. 9999-12-31, the range of google.protobuf.Timestamp.
    if (
        "happened_at" in names
        and fields.happened_at is not None
        and not -62_135_596_800_000_000 <= fields.happened_at <= 253_402_300_799_999_999
    ):
        v.add("happened_at", "is out of range")


def validate_new_note(fields: NoteFields, request_id: str) -> None:
    v = Violations()
    check_subject_ref(v, "subject", fields.subject)
    check_fields(v, fields)
    check_request_id(v, request_id)
    v.raise_if_any()


def validate_update(
    note_id: str, fields: NoteFields, mask: tuple[str, ...], expected: int, request_id: str
) -> None:
    v = Violations()
    check_id(v, "note.id", note_id)
    for path in mask:
        if path not in UPDATABLE_FIELDS:
            v.add("update_mask", f"{path!r} is not an updatable field")
    check_fields(v, fields, tuple(p for p in mask if p in UPDATABLE_FIELDS))
    if expected < 0:
        v.add("expected_version", "must not be negative")
    check_request_id(v, request_id)
    v.raise_if_any()


def validate_note_call(note_id: str, expected: int, request_id: str) -> None:
    v = Violations()
    check_id(v, "id", note_id)
    if expected < 0:
        v.add("expected_version", "must not be negative")
    check_request_id(v, request_id)
    v.raise_if_any()


def validate_note_id(note_id: str) -> None:
    v = Violations()
    check_id(v, "id", note_id)
    v.raise_if_any()


def validate_list(q: ListQuery) -> None:
    v = Violations()
    check_subject_ref(v, "subject", q.subject, required=False)
    check_subject_ref(v, "linked_record", q.linked_record, required=False)
    if q.visibility is not None and not isinstance(q.visibility, Visibility):
        v.add("visibility", "must be a known visibility")
    for i, t in enumerate(q.note_types):
        if not isinstance(t, NoteType):
            v.add(f"note_types[{i}]", "must be a known note type")
    if q.include_children and (q.subject is None or q.subject.type is not SubjectType.ORDER):
        v.add("include_children", "needs an ORDER subject")
    if len(q.author_ids) > AUTHOR_IDS_MAX:
        v.add("author_ids", f"must have at most {AUTHOR_IDS_MAX} items")
    for i, a in enumerate(q.author_ids):
        check_id(v, f"author_ids[{i}]", a)
    _tags(v, q.tags)
    _text(v, "query", q.query, 0, QUERY_MAX)
    _text(v, "contains", q.contains, 0, QUERY_MAX)
    check_page_size(v, q.page_size)
    if q.offset < 0:
        v.add("offset", "must not be negative")
    if q.offset and q.page_token:
        v.add("offset", "cannot be combined with page_token")
    v.raise_if_any()


def validate_offset_walk(offset: int) -> None:
    """Skipping rows costs their reading: at most OFFSET_MAX, unless the offset is past the
    end of the list (an empty page, decided from the count without walking)."""
    if offset > OFFSET_MAX:
        raise ValidationFailed([("offset", f"must be at most {OFFSET_MAX}; use page_token beyond")])


def check_page_size(v: Violations, page_size: int) -> None:
    """AIP-158: a negative page size is refused (0 is the default, above the maximum is
    lowered to it)."""
    if page_size < 0:
        v.add("page_size", "must not be negative")


def effective_page_size(page_size: int) -> int:
    return PAGE_SIZE_DEFAULT if page_size == 0 else min(page_size, PAGE_SIZE_MAX)


def validate_subject(
    subject_type: object, subject_id: str, parent_id: str, display_name: str, request_id: str = ""
) -> None:
    v = Violations()
    if not isinstance(subject_type, SubjectType):
        v.add("subject.type", "must be a known subject type")
    check_id(v, "subject.id", subject_id)
    if subject_type is SubjectType.ORDER_ITEM:
        check_id(v, "subject.parent_id", parent_id)
    elif parent_id:
        v.add("subject.parent_id", "is only for ORDER_ITEM subjects")
    _text(v, "subject.display_name", display_name, 0, DISPLAY_NAME_MAX)
    check_request_id(v, request_id)
    v.raise_if_any()


def normalize_links(subject: SubjectRef, links: list[SubjectRef]) -> list[SubjectRef]:
    """De-duplicate links (first wins) and drop any equal to the subject."""
    seen = {subject.key}
    out = []
    for ref in links:
        if ref.key not in seen:
            seen.add(ref.key)
            out.append(ref)
    return out


def validate_subject_key(subject_type: object, subject_id: str, request_id: str = "") -> None:
    v = Violations()
    if not isinstance(subject_type, SubjectType):
        v.add("type", "must be a known subject type")
    check_id(v, "id", subject_id)
    check_request_id(v, request_id)
    v.raise_if_any()
