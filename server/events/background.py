"""The change feed's background work inside `notes serve`: purging events past the retention
period, and (optionally) publishing every event to NATS JetStream."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from ..config import Settings
from ..service import events

log = logging.getLogger("notes.events")


class Purger(threading.Thread):
    """Deletes expired events now and then every interval. Safe on several replicas: each
    batch is its own short transaction, and two replicas deleting at once only delete fewer."""

    def __init__(self, retention_days: int, interval: float) -> None:
        super().__init__(name="event-purger", daemon=True)
        self._retention_days = retention_days
        self._interval = interval
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                purged = events.purge_expired(self._retention_days)
                if purged:
                    log.info("events_purged", extra={"count": purged})
            except Exception as e:  # noqa: BLE001 - the next round tries again
                log.warning("events_purge_failed", extra={"error": type(e).__name__})
            self._halt.wait(self._interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


@dataclass
class Background:
    threads: list = field(default_factory=list)

    def stop(self) -> None:
        """Before the store closes: each thread finishes its step and ends."""
        for thread in self.threads:
            thread.stop()


def start(settings: Settings) -> Background:
    bg = Background()
    purger = Purger(settings.event_retention_days, settings.event_purge_interval_seconds)
    purger.start()
    bg.threads.append(purger)
    if settings.events_nats_url:
        from .nats_publisher import NatsPublisher

        publisher = NatsPublisher(settings)
        publisher.start()
        bg.threads.append(publisher)
    return bg
