"""The change feed's events: which a change emits, and what each carries.

Every change to a note appends its events in the change's own transaction (the outbox,
server/store/outbox.py), so an event exists if and only if the change committed.
"""

from __future__ import annotations

import ulid

from ..domain.model import Note, Principal, Surface, Visibility
from ..store import outbox
from . import webhooks

CREATED = "note.created"
UPDATED = "note.updated"
DELETED = "note.deleted"
UNDELETED = "note.undeleted"
CUSTOMER_VISIBLE = "note.customer_visible"
ERASED = "note.erased"
TYPES = (CREATED, UPDATED, DELETED, UNDELETED, CUSTOMER_VISIBLE, ERASED)

_BY_ACTION = {"CREATE": CREATED, "UPDATE": UPDATED, "DELETE": DELETED, "UNDELETE": UNDELETED}


def new_event_id() -> str:
    return "evt_" + str(ulid.ULID())


def emitted(action: str, before: Note | None, after: Note) -> list[str]:
    """The event types a change emits: one per change, and note.customer_visible as well when
    the note becomes visible to the customer (created so, or updated from internal)."""
    types = [_BY_ACTION[action]]
    if (
        action in ("CREATE", "UPDATE")
        and after.visibility == Visibility.CUSTOMER
        and (before is None or before.visibility != Visibility.CUSTOMER)
    ):
        types.append(CUSTOMER_VISIBLE)
    return types


def record(
    p: Principal,
    action: str,
    before: Note | None,
    after: Note,
    *,
    surface: Surface,
    request_id: str,
    at: int,
) -> None:
    """Inside the change's transaction: appends the change's events."""
    assert after.subject is not None
    payload = {
        "note": after.to_json(),
        "actor": {
            "type": p.author.type.value,
            "id": p.author.id,
            "display_name": p.author.display_name,
        },
        "surface": surface.value,
        "request_id": request_id,
        "api_key_id": p.api_key_id,
        "purpose": p.purpose,
    }
    subject = (after.subject.type.value, after.subject.id, after.subject.parent_id)
    for event_type in emitted(action, before, after):
        event_id = new_event_id()
        outbox.append(p.org, event_id, event_type, after.id, subject, at, payload)
        webhooks.fan_out(p.org, event_id, event_type, at)
