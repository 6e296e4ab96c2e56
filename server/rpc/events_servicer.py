"""EventsService: the change feed (server/service/events.py)."""

from __future__ import annotations

from notes.v1 import events_pb2 as epb
from notes.v1 import events_pb2_grpc as epb_grpc

from ..config import Settings
from ..service import events
from . import convert as c
from .event_convert import event_out, heartbeat_out
from .interceptors import current


def _query(request, page_size: int = 0) -> events.EventQuery:
    return events.EventQuery(
        after=request.after,
        page_size=page_size,
        types=tuple(request.types),
        subject=c.ref_in(request.subject) if request.HasField("subject") else None,
    )


class EventsServicer(epb_grpc.EventsServiceServicer):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def ListEvents(self, request: epb.ListEventsRequest, context) -> epb.ListEventsResponse:
        page = events.list_events(
            current().principal,
            _query(request, request.page_size),
            retention_days=self._settings.event_retention_days,
        )
        return epb.ListEventsResponse(
            events=[event_out(e) for e in page.events], next_cursor=page.next_cursor
        )

    def WatchEvents(self, request: epb.WatchEventsRequest, context):
        s = self._settings
        # A client that leaves wakes its watcher at once instead of at the next poll.
        context.add_callback(events.FEED.notify)
        for item in events.watch(
            current().principal,
            _query(request),
            active=context.is_active,
            retention_days=s.event_retention_days,
            heartbeat_seconds=s.event_heartbeat_seconds,
            poll_seconds=s.event_poll_seconds,
            max_watchers=s.effective_max_watchers(),
        ):
            if isinstance(item, events.Heartbeat):
                yield epb.WatchEventsResponse(heartbeat=heartbeat_out(item))
            else:
                yield epb.WatchEventsResponse(event=event_out(item))
