"""`notes export` and `notes import`: an organization's notes as JSON Lines, and the legacy
systems' own note JSON.

The export format (also what `notes import` reads by default) has three kinds of line:

- a note: one notes.v1.Note in proto3 JSON (google.protobuf.json_format), deleted notes too;
- `{"subject": <notes.v1.Subject>}`: a registered subject (first, before any note);
- `{"noteEvent": {"noteId": "...", <notes.v1.NoteEvent fields>}}`: one audit event, after its
  note.

A note line is any line without a "subject" or "noteEvent" key, so `grep -v '"noteEvent"'`
leaves lines that each parse as a Note. The legacy formats are one object per line, as each
system renders a note, with its parent's id (see README: Import and export).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

import ulid
from google.protobuf import json_format
from notes.v1 import notes_pb2 as pb

from .domain import validation
from .domain.errors import ValidationFailed
from .domain.ids import note_id_of_uuid
from .domain.model import (
    Author,
    AuthorType,
    Note,
    NoteEvent,
    Subject,
    SubjectRef,
    SubjectType,
    Surface,
    Visibility,
)
from .rpc import convert as c
from .service.clock import now_us
from .store import audit, imports, uow
from .store.bulk import ulid_string

BATCH = 5000
FORMATS = ("notes", "woocommerce", "newstore", "customer-notes")

_AUTHOR_TYPES_IN = {v: k for k, v in c._AUTHOR_TYPES.items()}
_SURFACES_IN = {v: k for k, v in c._SURFACES_OUT.items()}


# --- export -----------------------------------------------------------------------------


def _line(message) -> str:
    return json.dumps(json_format.MessageToDict(message), ensure_ascii=False, separators=(",", ":"))


def export(org: str, out: IO[str], *, page: int = 1000) -> int:
    """Writes org's subjects, notes (deleted too) and their audit events; returns the number
    of notes."""
    count = 0
    with uow.reading():
        for s in imports.all_subjects(org):
            out.write(json.dumps({"subject": json_format.MessageToDict(c.subject_out(s))}) + "\n")
    after = 0
    while True:
        with uow.reading():
            notes = imports.export_page(org, after, page)
            history = audit.list_events_of(org, [n.id for n in notes])
        for n in notes:
            out.write(_line(c.note_out(n)) + "\n")
            for e in history[n.id]:
                data = {"noteId": n.id, **json_format.MessageToDict(c.event_out(e))}
                out.write(json.dumps({"noteEvent": data}, ensure_ascii=False) + "\n")
        count += len(notes)
        if len(notes) < page:
            return count
        after = notes[-1].row


# --- reading lines ----------------------------------------------------------------------


@dataclasses.dataclass
class Parsed:
    """What one line holds: a note, a subject, or an event of a note."""

    note: Note | None = None
    subject: Subject | None = None
    event: tuple[str, NoteEvent] | None = None
    subjects: list[Subject] = dataclasses.field(default_factory=list)  # to register


def _time(ts) -> int:
    return c.time_in(ts)


def note_from_pb(m: pb.Note, org: str) -> Note:
    fields = c.fields_in(m)
    note = Note(**{f.name: getattr(fields, f.name) for f in dataclasses.fields(fields)})
    note.id = m.id
    note.number = m.number
    note.org = org
    note.note_type = fields.note_type
    note.author = Author(
        _AUTHOR_TYPES_IN.get(m.author.type, AuthorType.SYSTEM), m.author.id, m.author.display_name
    )
    note.created_via = _SURFACES_IN.get(m.created_via, Surface.GRPC)
    note.api_key_id = m.requested_via.api_key_id
    note.purpose = m.requested_via.purpose
    note.create_time = _time(m.create_time)
    note.update_time = _time(m.update_time) if m.HasField("update_time") else note.create_time
    note.delete_time = _time(m.delete_time) if m.HasField("delete_time") else None
    note.version = m.version or 1
    return note


def _subjects_of(n: Note) -> list[Subject]:
    """The subjects a note needs registered: its subject and links (an item under its order)."""
    out = []
    for ref in [n.subject, *n.linked_records]:
        if ref is None:
            continue
        if ref.type is SubjectType.ORDER_ITEM and ref.parent_id:
            out.append(Subject(SubjectType.ORDER, ref.parent_id))
        out.append(Subject(ref.type, ref.id, ref.parent_id))
    return out


def parse_native(data: dict[str, Any], org: str) -> Parsed:
    if "subject" in data and len(data) == 1:
        d = data["subject"]
        ref = _ref(d)
        s = Subject(
            type=ref.type,
            id=ref.id,
            parent_id=ref.parent_id,
            display_name=d.get("displayName", ""),
            create_time=_iso(d["createTime"], "createTime") if "createTime" in d else 0,
            update_time=_iso(d["updateTime"], "updateTime") if "updateTime" in d else 0,
            archive_time=_iso(d["archiveTime"], "archiveTime") if "archiveTime" in d else None,
        )
        return Parsed(subject=s, subjects=[s])
    if "noteEvent" in data:
        raw = dict(data["noteEvent"])
        note_id = raw.pop("noteId")
        via = raw.get("requestedVia") or {}
        e = NoteEvent(
            action=raw.get("action", ""),
            actor=_author(raw.get("actor") or {}),
            surface=_SURFACES_IN.get(_enum(pb.Surface, raw.get("surface", 0)), Surface.GRPC),
            request_id=raw.get("requestId", ""),
            old_version=int(raw.get("oldVersion", 0)),
            new_version=int(raw.get("newVersion", 0)),
            event_time=_iso(raw.get("eventTime"), "eventTime"),
            api_key_id=via.get("apiKeyId", ""),
            purpose=via.get("purpose", ""),
        )
        return Parsed(event=(note_id, e))
    n = _fast_note(data, org)
    return Parsed(note=n, subjects=_subjects_of(n))


# proto3 JSON read straight into domain objects: json_format.ParseDict made a 100,000-note
# import take 21 s instead of 8 s. Enums come as names (or numbers), int64 as strings (or
# numbers), Timestamps as RFC 3339 strings; anything else is refused by the parser below.
def _enum(enum_type, value: Any) -> int:
    return value if isinstance(value, int) else enum_type.Value(value)


def _ref(d: dict[str, Any]) -> SubjectRef:
    kind = c.subject_type(_enum(pb.SubjectType, d.get("type", 0)))
    if not isinstance(kind, SubjectType):
        raise ValueError(f"unknown subject type {d.get('type')!r}")
    return SubjectRef(kind, d.get("id", ""), d.get("parentId", ""))


def _author(d: dict[str, Any]) -> Author:
    kind = _AUTHOR_TYPES_IN.get(_enum(pb.AuthorType, d.get("type", 0)), AuthorType.SYSTEM)
    return Author(kind, d.get("id", ""), d.get("displayName", ""))


def _fast_note(d: dict[str, Any], org: str) -> Note:
    note_type = _enum(pb.NoteType, d.get("noteType", 0))
    visibility = _enum(pb.Visibility, d.get("visibility", 0))
    via = d.get("requestedVia") or {}
    metadata = d.get("metadata") or {}
    n = Note(
        subject=_ref(d["subject"]) if "subject" in d else None,
        linked_records=[_ref(r) for r in d.get("linkedRecords", [])],
        note_type=c._NOTE_TYPES.get(note_type, c._NOTE_TYPES[pb.NOTE_TYPE_NOTE]),
        title=d.get("title", ""),
        body=d.get("body", ""),
        visibility=c._VISIBILITIES.get(visibility, Visibility.INTERNAL),
        tags=list(d.get("tags", [])),
        metadata=c._integral_json(metadata) if metadata else {},
        source=d.get("source", ""),
        source_type=d.get("sourceType", ""),
        happened_at=_iso(d["happenedAt"], "happenedAt") if "happenedAt" in d else None,
        id=d.get("id", ""),
        number=int(d.get("number", 0)),
        org=org,
        author=_author(d.get("author") or {}),
        created_via=_SURFACES_IN.get(_enum(pb.Surface, d.get("createdVia", 0)), Surface.GRPC),
        api_key_id=via.get("apiKeyId", ""),
        purpose=via.get("purpose", ""),
        create_time=_iso(d.get("createTime"), "createTime"),
        delete_time=_iso(d["deleteTime"], "deleteTime") if "deleteTime" in d else None,
        version=int(d.get("version", 1)),
    )
    n.update_time = _iso(d["updateTime"], "updateTime") if "updateTime" in d else n.create_time
    return n


def _derived_id(create_us: int, *key: object) -> str:
    """A stable note id for a legacy note: its creation time and a hash of where it came from,
    so importing the same file again finds the same ids."""
    digest = hashlib.sha256("\x1f".join(map(str, key)).encode()).digest()
    return "note_" + ulid_string(create_us // 1000, int.from_bytes(digest[:10], "big"))


def _iso(value: Any, name: str) -> int:
    if not isinstance(value, str):
        raise ValidationFailed([(name, "must be a date-time string")])
    text = value.strip()
    if text.endswith(" UTC"):  # Go's time.Time.String(): 2012-10-31 15:50:13.793654 +0000 UTC
        text = text[: -len(" UTC")]
        date, clock, offset = text.split(" ")
        text = f"{date}T{clock}{offset[:3]}:{offset[3:]}"
    if "." in text:  # at most microseconds
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = head + "." + digits[:6].ljust(6, "0") + rest[len(digits) :]
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed([(name, f"is not a date-time: {value!r}")]) from None
    if parsed.tzinfo is None:  # WooCommerce's *_gmt carry no offset; they are UTC
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp()) * 1_000_000 + parsed.microsecond


def _str(data: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ValidationFailed([(name, "is required" if value is None else "must be a string")])
    return value


def parse_woocommerce(data: dict[str, Any], org: str) -> Parsed:
    """{"order_id": 723, "id": 281, "author": "system", "date_created_gmt": "...",
    "note": "...", "customer_note": false}: the note id becomes the note's number."""
    order_id = _str(data, "order_id")
    number = data.get("id")
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        raise ValidationFailed([("id", "must be a positive integer")])
    created = _iso(data.get("date_created_gmt"), "date_created_gmt")
    author = _str(data, "author", required=False) or "system"
    n = Note(
        subject=SubjectRef(SubjectType.ORDER, order_id),
        body=_str(data, "note"),
        visibility=Visibility.CUSTOMER if data.get("customer_note") else Visibility.INTERNAL,
        # As the WooCommerce dialect renders author: "system", or the name in source.
        source="" if author == "system" else author,
        source_type="system" if author == "system" else "user",
        id=_derived_id(created, "woocommerce", order_id, number),
        number=number,
        org=org,
        author=Author(AuthorType.SYSTEM, "import:woocommerce"),
        created_via=Surface.WOOCOMMERCE,
        create_time=created,
        update_time=created,
        version=1,
    )
    return Parsed(note=n, subjects=_subjects_of(n))


