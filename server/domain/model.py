"""Domain objects: what a note, a subject and a caller are."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any


class SubjectType(enum.StrEnum):
    CUSTOMER = "customer"
    ORDER = "order"
    ORDER_ITEM = "order_item"
    SUPPLIER = "supplier"
    PRODUCT = "product"
    CONTACT = "contact"
    LOCATION = "location"


class NoteType(enum.StrEnum):
    NOTE = "NOTE"
    EMAIL = "EMAIL"
    PHONE_MEETING = "PHONE_MEETING"
    VIRTUAL_MEETING = "VIRTUAL_MEETING"
    PHYSICAL_MEETING = "PHYSICAL_MEETING"
    SAMPLE_REQUEST = "SAMPLE_REQUEST"
    OPPORTUNITY = "OPPORTUNITY"
    QUOTE = "QUOTE"


class Visibility(enum.StrEnum):
    INTERNAL = "internal"
    CUSTOMER = "customer"


class AuthorType(enum.StrEnum):
    USER = "user"
    SYSTEM = "system"
    API_KEY = "api_key"


class Surface(enum.StrEnum):
    GRPC = "grpc"
    CUSTOMER_NOTES = "customer_notes"
    SHELFCYCLE = "shelfcycle"
    WOOCOMMERCE = "woocommerce"
    NEWSTORE = "newstore"


class Scope(enum.StrEnum):
    NOTES_READ = "notes:read"
    NOTES_WRITE = "notes:write"
    SUBJECTS_WRITE = "subjects:write"
    WEBHOOKS_WRITE = "webhooks:write"


@dataclass(frozen=True)
class SubjectRef:
    type: SubjectType
    id: str
    parent_id: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.type.value, self.id)


@dataclass(frozen=True)
class Author:
    type: AuthorType
    id: str
    display_name: str = ""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    org: str
    author: Author
    scopes: frozenset[str]
    api_key_id: str = ""
    purpose: str = ""

    def grants(self, scope: str) -> bool:
        """notes:write also grants notes:read."""
        if scope == Scope.NOTES_READ.value and Scope.NOTES_WRITE.value in self.scopes:
            return True
        return scope in self.scopes


@dataclass(frozen=True)
class Subject:
    type: SubjectType
    id: str
    parent_id: str = ""
    display_name: str = ""
    create_time: int = 0  # microseconds since the epoch, UTC
    update_time: int = 0
    archive_time: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Subject:
        return cls(**{**data, "type": SubjectType(data["type"])})


@dataclass
class NoteFields:
    """The fields of a note a caller writes."""

    subject: SubjectRef | None = None
    linked_records: list[SubjectRef] = field(default_factory=list)
    note_type: NoteType = NoteType.NOTE
    title: str = ""
    body: str = ""
    visibility: Visibility = Visibility.INTERNAL
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    source_type: str = ""
    happened_at: int | None = None  # microseconds since the epoch


UPDATABLE_FIELDS = (
    "linked_records",
    "note_type",
    "title",
    "body",
    "visibility",
    "tags",
    "metadata",
    "source",
    "source_type",
    "happened_at",
)


@dataclass
class Note(NoteFields):
    id: str = ""
    number: int = 0  # the organization's own: 1, 2, 3...
    org: str = ""
    author: Author | None = None
    created_via: Surface = Surface.GRPC
    api_key_id: str = ""
    purpose: str = ""
    create_time: int = 0
    update_time: int = 0
    delete_time: int | None = None
    version: int = 0
    row: int = 0  # the store's key across organizations (paging order); never shown

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Note:
        data = dict(data)

        def ref(d: dict[str, Any]) -> SubjectRef:
            return SubjectRef(SubjectType(d["type"]), d["id"], d.get("parent_id", ""))

        data["subject"] = ref(data["subject"])
        data["linked_records"] = [ref(d) for d in data["linked_records"]]
        data["note_type"] = NoteType(data["note_type"])
        data["visibility"] = Visibility(data["visibility"])
        a = data["author"]
        data["author"] = Author(AuthorType(a["type"]), a["id"], a["display_name"])
        data["created_via"] = Surface(data["created_via"])
        return cls(**data)


@dataclass(frozen=True)
class NoteEvent:
    action: str
    actor: Author
    surface: Surface
    request_id: str
    old_version: int
    new_version: int
    event_time: int
    api_key_id: str = ""
    purpose: str = ""


@dataclass
class ListQuery:
    subject: SubjectRef | None = None
    include_children: bool = False
    linked_record: SubjectRef | None = None
    author_ids: list[str] = field(default_factory=list)
    visibility: Visibility | None = None
    note_types: list[NoteType] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    query: str = ""
    contains: str = ""  # substring, case-insensitive (customer notes' q)
    show_deleted: bool = False
    page_size: int = 0
    page_token: str = ""
    offset: int = 0
    include_total_size: bool = False


@dataclass
class NotePage:
    notes: list[Note]
    next_page_token: str = ""
    total_size: int = 0


@dataclass(frozen=True)
class Outcome:
    """The result of a mutating call and whether it was replayed."""

    note: Note
    replayed: bool = False
