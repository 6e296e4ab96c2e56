"""Publishing the change feed to NATS JetStream (NOTES_EVENTS_NATS_URL).

One publisher per deployment at a time follows the outbox across organizations, as a watcher
does, and publishes each event to `<prefix>.<org>.<type>` with the event id as Nats-Msg-Id, so
JetStream's de-duplication drops a re-publish within the stream's duplicate window. Its
position is saved in feed_positions after each published batch: after a crash or a restart it
resumes there, re-publishing at most the batch in flight. Replicas compete for a lock (a
PostgreSQL advisory lock on a connection of its own; on SQLite an flock of a file beside the
database) and only its holder publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import threading

import nats
import nats.js.errors

from ..config import Settings
from ..domain.cursors import Cursor
from ..service.clock import now_us
from ..service.events import FeedEvent
from ..store import db, feed, uow

log = logging.getLogger("notes.events")

BATCH = 200
DUPLICATE_WINDOW_SECONDS = 120.0
_TOKEN_SAFE = re.compile(r"[A-Za-z0-9_-]")


def subject_token(value: str) -> str:
    """value as one NATS subject token: letters, digits, _ and - as they are; every other
    character (., *, >, spaces, ~ itself) as ~XX per UTF-8 byte, so distinct values stay
    distinct."""
    return "".join(
        ch if _TOKEN_SAFE.fullmatch(ch) else "".join(f"~{b:02X}" for b in ch.encode())
        for ch in value
    )


def subject_of(prefix: str, org: str, event_type: str) -> str:
    return f"{prefix}.{subject_token(org)}.{event_type}"  # note.created: two tokens


class _Leadership:
    """Held by one publisher of the deployment at a time."""

    def __init__(self, consumer: str) -> None:
        self._consumer = consumer
        self._conn = None
        self._file: int | None = None

    def try_acquire(self) -> bool:
        engine = db.current()
        if engine.is_postgres:
            import psycopg

            key = int.from_bytes(
                hashlib.sha256(self._consumer.encode()).digest()[:8], "big", signed=True
            )
            database = engine.database
            conn = psycopg.connect(
                dbname=database.database, autocommit=True, **database.connect_params
            )
            if conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                self._conn = conn
                return True
            conn.close()
            return False
        path = (
            os.path.abspath(engine.database.database)
            + "."
            + self._consumer.replace(":", "-")
            + ".lock"
        )
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._file = fd
        return True

    def check(self) -> None:
        """Raises if the lock may be lost (its PostgreSQL connection broke)."""
        if self._conn is not None:
            self._conn.execute("SELECT 1")

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._file is not None:
            os.close(self._file)  # releases the flock
            self._file = None


class NatsPublisher(threading.Thread):
    def __init__(self, settings: Settings) -> None:
        super().__init__(name="nats-publisher", daemon=True)
        self._url = settings.events_nats_url
        self._stream = settings.events_nats_stream
        self._prefix = settings.events_nats_subject_prefix
        self._poll = settings.event_poll_seconds
        self.consumer = f"nats:{self._stream}"
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def run(self) -> None:
        asyncio.run(self._main())

    async def _sleep(self, seconds: float) -> None:
        await asyncio.to_thread(self._halt.wait, seconds)

    async def _main(self) -> None:
        backoff = 1.0
        leadership = _Leadership(self.consumer)
        while not self._halt.is_set():
            try:
                if not await asyncio.to_thread(leadership.try_acquire):
                    await self._sleep(2.0)  # another replica publishes
                    continue
                log.info("nats_publishing", extra={"stream": self._stream})
                await self._publish(leadership)
                backoff = 1.0
            except Exception as e:  # noqa: BLE001 - NATS or the store away: retry later
                log.warning("nats_publish_failed", extra={"error": type(e).__name__})
                await self._sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                await asyncio.to_thread(leadership.release)

    async def _ensure_stream(self, js) -> None:
        try:
            await js.stream_info(self._stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(
                name=self._stream,
                subjects=[f"{self._prefix}.>"],
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
            )

    def _read(self, position: tuple[int, int]):
        with uow.reading():
            return feed.read_all(position, BATCH)

    def _save(self, position: tuple[int, int]) -> None:
        with uow.writing():
            feed.save_position(self.consumer, position, now_us())

    def _load(self) -> tuple[int, int]:
        with uow.reading():
            return feed.load_position(self.consumer)

    async def _publish(self, leadership: _Leadership) -> None:
        from ..rpc.event_convert import event_json

        nc = await nats.connect(
            self._url, name="notes-events", connect_timeout=5, allow_reconnect=False
        )
        try:
            js = nc.jetstream()
            await self._ensure_stream(js)
            position = await asyncio.to_thread(self._load)
            while not self._halt.is_set():
                await asyncio.to_thread(leadership.check)
                batch, reached = await asyncio.to_thread(self._read, position)
                for stored in batch:
                    event = FeedEvent(
                        stored, Cursor(stored.txid, stored.seq, stored.event_time).encode()
                    )
                    await js.publish(
                        subject_of(self._prefix, stored.org, stored.type),
                        event_json(event),
                        timeout=10,
                        headers={"Nats-Msg-Id": stored.id, "Content-Type": "application/json"},
                    )
                if batch:  # saved only when something was published: idle polls write nothing
                    await asyncio.to_thread(self._save, reached)
                position = reached
                if len(batch) < BATCH:
                    await self._sleep(self._poll)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()