def parse_newstore(data: dict[str, Any], org: str) -> Parsed:
    """NewStore's note object with order_id (and item_id for an item's note): the UUID is kept
    (the service's id is the ULID of the same 128 bits)."""
    try:
        note_id = note_id_of_uuid(_str(data, "id"))
    except ValueError:
        raise ValidationFailed([("id", "must be a UUID")]) from None
    order_id, item_id = _str(data, "order_id"), _str(data, "item_id", required=False)
    subject = (
        SubjectRef(SubjectType.ORDER_ITEM, item_id, order_id)
        if item_id
        else SubjectRef(SubjectType.ORDER, order_id)
    )
    created = _iso(data.get("created_at"), "created_at")
    updated = _iso(data["updated_at"], "updated_at") if data.get("updated_at") else created
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValidationFailed([("tags", "must be an array of strings")])
    n = Note(
        subject=subject,
        body=_str(data, "text"),
        tags=list(dict.fromkeys(tags)),
        source=_str(data, "source", required=False),
        source_type=_str(data, "source_type", required=False),
        id=note_id,
        org=org,
        author=Author(AuthorType.SYSTEM, "import:newstore"),
        created_via=Surface.NEWSTORE,
        create_time=created,
        update_time=updated,
        version=1 if updated == created else 2,
    )
    return Parsed(note=n, subjects=_subjects_of(n))


