"""A typed client for the notes.v1 gRPC service.

from notes_client import NotesClient, pb
"""

from ._client import DEFAULT_TIMEOUT, SERVICE_CONFIG, NotesClient
from ._errors import NotesError
from ._gen.notes.v1 import notes_pb2 as pb
from ._gen.notes.v1 import notes_pb2_grpc as pb_grpc

__all__ = ["DEFAULT_TIMEOUT", "SERVICE_CONFIG", "NotesClient", "NotesError", "pb", "pb_grpc"]
