"""Helpers for the change-feed tests: following ListEvents and WatchEvents."""

from __future__ import annotations

import queue
import threading

import grpc
from notes.v1 import events_pb2 as epb
from notes.v1 import events_pb2_grpc as epb_grpc


def events_stub(channel) -> epb_grpc.EventsServiceStub:
    return epb_grpc.EventsServiceStub(channel)


def drain(tenant, after: str = "", page_size: int = 0, **kw) -> tuple[list[epb.Event], str]:
    """Every event after the cursor, following next_cursor until a page comes back empty."""
    stub = events_stub(tenant.channel)
    seen: list[epb.Event] = []
    while True:
        resp = stub.ListEvents(
            epb.ListEventsRequest(after=after, page_size=page_size, **kw), metadata=tenant.auth
        )
        assert resp.next_cursor
        seen.extend(resp.events)
        after = resp.next_cursor
        if not resp.events:
            return seen, after


class Watch:
    """A WatchEvents stream read by a thread into a queue (items: responses, or the error)."""

    def __init__(self, channel, metadata, after: str = "", **kw) -> None:
        self.call = events_stub(channel).WatchEvents(
            epb.WatchEventsRequest(after=after, **kw), metadata=metadata
        )
        self.items: queue.Queue = queue.Queue()
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for item in self.call:
                self.items.put(item)
        except grpc.RpcError as e:
            self.items.put(e)
        finally:
            self.ended.set()

    def next(self, timeout: float = 15.0):
        item = self.items.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def heartbeat(self, timeout: float = 15.0) -> epb.Heartbeat:
        """The next heartbeat, skipping events."""
        while True:
            item = self.next(timeout)
            if item.HasField("heartbeat"):
                return item.heartbeat

    def events(self, count: int, timeout: float = 15.0) -> list[epb.Event]:
        """The next count events, skipping heartbeats."""
        out: list[epb.Event] = []
        while len(out) < count:
            item = self.next(timeout)
            if item.HasField("event"):
                out.append(item.event)
        return out

    def cancel(self) -> None:
        self.call.cancel()
        self.ended.wait(10)
