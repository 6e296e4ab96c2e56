"""Calling notes.v1 as the caller: credentials and the surface as metadata, one deadline,
a span per call, and the service's errors read as Failures."""

from __future__ import annotations

import os

import grpc
from notes.v1 import notes_pb2 as pb
from starlette.requests import Request

from ..service.credentials import sign_surface
from ..telemetry import tracing
from . import observe
from .bodies import AUTHORIZATION_LIMIT
from .errors import Code, Failure, from_rpc_error, note_not_found, subject_not_found

DEADLINE_SECONDS = float(os.environ.get("NOTES_GATEWAY_DEADLINE_SECONDS") or 10)
PAGE_SIZE = 1000  # the service's maximum: dialects without paging read every page
SURFACE_HEADER = "x-notes-surface"
SURFACE_SIG_HEADER = "x-notes-surface-sig"
ORG_HEADER = "x-notes-org"  # the caller's organization, sent back by the service


class Call:
    """One HTTP request's way to the service: the caller's credentials and the surface."""

    def __init__(self, request: Request, surface: str, authorization: str | None) -> None:
        self.request = request
        self.notes = request.app.state.notes
        self.subjects = request.app.state.subjects
        self.access = request.app.state.access
        self.authorization = authorization
        self.authenticated = False
        signature = sign_surface(request.app.state.surface_key, surface, authorization or "")
        self._metadata: list[tuple[str, str]] = [
            (SURFACE_HEADER, surface),
            (SURFACE_SIG_HEADER, signature),
        ]
        if authorization:
            self._metadata.append(("authorization", authorization))

    async def invoke(self, method, message):
        if self.authorization and not (
            self.authorization.isascii()
            and self.authorization.isprintable()
            and len(self.authorization) <= AUTHORIZATION_LIMIT
        ):
            # gRPC metadata cannot carry it; the service would call it malformed anyway.
            raise Failure(Code.UNAUTHENTICATED, "CREDENTIALS_MALFORMED", local=True)
        if tracing.enabled():
            return await self._traced(method, message)
        return await self._invoke(method, message, self._metadata)

    async def _invoke(self, method, message, metadata):
        call = method(message, metadata=metadata, timeout=DEADLINE_SECONDS)
        try:
            response = await call
        except grpc.aio.AioRpcError as err:
            self._note_org(err.initial_metadata())
            raise from_rpc_error(err) from None
        self._note_org(await call.initial_metadata())
        self.authenticated = True
        return response

    def _note_org(self, metadata) -> None:
        for key, value in metadata or ():
            if key == ORG_HEADER:
                observe.set_org(self.request, value)

    async def _traced(self, method, message):
        """A client span for the call, its context sent along as W3C traceparent."""
        from opentelemetry.trace import SpanKind

        name = getattr(method, "_method", b"").decode().lstrip("/")
        service, _, rpc = name.rpartition("/")
        with tracing.tracer().start_as_current_span(
            name,
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc},
        ):
            metadata = list(self._metadata)
            tracing.inject(metadata)
            return await self._invoke(method, message, metadata)

    async def get_note(self, note_id: str = "", number: int = 0) -> pb.Note:
        """The note, deleted or not; NOTE_NOT_FOUND also for ids the service cannot parse."""
        request = pb.GetNoteRequest(number=number) if number else pb.GetNoteRequest(id=note_id)
        try:
            return (await self.invoke(self.notes.GetNote, request)).note
        except Failure as f:
            if f.code == Code.INVALID_ARGUMENT:
                raise note_not_found(note_id or str(number)) from None
            raise

    async def require_subject(self, subject_type: int, subject_id: str) -> pb.Subject:
        """The registered subject; SUBJECT_NOT_FOUND also for ids that cannot exist."""
        request = pb.GetSubjectRequest(type=subject_type, id=subject_id)
        try:
            return (await self.invoke(self.subjects.GetSubject, request)).subject
        except Failure as f:
            if f.code == Code.INVALID_ARGUMENT:
                raise subject_not_found(subject_type, subject_id) from None
            raise

    async def list_page(self, request: pb.ListNotesRequest) -> pb.ListNotesResponse:
        """A page of a registered subject's notes, in one call when the page holds any: only
        an empty page, or a refused request, asks whether the subject exists, so that an
        unknown subject is still SUBJECT_NOT_FOUND and answers before other input errors."""
        subject = request.subject
        try:
            page = await self.invoke(self.notes.ListNotes, request)
        except Failure as f:
            if f.code == Code.INVALID_ARGUMENT:
                await self.require_subject(subject.type, subject.id)
            raise
        if not page.notes and not page.total_size:
            await self.require_subject(subject.type, subject.id)
        return page

    async def list_all(self, request: pb.ListNotesRequest) -> list[pb.Note]:
        """Every page of a registered subject's notes, for dialects whose lists have no paging."""
        request.page_size = PAGE_SIZE
        page = await self.list_page(request)
        notes: list[pb.Note] = list(page.notes)
        while page.next_page_token:
            request.page_token = page.next_page_token
            page = await self.invoke(self.notes.ListNotes, request)
            notes.extend(page.notes)
        return notes

    async def check_credentials(self, write: bool) -> None:
        """Credentials and scope, checked by the service without touching any note."""
        scope = "notes:write" if write else "notes:read"
        await self.invoke(self.access.CheckAccess, pb.CheckAccessRequest(scopes=[scope]))


def base_url(request: Request) -> str:
    """NOTES_PUBLIC_BASE_URL, or the base URL the request came in on."""
    configured = request.app.state.settings.public_base_url
    return (configured or str(request.base_url)).rstrip("/")


def authorization_header(request: Request) -> str | None:
    return request.headers.get("authorization")