def parse_customer_notes(data: dict[str, Any], org: str) -> Parsed:
    """The customer notes API's note object (customer_id, id, body, is_internal, author_id,
    metadata, created_at, updated_at). An id that is not this service's kind ("note_" + ULID)
    is replaced by a stable one derived from it."""
    customer_id = _str(data, "customer_id")
    created = _iso(data.get("created_at"), "created_at")
    updated = _iso(data["updated_at"], "updated_at") if data.get("updated_at") else created
    given = _str(data, "id")
    try:
        ulid.ULID.from_str(given.removeprefix("note_"))
        note_id = given if given.startswith("note_") else _derived_id(created, "customer", given)
    except ValueError:
        note_id = _derived_id(created, "customer-notes", customer_id, given)
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValidationFailed([("metadata", "must be an object")])
    author_id = _str(data, "author_id", required=False)
    n = Note(
        subject=SubjectRef(SubjectType.CUSTOMER, customer_id),
        body=_str(data, "body"),
        visibility=Visibility.INTERNAL if data.get("is_internal", True) else Visibility.CUSTOMER,
        metadata=metadata,
        id=note_id,
        org=org,
        author=Author(AuthorType.USER, author_id) if author_id else Author(AuthorType.SYSTEM, ""),
        created_via=Surface.CUSTOMER_NOTES,
        create_time=created,
        update_time=updated,
        version=1 if updated == created else 2,
    )
    return Parsed(note=n, subjects=_subjects_of(n))


