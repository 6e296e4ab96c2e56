from google.protobuf import timestamp_pb2 as _timestamp_pb2
from notes_client._gen.notes.v1 import notes_pb2 as _notes_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Event(_message.Message):
    __slots__ = ("id", "type", "organization", "event_time", "note", "actor", "surface", "request_id", "requested_via", "cursor")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_VIA_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    organization: str
    event_time: _timestamp_pb2.Timestamp
    note: _notes_pb2.Note
    actor: _notes_pb2.Author
    surface: _notes_pb2.Surface
    request_id: str
    requested_via: _notes_pb2.RequestedVia
    cursor: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., organization: _Optional[str] = ..., event_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., note: _Optional[_Union[_notes_pb2.Note, _Mapping]] = ..., actor: _Optional[_Union[_notes_pb2.Author, _Mapping]] = ..., surface: _Optional[_Union[_notes_pb2.Surface, str]] = ..., request_id: _Optional[str] = ..., requested_via: _Optional[_Union[_notes_pb2.RequestedVia, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("after", "page_size", "types", "subject")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    after: str
    page_size: int
    types: _containers.RepeatedScalarFieldContainer[str]
    subject: _notes_pb2.SubjectRef
    def __init__(self, after: _Optional[str] = ..., page_size: _Optional[int] = ..., types: _Optional[_Iterable[str]] = ..., subject: _Optional[_Union[_notes_pb2.SubjectRef, _Mapping]] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events", "next_cursor")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    next_cursor: str
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("after", "types", "subject")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    after: str
    types: _containers.RepeatedScalarFieldContainer[str]
    subject: _notes_pb2.SubjectRef
    def __init__(self, after: _Optional[str] = ..., types: _Optional[_Iterable[str]] = ..., subject: _Optional[_Union[_notes_pb2.SubjectRef, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("cursor", "time")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, cursor: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchEventsResponse(_message.Message):
    __slots__ = ("event", "heartbeat")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    event: Event
    heartbeat: Heartbeat
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...
