"""The audit trail: a note's events."""

from __future__ import annotations

from ..domain.model import Author, AuthorType, NoteEvent, Surface
from .models import NoteEventRow
from .uow import _insert


def add_event(org: str, note_id: str, e: NoteEvent) -> None:
    _insert(
        "note_events",
        [
            {
                "org": org,
                "note_id": note_id,
                "action": e.action,
                "actor_type": e.actor.type.value,
                "actor_id": e.actor.id,
                "actor_name": e.actor.display_name,
                "surface": e.surface.value,
                "api_key_id": e.api_key_id,
                "purpose": e.purpose,
                "request_id": e.request_id,
                "old_version": e.old_version,
                "new_version": e.new_version,
                "event_time": e.event_time,
            }
        ],
    )


def list_events(org: str, note_id: str) -> list[NoteEvent]:
    """A note's audit trail, oldest first."""
    return list_events_of(org, [note_id])[note_id]


def list_events_of(org: str, note_ids: list[str]) -> dict[str, list[NoteEvent]]:
    """The audit trails of many notes (an export's page) in one query."""
    out: dict[str, list[NoteEvent]] = {i: [] for i in note_ids}
    if not note_ids:
        return out
    rows = (
        NoteEventRow.select()
        .where((NoteEventRow.org == org) & (NoteEventRow.note_id.in_(note_ids)))
        .order_by(NoteEventRow.pk)
        .tuples()
    )
    names = [f.name for f in NoteEventRow._meta.sorted_fields]
    for values in rows:
        r = dict(zip(names, values, strict=True))
        out[r["note_id"]].append(
            NoteEvent(
                action=r["action"],
                actor=Author(AuthorType(r["actor_type"]), r["actor_id"], r["actor_name"]),
                surface=Surface(r["surface"]),
                request_id=r["request_id"],
                old_version=r["old_version"],
                new_version=r["new_version"],
                event_time=r["event_time"],
                api_key_id=r["api_key_id"],
                purpose=r["purpose"],
            )
        )
    return out
