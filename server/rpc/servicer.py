"""NotesService and SubjectsService: parse the request, call the service layer, build the reply.

Credentials come from the interceptor (current()); errors leave as domain exceptions and the
interceptor maps them to a status.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from notes.v1 import notes_pb2 as pb
from notes.v1 import notes_pb2_grpc as pb_grpc

from ..domain.errors import ValidationFailed
from ..domain.paging import PageTokens
from ..service import credentials, erasure, notes, subjects
from . import convert as c
from .interceptors import current

# Fields of the request itself; every other field the domain names is a field of the note.
_REQUEST_FIELDS = frozenset({"request_id", "update_mask", "expected_version", "note"})


@contextlib.contextmanager
def _note_at(path: str) -> Iterator[None]:
    """Field violations named by their path in the request (AIP-193): the domain names a
    note's fields (body, tags[0]); CreateNote and UpdateNote carry the note at path."""
    try:
        yield
    except ValidationFailed as e:
        raise ValidationFailed(
            [
                (f if re.split(r"[.\[]", f)[0] in _REQUEST_FIELDS else f"{path}.{f}", d)
                for f, d in e.violations
            ]
        ) from None


class NotesServicer(pb_grpc.NotesServiceServicer):
    def __init__(self, tokens: PageTokens) -> None:
        self._tokens = tokens

    def CreateNote(self, request: pb.CreateNoteRequest, context) -> pb.CreateNoteResponse:
        call = current()
        with _note_at("note"):
            out = notes.create_note(
                call.principal,
                c.fields_in(request.note),
                request_id=request.request_id,
                surface=call.surface,
            )
        return pb.CreateNoteResponse(
            note=c.note_out(out.note), idempotency_status=c.status_out(out.replayed)
        )

    def GetNote(self, request: pb.GetNoteRequest, context) -> pb.GetNoteResponse:
        note = notes.get_note(current().principal, note_id=request.id, number=request.number)
        return pb.GetNoteResponse(note=c.stored_note_out(note))

    def ListNotes(self, request: pb.ListNotesRequest, context) -> bytes:
        """The reply serialized already (convert.list_out); the interceptor passes it on."""
        page = notes.list_notes(current().principal, c.list_query_in(request), self._tokens)
        return c.list_out(page.notes, page.next_page_token, page.total_size)

    def UpdateNote(self, request: pb.UpdateNoteRequest, context) -> pb.UpdateNoteResponse:
        call = current()
        with _note_at("note"):
            out = notes.update_note(
                call.principal,
                request.note.id,
                c.fields_in(request.note),
                c.update_mask(request.note, list(request.update_mask.paths)),
                expected_version=request.expected_version,
                request_id=request.request_id,
                surface=call.surface,
            )
        return pb.UpdateNoteResponse(
            note=c.note_out(out.note), idempotency_status=c.status_out(out.replayed)
        )

    def DeleteNote(self, request: pb.DeleteNoteRequest, context) -> pb.DeleteNoteResponse:
        call = current()
        out = notes.delete_note(
            call.principal,
            request.id,
            expected_version=request.expected_version,
            request_id=request.request_id,
            surface=call.surface,
        )
        return pb.DeleteNoteResponse(
            note=c.note_out(out.note), idempotency_status=c.status_out(out.replayed)
        )

    def UndeleteNote(self, request: pb.UndeleteNoteRequest, context) -> pb.UndeleteNoteResponse:
        call = current()
        out = notes.undelete_note(
            call.principal,
            request.id,
            expected_version=request.expected_version,
            request_id=request.request_id,
            surface=call.surface,
        )
        return pb.UndeleteNoteResponse(
            note=c.note_out(out.note), idempotency_status=c.status_out(out.replayed)
        )

    def GetNoteHistory(self, request, context) -> pb.GetNoteHistoryResponse:
        events = notes.note_history(current().principal, request.id)
        return pb.GetNoteHistoryResponse(events=[c.event_out(e) for e in events])

    def BatchCreateNotes(self, request, context) -> pb.BatchCreateNotesResponse:
        call = current()
        created, replayed = notes.batch_create_notes(
            call.principal,
            [(c.fields_in(r.note), r.request_id) for r in request.requests],
            request_id=request.request_id,
            surface=call.surface,
        )
        return pb.BatchCreateNotesResponse(
            notes=[c.note_out(n) for n in created], idempotency_status=c.status_out(replayed)
        )


class SubjectsServicer(pb_grpc.SubjectsServiceServicer):
    def __init__(self, tokens: PageTokens) -> None:
        self._tokens = tokens

    def ListSubjects(self, request, context) -> pb.ListSubjectsResponse:
        found, token = subjects.list_subjects(
            current().principal,
            None if request.type == pb.SUBJECT_TYPE_UNSPECIFIED else c.subject_type(request.type),
            request.parent_id,
            request.show_archived,
            request.page_size,
            request.page_token,
            self._tokens,
        )
        return pb.ListSubjectsResponse(
            subjects=[c.subject_out(s) for s in found], next_page_token=token
        )

    def EraseSubject(self, request, context) -> pb.EraseSubjectResponse:
        out, _ = erasure.erase_subject(
            current().principal, c.subject_type(request.type), request.id, request.request_id
        )
        return pb.EraseSubjectResponse(
            notes_erased=out.notes_erased, links_removed=out.links_removed
        )

    def UpsertSubject(self, request, context) -> pb.UpsertSubjectResponse:
        subject, created, replayed = subjects.upsert_subject(
            current().principal, c.subject_in(request.subject), request.request_id
        )
        return pb.UpsertSubjectResponse(
            subject=c.subject_out(subject),
            created=created,
            idempotency_status=c.status_out(replayed),
        )

    def GetSubject(self, request, context) -> pb.GetSubjectResponse:
        subject = subjects.get_subject(
            current().principal, c.subject_type(request.type), request.id
        )
        return pb.GetSubjectResponse(subject=c.subject_out(subject))

    def ArchiveSubject(self, request, context) -> pb.ArchiveSubjectResponse:
        subject, replayed = subjects.archive_subject(
            current().principal, c.subject_type(request.type), request.id, request.request_id
        )
        return pb.ArchiveSubjectResponse(
            subject=c.subject_out(subject), idempotency_status=c.status_out(replayed)
        )


class AccessServicer(pb_grpc.AccessServiceServicer):
    def CheckAccess(self, request, context) -> pb.CheckAccessResponse:
        p = credentials.check_access(current().principal, list(request.scopes))
        return pb.CheckAccessResponse(
            organization=p.org,
            actor=c.author_out(p.author),
            scopes=sorted(p.scopes),
            requested_via=pb.RequestedVia(api_key_id=p.api_key_id, purpose=p.purpose)
            if p.api_key_id
            else None,
        )
