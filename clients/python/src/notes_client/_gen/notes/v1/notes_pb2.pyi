from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubjectType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBJECT_TYPE_UNSPECIFIED: _ClassVar[SubjectType]
    SUBJECT_TYPE_CUSTOMER: _ClassVar[SubjectType]
    SUBJECT_TYPE_ORDER: _ClassVar[SubjectType]
    SUBJECT_TYPE_ORDER_ITEM: _ClassVar[SubjectType]
    SUBJECT_TYPE_SUPPLIER: _ClassVar[SubjectType]
    SUBJECT_TYPE_PRODUCT: _ClassVar[SubjectType]
    SUBJECT_TYPE_CONTACT: _ClassVar[SubjectType]
    SUBJECT_TYPE_LOCATION: _ClassVar[SubjectType]

class NoteType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTE_TYPE_UNSPECIFIED: _ClassVar[NoteType]
    NOTE_TYPE_NOTE: _ClassVar[NoteType]
    NOTE_TYPE_EMAIL: _ClassVar[NoteType]
    NOTE_TYPE_PHONE_MEETING: _ClassVar[NoteType]
    NOTE_TYPE_VIRTUAL_MEETING: _ClassVar[NoteType]
    NOTE_TYPE_PHYSICAL_MEETING: _ClassVar[NoteType]
    NOTE_TYPE_SAMPLE_REQUEST: _ClassVar[NoteType]
    NOTE_TYPE_OPPORTUNITY: _ClassVar[NoteType]
    NOTE_TYPE_QUOTE: _ClassVar[NoteType]

class Visibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VISIBILITY_UNSPECIFIED: _ClassVar[Visibility]
    VISIBILITY_INTERNAL: _ClassVar[Visibility]
    VISIBILITY_CUSTOMER: _ClassVar[Visibility]

class AuthorType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTHOR_TYPE_UNSPECIFIED: _ClassVar[AuthorType]
    AUTHOR_TYPE_USER: _ClassVar[AuthorType]
    AUTHOR_TYPE_SYSTEM: _ClassVar[AuthorType]
    AUTHOR_TYPE_API_KEY: _ClassVar[AuthorType]