PARSERS: dict[str, Callable[[dict[str, Any], str], Parsed]] = {
    "notes": parse_native,
    "woocommerce": parse_woocommerce,
    "newstore": parse_newstore,
    "customer-notes": parse_customer_notes,
}


# --- import -----------------------------------------------------------------------------


@dataclasses.dataclass
class Imported:
    lines: int = 0
    created: int = 0
    skipped: int = 0
    renumbered: int = 0
    seconds: float = 0.0


def _check(n: Note, where: str) -> None:
    v = validation.Violations()
    validation.check_subject_ref(v, "subject", n.subject)
    validation.check_fields(v, n)
    validation.check_id(v, "id", n.id)
    if v.items:
        raise ValidationFailed([(f"{where}: {f}", d) for f, d in v.items])


def _lines(source: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in enumerate(source, 1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except ValueError:
            raise ValidationFailed([(f"line {number}", "is not JSON")]) from None
        if not isinstance(data, dict):
            raise ValidationFailed([(f"line {number}", "is not a JSON object")])
        yield number, data


def import_lines(
    org: str,
    source: Iterable[str],
    fmt: str = "notes",
    *,
    batch: int = BATCH,
    progress: Callable[[Imported], None] | None = None,
) -> Imported:
    """Reads source and writes its notes into org, one transaction per batch of notes. A bad
    line stops the import with an error naming it; the batches before it stay (import again
    after fixing the file: nothing is created twice)."""
    parse = PARSERS[fmt]
    out = Imported()
    started = time.perf_counter()
    notes: list[Note] = []
    subjects: dict[tuple[str, str], Subject] = {}
    events: dict[str, list[NoteEvent]] = {}

    def flush() -> None:
        with uow.writing():
            imports.ensure_subjects(org, list(subjects.values()), now_us())
            written = imports.write_notes(org, notes, events)
        out.created += written.created
        out.skipped += written.skipped
        out.renumbered += written.renumbered
        notes.clear()
        subjects.clear()
        events.clear()
        out.seconds = time.perf_counter() - started
        if progress:
            progress(out)

    pending_events: dict[str, list[NoteEvent]] = {}
    for number, data in _lines(source):
        out.lines = number
        try:
            parsed = parse(data, org)
        except ValidationFailed as e:
            raise ValidationFailed([(f"line {number}: {f}", d) for f, d in e.violations]) from None
        except (json_format.ParseError, KeyError, TypeError, ValueError) as e:
            raise ValidationFailed([(f"line {number}", str(e) or type(e).__name__)]) from None
        for s in parsed.subjects:
            subjects.setdefault((s.type.value, s.id), s)
        if parsed.subject is not None:  # a subject line wins over one a note implies
            subjects[(parsed.subject.type.value, parsed.subject.id)] = parsed.subject
        if parsed.event is not None:
            note_id, event = parsed.event
            pending_events.setdefault(note_id, []).append(event)
        if parsed.note is not None:
            _check(parsed.note, f"line {number}")
            notes.append(parsed.note)
        if len(notes) >= batch:
            # A note's events follow it; the batch is written when the next note's line
            # shows they are complete.
            last = notes.pop()
            for n in notes:
                events[n.id] = pending_events.pop(n.id, [])
            flush()
            notes.append(last)
    for n in notes:
        events[n.id] = pending_events.pop(n.id, [])
    if notes or subjects:
        flush()
    out.seconds = time.perf_counter() - started
    return out


def progress_line(stream: IO[str] = sys.stderr) -> Callable[[Imported], None]:
    def show(state: Imported) -> None:
        stream.write(
            f"import: {state.lines} lines, {state.created} created, {state.skipped} skipped,"
            f" {state.seconds:.1f} s\n"
        )
        stream.flush()

    return show
