"""NotesClient: the NotesService calls internal services make, with request ids, retries and
deadlines done once, here."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Union

import grpc
from google.protobuf import field_mask_pb2

from ._errors import NotesError
from ._gen.notes.v1 import notes_pb2 as pb
from ._gen.notes.v1 import notes_pb2_grpc as pb_grpc

DEFAULT_TIMEOUT = 10.0  # seconds, per call (the retries included)
SERVICE = "notes.v1.NotesService"
_MUTATING = ("CreateNote", "UpdateNote", "DeleteNote", "UndeleteNote")
_READING = ("GetNote", "ListNotes", "GetNoteHistory")


def _retry(codes: Sequence[str]) -> dict:
    return {
        "maxAttempts": 4,
        "initialBackoff": "0.1s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": list(codes),
    }


# gRPC retries by status code alone. ABORTED is retried only for the calls that carry a
# request id (every mutating call here does): a retry of one still in flight
# (REQUEST_IN_FLIGHT) then either waits its turn or replays the first response, never runs
# twice. A VERSION_MISMATCH is ABORTED too and is retried with the rest: it fails the same way
# each time and surfaces once the attempts are spent.
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": SERVICE, "method": m} for m in _MUTATING],
                "retryPolicy": _retry(["UNAVAILABLE", "ABORTED"]),
            },
            {
                "name": [{"service": SERVICE, "method": m} for m in _READING],
                "retryPolicy": _retry(["UNAVAILABLE"]),
            },
        ]
    }
)

Tls = Union[bool, bytes, grpc.ChannelCredentials]


class NotesClient:
    """A client of one notes.v1 service.

    target: "host:port". Credentials: api_key (an `sk_...` secret) or token (a JWT); either
    becomes `authorization: Bearer ...`. tls: False (plaintext, for local use), True (the
    system's roots), PEM bytes of the CA to trust, or grpc.ChannelCredentials.
    timeout: the default deadline of each call, in seconds.
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        tls: Tls = False,
        timeout: float = DEFAULT_TIMEOUT,
        options: Sequence[tuple[str, object]] = (),
    ) -> None:
        if api_key and token:
            raise ValueError("give api_key or token, not both")
        secret = api_key or token
        self._auth: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {secret}"),) if secret else ()
        )
        opts = [("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 1), *options]
        if tls is False:
            self._channel = grpc.insecure_channel(target, options=opts)
        else:
            if isinstance(tls, grpc.ChannelCredentials):
                creds = tls
            else:
                creds = grpc.ssl_channel_credentials(
                    root_certificates=tls if isinstance(tls, bytes) else None
                )
            self._channel = grpc.secure_channel(target, creds, options=opts)
        self._stub = pb_grpc.NotesServiceStub(self._channel)
        self.timeout = timeout

    # --- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> NotesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- calls ------------------------------------------------------------------------------

    def _call(self, method, request, timeout: float | None):
        try:
            return method(
                request,
                metadata=self._auth,
                timeout=self.timeout if timeout is None else timeout,
            )
        except grpc.RpcError as err:
            raise NotesError.from_rpc_error(err) from None

    def create_note(
        self,
        note: pb.Note,
        *,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> pb.Note:
        """Creates the note (subject and body at least); returns it as stored. The same
        request_id again replays the first result."""
        request = pb.CreateNoteRequest(note=note, request_id=request_id or str(uuid.uuid4()))
        return self._call(self._stub.CreateNote, request, timeout).note

    def get_note(
        self, note_id: str = "", *, number: int = 0, timeout: float | None = None
    ) -> pb.Note:
        request = pb.GetNoteRequest(number=number) if number else pb.GetNoteRequest(id=note_id)
        return self._call(self._stub.GetNote, request, timeout).note

    def list_notes(
        self,
        subject: pb.SubjectRef | None = None,
        *,
        request: pb.ListNotesRequest | None = None,
        page_size: int = 100,
        timeout: float | None = None,
    ) -> Iterator[pb.Note]:
        """Every note of the list, following next_page_token to the end (each page is one
        call with its own deadline). Give subject, or a whole ListNotesRequest for filters."""
        req = pb.ListNotesRequest()
        if request is not None:
            req.CopyFrom(request)
        if subject is not None:
            req.subject.CopyFrom(subject)
        if not req.page_size:
            req.page_size = page_size
        while True:
            page = self._call(self._stub.ListNotes, req, timeout)
            yield from page.notes
            if not page.next_page_token:
                return
            req.page_token = page.next_page_token

    def update_note(
        self,
        note_id: str,
        *,
        expected_version: int = 0,
        request_id: str | None = None,
        timeout: float | None = None,
        **fields: object,
    ) -> pb.Note:
        """Changes the given Note fields (e.g. body="...", tags=["a"]) and only those.
        expected_version: the version read (0: whatever it is now); a note changed since is
        NotesError(reason="VERSION_MISMATCH")."""
        note = pb.Note(id=note_id, **fields)  # type: ignore[arg-type]
        request = pb.UpdateNoteRequest(
            note=note,
            update_mask=field_mask_pb2.FieldMask(paths=sorted(fields)),
            expected_version=expected_version,
            request_id=request_id or str(uuid.uuid4()),
        )
        return self._call(self._stub.UpdateNote, request, timeout).note

    def delete_note(
        self,
        note_id: str,
        *,
        expected_version: int = 0,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> pb.Note:
        request = pb.DeleteNoteRequest(
            id=note_id,
            expected_version=expected_version,
            request_id=request_id or str(uuid.uuid4()),
        )
        return self._call(self._stub.DeleteNote, request, timeout).note

    def undelete_note(
        self,
        note_id: str,
        *,
        expected_version: int = 0,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> pb.Note:
        request = pb.UndeleteNoteRequest(
            id=note_id,
            expected_version=expected_version,
            request_id=request_id or str(uuid.uuid4()),
        )
        return self._call(self._stub.UndeleteNote, request, timeout).note