class Surface(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SURFACE_UNSPECIFIED: _ClassVar[Surface]
    SURFACE_GRPC: _ClassVar[Surface]
    SURFACE_CUSTOMER_NOTES: _ClassVar[Surface]
    SURFACE_SHELFCYCLE: _ClassVar[Surface]
    SURFACE_WOOCOMMERCE: _ClassVar[Surface]
    SURFACE_NEWSTORE: _ClassVar[Surface]

class IdempotencyStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IDEMPOTENCY_STATUS_UNSPECIFIED: _ClassVar[IdempotencyStatus]
    IDEMPOTENCY_STATUS_CREATED: _ClassVar[IdempotencyStatus]
    IDEMPOTENCY_STATUS_REPLAYED: _ClassVar[IdempotencyStatus]
SUBJECT_TYPE_UNSPECIFIED: SubjectType
SUBJECT_TYPE_CUSTOMER: SubjectType
SUBJECT_TYPE_ORDER: SubjectType
SUBJECT_TYPE_ORDER_ITEM: SubjectType
SUBJECT_TYPE_SUPPLIER: SubjectType
SUBJECT_TYPE_PRODUCT: SubjectType
SUBJECT_TYPE_CONTACT: SubjectType
SUBJECT_TYPE_LOCATION: SubjectType
NOTE_TYPE_UNSPECIFIED: NoteType
NOTE_TYPE_NOTE: NoteType
NOTE_TYPE_EMAIL: NoteType
NOTE_TYPE_PHONE_MEETING: NoteType
NOTE_TYPE_VIRTUAL_MEETING: NoteType
NOTE_TYPE_PHYSICAL_MEETING: NoteType
NOTE_TYPE_SAMPLE_REQUEST: NoteType
NOTE_TYPE_OPPORTUNITY: NoteType
NOTE_TYPE_QUOTE: NoteType
VISIBILITY_UNSPECIFIED: Visibility
VISIBILITY_INTERNAL: Visibility
VISIBILITY_CUSTOMER: Visibility
AUTHOR_TYPE_UNSPECIFIED: AuthorType
AUTHOR_TYPE_USER: AuthorType
AUTHOR_TYPE_SYSTEM: AuthorType
AUTHOR_TYPE_API_KEY: AuthorType
SURFACE_UNSPECIFIED: Surface
SURFACE_GRPC: Surface
SURFACE_CUSTOMER_NOTES: Surface
SURFACE_SHELFCYCLE: Surface
SURFACE_WOOCOMMERCE: Surface
SURFACE_NEWSTORE: Surface
IDEMPOTENCY_STATUS_UNSPECIFIED: IdempotencyStatus
IDEMPOTENCY_STATUS_CREATED: IdempotencyStatus
IDEMPOTENCY_STATUS_REPLAYED: IdempotencyStatus

class SubjectRef(_message.Message):
    __slots__ = ("type", "id", "parent_id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    type: SubjectType
    id: str
    parent_id: str
    def __init__(self, type: _Optional[_Union[SubjectType, str]] = ..., id: _Optional[str] = ..., parent_id: _Optional[str] = ...) -> None: ...

class Author(_message.Message):
    __slots__ = ("type", "id", "display_name")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    type: AuthorType
    id: str
    display_name: str
    def __init__(self, type: _Optional[_Union[AuthorType, str]] = ..., id: _Optional[str] = ..., display_name: _Optional[str] = ...) -> None: ...

class RequestedVia(_message.Message):
    __slots__ = ("api_key_id", "purpose")
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    api_key_id: str
    purpose: str
    def __init__(self, api_key_id: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class Note(_message.Message):
    __slots__ = ("id", "number", "subject", "linked_records", "note_type", "title", "body", "visibility", "tags", "metadata", "source", "source_type", "author", "created_via", "requested_via", "happened_at", "create_time", "update_time", "delete_time", "version", "organization")
    ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    LINKED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    NOTE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    CREATED_VIA_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_VIA_FIELD_NUMBER: _ClassVar[int]
    HAPPENED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DELETE_TIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    number: int
    subject: SubjectRef
    linked_records: _containers.RepeatedCompositeFieldContainer[SubjectRef]
    note_type: NoteType
    title: str
    body: str
    visibility: Visibility
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _struct_pb2.Struct
    source: str
    source_type: str
    author: Author
    created_via: Surface
    requested_via: RequestedVia
    happened_at: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    delete_time: _timestamp_pb2.Timestamp
    version: int
    organization: str
    def __init__(self, id: _Optional[str] = ..., number: _Optional[int] = ..., subject: _Optional[_Union[SubjectRef, _Mapping]] = ..., linked_records: _Optional[_Iterable[_Union[SubjectRef, _Mapping]]] = ..., note_type: _Optional[_Union[NoteType, str]] = ..., title: _Optional[str] = ..., body: _Optional[str] = ..., visibility: _Optional[_Union[Visibility, str]] = ..., tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., source: _Optional[str] = ..., source_type: _Optional[str] = ..., author: _Optional[_Union[Author, _Mapping]] = ..., created_via: _Optional[_Union[Surface, str]] = ..., requested_via: _Optional[_Union[RequestedVia, _Mapping]] = ..., happened_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., delete_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., organization: _Optional[str] = ...) -> None: ...

class CreateNoteRequest(_message.Message):
    __slots__ = ("note", "request_id")
    NOTE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    note: Note
    request_id: str
    def __init__(self, note: _Optional[_Union[Note, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateNoteResponse(_message.Message):
    __slots__ = ("note", "idempotency_status")
    NOTE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_STATUS_FIELD_NUMBER: _ClassVar[int]
    note: Note
    idempotency_status: IdempotencyStatus
    def __init__(self, note: _Optional[_Union[Note, _Mapping]] = ..., idempotency_status: _Optional[_Union[IdempotencyStatus, str]] = ...) -> None: ...

class GetNoteRequest(_message.Message):
    __slots__ = ("id", "number")
    ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    id: str
    number: int
    def __init__(self, id: _Optional[str] = ..., number: _Optional[int] = ...) -> None: ...

class GetNoteResponse(_message.Message):
    __slots__ = ("note",)
    NOTE_FIELD_NUMBER: _ClassVar[int]
    note: Note
    def __init__(self, note: _Optional[_Union[Note, _Mapping]] = ...) -> None: ...

class ListNotesRequest(_message.Message):
    __slots__ = ("subject", "include_children", "linked_record", "author_ids", "visibility", "note_types", "tags", "query", "show_deleted", "page_size", "page_token", "offset", "include_total_size", "contains")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CHILDREN_FIELD_NUMBER: _ClassVar[int]
    LINKED_RECORD_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_IDS_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    NOTE_TYPES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    SHOW_DELETED_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTAINS_FIELD_NUMBER: _ClassVar[int]
    subject: SubjectRef
    include_children: bool
    linked_record: SubjectRef
    author_ids: _containers.RepeatedScalarFieldContainer[str]
    visibility: Visibility
    note_types: _containers.RepeatedScalarFieldContainer[NoteType]
    tags: _containers.RepeatedScalarFieldContainer[str]
    query: str
    show_deleted: bool
    page_size: int
    page_token: str
    offset: int
    include_total_size: bool
    contains: str
    def __init__(self, subject: _Optional[_Union[SubjectRef, _Mapping]] = ..., include_children: bool = ..., linked_record: _Optional[_Union[SubjectRef, _Mapping]] = ..., author_ids: _Optional[_Iterable[str]] = ..., visibility: _Optional[_Union[Visibility, str]] = ..., note_types: _Optional[_Iterable[_Union[NoteType, str]]] = ..., tags: _Optional[_Iterable[str]] = ..., query: _Optional[str] = ..., show_deleted: bool = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., offset: _Optional[int] = ..., include_total_size: bool = ..., contains: _Optional[str] = ...) -> None: ...

class ListNotesResponse(_message.Message):
    __slots__ = ("notes", "next_page_token", "total_size")
    NOTES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    notes: _containers.RepeatedCompositeFieldContainer[Note]
    next_page_token: str
    total_size: int
    def __init__(self, notes: _Optional[_Iterable[_Union[Note, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class UpdateNoteRequest(_message.Message):
    __slots__ = ("note", "update_mask", "expected_version", "request_id")
    NOTE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    note: Note
    update_mask: _field_mask_pb2.FieldMask
    expected_version: int
    request_id: str
    def __init__(self, note: _Optional[_Union[Note, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., expected_version: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateNoteResponse(_message.Message):
    __slots__ = ("note", "idempotency_status")
    NOTE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_STATUS_FIELD_NUMBER: _ClassVar[int]
    note: Note
    idempotency_status: IdempotencyStatus
    def __init__(self, note: _Optional[_Union[Note, _Mapping]] = ..., idempotency_status: _Optional[_Union[IdempotencyStatus, str]] = ...) -> None: ...

class DeleteNoteRequest(_message.Message):
    __slots__ = ("id", "expected_version", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    request_id: str
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteNoteResponse(_message.Message):
    __slots__ = ("note", "idempotency_status")
    NOTE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_STATUS_FIELD_NUMBER: _ClassVar[int]
    note: Note
    idempotency_status: IdempotencyStatus
    def __init__(self, note: _Optional[_Union[Note, _Mapping]] = ..., idempotency_status: _Optional[_Union[IdempotencyStatus, str]] = ...) -> None: ...

class UndeleteNoteRequest(_message.Message):
    __slots__ = ("id", "expected_version", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    request_id: str
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class UndeleteNoteResponse(_message.Message):
    __slots__ = ("note", "idempotency_status")
    NOTE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_STATUS_FIELD_NUMBER: _ClassVar[int]
    note: Note
    idempotency_status: IdempotencyStatus
    def __init__(self, note: _Optional[_Union[Note, _Mapping]] = ..., idempotency_status: _Optional[_Union[IdempotencyStatus, str]] = ...) -> None: ...

class GetNoteHistoryRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class NoteEvent(_message.Message):
    __slots__ = ("action", "actor", "surface", "request_id", "old_version", "new_version", "event_time", "requested_via")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_VERSION_FIELD_NUMBER: _ClassVar[int]
    NEW_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_VIA_FIELD_NUMBER: _ClassVar[int]
    action: str
    actor: Author
    surface: Surface
    request_id: str
    old_version: int
    new_version: int
    event_time: _timestamp_pb2.Timestamp
    requested_via: RequestedVia
    def __init__(self, action: _Optional[str] = ..., actor: _Optional[_Union[Author, _Mapping]] = ..., surface: _Optional[_Union[Surface, str]] = ..., request_id: _Optional[str] = ..., old_version: _Optional[int] = ..., new_version: _Optional[int] = ..., event_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., requested_via: _Optional[_Union[RequestedVia, _Mapping]] = ...) -> None: ...

class GetNoteHistoryResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[NoteEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[NoteEvent, _Mapping]]] = ...) -> None: ...

class Subject(_message.Message):
    __slots__ = ("type", "id", "parent_id", "display_name", "create_time", "update_time", "archive_time")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    type: SubjectType
    id: str
    parent_id: str
    display_name: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    archive_time: _timestamp_pb2.Timestamp
    def __init__(self, type: _Optional[_Union[SubjectType, str]] = ..., id: _Optional[str] = ..., parent_id: _Optional[str] = ..., display_name: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., archive_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpsertSubjectRequest(_message.Message):
    __slots__ = ("subject", "request_id")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    request_id: str
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpsertSubjectResponse(_message.Message):
    __slots__ = ("subject", "created", "idempotency_status")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_STATUS_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    created: bool
    idempotency_status: IdempotencyStatus
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ..., created: bool = ..., idempotency_status: _Optional[_Union[IdempotencyStatus, str]] = ...) -> None: ...

class GetSubjectRequest(_message.Message):
    __slots__ = ("type", "id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    type: SubjectType
    id: str
    def __init__(self, type: _Optional[_Union[SubjectType, str]] = ..., id: _Optional[str] = ...) -> None: ...

class GetSubjectResponse(_message.Message):
    __slots__ = ("subject",)
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ...) -> None: ...

class ArchiveSubjectRequest(_message.Message):
    __slots__ = ("type", "id", "request_id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    type: SubjectType
    id: str
    request_id: str
    def __init__(self, type: _Optional[_Union[SubjectType, str]] = ..., id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ArchiveSubjectResponse(_message.Message):
    __slots__ = ("subject", "idempotency_status")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_STATUS_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    idempotency_status: IdempotencyStatus
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ..., idempotency_status: _Optional[_Union[IdempotencyStatus, str]] = ...) -> None: ...

class ListSubjectsRequest(_message.Message):
    __slots__ = ("type", "parent_id", "show_archived", "page_size", "page_token")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    SHOW_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    type: SubjectType
    parent_id: str
    show_archived: bool
    page_size: int
    page_token: str
    def __init__(self, type: _Optional[_Union[SubjectType, str]] = ..., parent_id: _Optional[str] = ..., show_archived: bool = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSubjectsResponse(_message.Message):
    __slots__ = ("subjects", "next_page_token")
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subjects: _containers.RepeatedCompositeFieldContainer[Subject]
    next_page_token: str
    def __init__(self, subjects: _Optional[_Iterable[_Union[Subject, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class EraseSubjectRequest(_message.Message):
    __slots__ = ("type", "id", "request_id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    type: SubjectType
    id: str
    request_id: str
    def __init__(self, type: _Optional[_Union[SubjectType, str]] = ..., id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class EraseSubjectResponse(_message.Message):
    __slots__ = ("notes_erased", "links_removed")
    NOTES_ERASED_FIELD_NUMBER: _ClassVar[int]
    LINKS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    notes_erased: int
    links_removed: int
    def __init__(self, notes_erased: _Optional[int] = ..., links_removed: _Optional[int] = ...) -> None: ...

class BatchCreateNotesRequest(_message.Message):
    __slots__ = ("requests", "request_id")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[CreateNoteRequest]
    request_id: str
    def __init__(self, requests: _Optional[_Iterable[_Union[CreateNoteRequest, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class BatchCreateNotesResponse(_message.Message):
    __slots__ = ("notes", "idempotency_status")
    NOTES_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_STATUS_FIELD_NUMBER: _ClassVar[int]
    notes: _containers.RepeatedCompositeFieldContainer[Note]
    idempotency_status: IdempotencyStatus
    def __init__(self, notes: _Optional[_Iterable[_Union[Note, _Mapping]]] = ..., idempotency_status: _Optional[_Union[IdempotencyStatus, str]] = ...) -> None: ...

class CheckAccessRequest(_message.Message):
    __slots__ = ("scopes",)
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    scopes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, scopes: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckAccessResponse(_message.Message):
    __slots__ = ("organization", "actor", "scopes", "requested_via")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_VIA_FIELD_NUMBER: _ClassVar[int]
    organization: str
    actor: Author
    scopes: _containers.RepeatedScalarFieldContainer[str]
    requested_via: RequestedVia
    def __init__(self, organization: _Optional[str] = ..., actor: _Optional[_Union[Author, _Mapping]] = ..., scopes: _Optional[_Iterable[str]] = ..., requested_via: _Optional[_Union[RequestedVia, _Mapping]] = ...) -> None: ...
