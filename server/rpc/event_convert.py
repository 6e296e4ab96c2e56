"""Stored change-feed events -> notes.v1.Event (for gRPC, and as JSON for NATS)."""

from __future__ import annotations

from google.protobuf import json_format
from notes.v1 import events_pb2 as epb
from notes.v1 import notes_pb2 as pb

from ..domain import model as m
from ..service.events import FeedEvent, Heartbeat
from . import convert as c


def event_out(e: FeedEvent) -> epb.Event:
    s = e.stored
    payload = s.payload
    actor = payload.get("actor") or {}
    out = epb.Event(
        id=s.id,
        type=s.type,
        organization=s.org,
        event_time=c.time_out(s.event_time),
        request_id=payload.get("request_id", ""),
        cursor=e.cursor,
    )
    if "note" in payload:
        out.note.CopyFrom(c.note_out(m.Note.from_json(payload["note"])))
    if actor:
        out.actor.CopyFrom(
            c.author_out(
                m.Author(m.AuthorType(actor["type"]), actor["id"], actor.get("display_name", ""))
            )
        )
    if payload.get("surface"):
        out.surface = c.surface_out(m.Surface(payload["surface"]))
    if payload.get("api_key_id"):
        out.requested_via.CopyFrom(
            pb.RequestedVia(api_key_id=payload["api_key_id"], purpose=payload.get("purpose", ""))
        )
    return out


def heartbeat_out(h: Heartbeat) -> epb.Heartbeat:
    return epb.Heartbeat(cursor=h.cursor, time=c.time_out(h.time))


def event_json(e: FeedEvent) -> bytes:
    """The event as protobuf JSON (what grpcurl shows), e.g. for NATS message bodies."""
    return json_format.MessageToJson(event_out(e), indent=None).encode()
