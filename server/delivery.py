"""The webhook delivery worker: runs inside `notes serve` and as `notes deliver`.

A small pool of threads; each claims one due delivery (server/store/webhooks.py: a lease in
its own committed transaction, FOR UPDATE SKIP LOCKED on PostgreSQL), POSTs it, and records the
outcome. Per webhook one delivery is in flight at a time, the oldest due first, so a slow
receiver holds one thread and never the others' webhooks.

Deliveries follow the Standard Webhooks specification (the `standardwebhooks` package signs):
POST of {"type", "timestamp", "data": <notes.v1.Event in proto3 JSON>} with webhook-id (the
event id, the same on every attempt), webhook-timestamp and webhook-signature. At least once:
until the receiver answers 2xx, retried after each of NOTES_WEBHOOK_RETRY_SECONDS (with
jitter), then failed. 410 Gone disables the webhook. Redirects are not followed. Unless
NOTES_WEBHOOK_ALLOW_PRIVATE=1, every connection goes to an address checked by
server/service/addresses.py after resolution.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpcore
import httpx
from google.protobuf import json_format

from .config import Settings
from .rpc.event_convert import event_out
from .service import addresses, sealing
from .service import webhooks as service
from .service.clock import now_us
from .service.events import FeedEvent
from .store import outbox, uow
from .store import webhooks as store
from .telemetry import metrics

# notes_webhook_deliveries_total's result label for a delivery's state after an attempt.
RESULTS = {store.DELIVERED: "delivered", store.PENDING: "retrying", store.FAILED: "failed"}
# How often a delivery thread counts the pending deliveries for the gauge, seconds.
PENDING_COUNT_SECONDS = 5.0

log = logging.getLogger("notes.webhooks")

USER_AGENT = "notes-webhooks/1"
# A lease outlives an attempt by this much: a worker that still holds it has stopped.
LEASE_MARGIN_SECONDS = 5.0
RESPONSE_READ_MAX = 64 * 1024
# Deliveries of one webhook taken under one lease and recorded in one transaction (sent one
# at a time, in order): a crash re-sends at most this many.
BATCH = 50


# --- the payload ---------------------------------------------------------------------------


def event_message(event_id: str, org: str, event_type: str, at: int, payload: dict):
    """A stored event as notes.v1.Event, as the feed renders it (its cursor left empty: it
    belongs to the feed)."""
    note_id = (payload.get("note") or {}).get("id", "")
    stored = outbox.StoredEvent(0, 0, event_id, org, event_type, note_id, at, payload)
    return event_out(FeedEvent(stored, ""))


def body_of(event_id: str, org: str, event_type: str, at: int, payload: dict) -> str:
    event = event_message(event_id, org, event_type, at, payload)
    return json.dumps(
        {
            "type": event_type,
            "timestamp": datetime.fromtimestamp(at / 1e6, UTC).isoformat().replace("+00:00", "Z"),
            "data": json_format.MessageToDict(event),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def headers_of(secret: str, event_id: str, body: str, now: float) -> dict[str, str]:
    from standardwebhooks.webhooks import Webhook

    at = datetime.fromtimestamp(int(now), UTC)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now)),
        "webhook-signature": Webhook(secret).sign(event_id, at, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


# --- the guarded connection ------------------------------------------------------------------


class _CheckedBackend(httpcore.SyncBackend):
    """Connects only to addresses the SSRF guard allows, resolved here and connected to as
    checked: a name that re-resolves elsewhere between check and connect gains nothing. TLS
    still verifies the certificate against the name (httpcore passes it as server_hostname)."""

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        last: Exception | None = None
        for address in addresses.resolve(host, port):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as e:
                last = e
        raise last or httpcore.ConnectError(f"cannot connect to {host}")


def client(settings: Settings) -> httpx.Client:
    transport = httpx.HTTPTransport(retries=0)
    if not settings.webhook_allow_private:
        transport._pool = httpcore.ConnectionPool(  # the same pool, with the checked backend
            ssl_context=httpx.create_ssl_context(),
            max_connections=16,
            max_keepalive_connections=16,
            keepalive_expiry=30.0,
            network_backend=_CheckedBackend(),
        )
    return httpx.Client(
        transport=transport,
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        trust_env=False,
    )


# --- one attempt ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: int  # 0: no answer
    error: str

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


def attempt(http: httpx.Client, claimed: store.Claimed, settings: Settings) -> Outcome:
    if claimed.event is None:
        return Outcome(0, "the event is no longer retained")
    event_id, org, event_type, at, payload = claimed.event
    try:
        secret = sealing.unseal(claimed.sealed_secret).decode()
    except sealing.SealBroken as e:
        return Outcome(0, str(e))
    body = body_of(event_id, org, event_type, at, json.loads(payload))
    headers = headers_of(secret, event_id, body, time.time())
    try:
        with http.stream("POST", claimed.url, content=body.encode(), headers=headers) as r:
            read = 0
            for chunk in r.iter_raw():  # drained a little, so the connection can be reused
                read += len(chunk)
                if read > RESPONSE_READ_MAX:
                    break
            status = r.status_code
    except addresses.AddressRefused as e:
        return Outcome(0, f"refused: {e}")
    except httpx.TimeoutException:
        return Outcome(0, f"no answer within {settings.webhook_timeout_seconds:g} s")
    except httpx.HTTPError as e:
        return Outcome(0, f"{type(e).__name__}: {e}"[:500])
    if 200 <= status < 300:
        return Outcome(status, "")
    return Outcome(status, f"HTTP {status}")


def next_attempt_after(attempts: int, schedule: tuple[float, ...]) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones (with ±10 % jitter), or
    None when the schedule is spent."""
    if attempts > len(schedule):
        return None
    return schedule[attempts - 1] * random.uniform(0.9, 1.1)


# --- the worker ----------------------------------------------------------------------------


class Deliverer:
    """The pool of delivery threads of this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Deliverer:
        for i in range(max(1, self.settings.webhook_workers)):
            t = threading.Thread(target=self._run, name=f"deliver-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float) -> None:
        """Lets attempts under way finish within timeout; one cut short keeps its lease and
        is attempted again once the lease expires."""
        self._stopping.set()
        with service.DUE:
            service.DUE.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _lease_us(self) -> int:
        return int((self.settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS) * 1e6)

    def _claim(self) -> list[store.Claimed]:
        now = now_us()
        with uow.reading():  # SQLite: no write lock taken while there is nothing to do
            if not store.any_due(now):
                return []
        with uow.writing():
            return store.claim(now, now + self._lease_us(), BATCH)

    def _send(self, http: httpx.Client, batch: list[store.Claimed]) -> list[tuple]:
        """Sends the batch in order while the receiver takes them and the lease can cover
        another attempt; (delivery, outcome, when) for each attempted."""
        done = []
        for claimed in batch:
            if self._stopping.is_set() and done:
                break
            left = claimed.lease_until - now_us()
            if done and left < (self.settings.webhook_timeout_seconds + 1) * 1e6:
                break
            outcome = attempt(http, claimed, self.settings)
            done.append((claimed, outcome, now_us()))
            if not outcome.delivered:
                break  # later events wait: per webhook, event order
        return done

    def _record(self, done: list[tuple]) -> None:
        """The outcomes of one batch, in one transaction that also ends the lease."""
        logged = []
        with uow.writing():
            if not store.release(done[0][0], now_us()):
                return
            for claimed, outcome, at in done:
                attempts = claimed.attempts + 1
                gone = outcome.status == 410
                state, next_at = store.DELIVERED, at
                if not outcome.delivered:
                    schedule = self.settings.webhook_retry_seconds
                    delay = None if gone else next_attempt_after(attempts, schedule)
                    state = store.FAILED if delay is None else store.PENDING
                    next_at = at if delay is None else at + int(delay * 1e6)
                store.record(
                    claimed,
                    state=state,
                    status=outcome.status,
                    error=outcome.error,
                    attempted_at=at,
                    next_attempt_time=next_at,
                )
                if gone:
                    store.disable(claimed.webhook_id, "the receiver answered 410 Gone", at)
                logged.append((claimed, outcome, attempts, state))
        counted = metrics.get().webhook_deliveries
        for claimed, outcome, attempts, state in logged:
            counted.labels(RESULTS[state]).inc()
            entry = {
                "webhook_id": claimed.webhook_id,
                "event_id": claimed.event_id,
                "attempt": attempts,
                "status": outcome.status,
                "state": state,
            }
            if outcome.error:
                entry["error"] = outcome.error
            log.info("webhook_attempt", extra=entry)

    def _run(self) -> None:
        poll = self.settings.webhook_poll_seconds
        failures = 0
        counted_at = 0.0
        with client(self.settings) as http:
            while not self._stopping.is_set():
                seen = service.signals
                try:
                    if time.monotonic() - counted_at >= PENDING_COUNT_SECONDS:
                        counted_at = time.monotonic()
                        with uow.reading():
                            metrics.get().webhook_pending.set(store.pending_count())
                    batch = self._claim()
                    if batch:
                        self._record(self._send(http, batch))
                    failures = 0
                except Exception as e:  # noqa: BLE001 - the store is down: try again later
                    # The store is down (or a send failed unrecorded): a claimed batch's lease
                    # expires and it is retried. The type only (a message may carry SQL), and
                    # fewer lines the longer it lasts.
                    failures += 1
                    if failures & (failures - 1) == 0:  # the 1st, 2nd, 4th, 8th... failure
                        log.warning(
                            "webhook_worker_failed",
                            extra={"error": type(e).__name__, "failures": failures},
                        )
                    self._stopping.wait(min(poll * 2**failures, 5.0))
                    continue
                if batch:
                    continue
                with service.DUE:
                    if service.signals == seen and not self._stopping.is_set():
                        service.DUE.wait(poll)
                if service.signals != seen:
                    # Notified from inside the event's transaction: on PostgreSQL the rows
                    # may not be visible yet, so look again shortly rather than at the poll.
                    self._stopping.wait(0.01)


def deliver_forever(settings: Settings) -> int:
    """`notes deliver`: only the worker, until SIGTERM/SIGINT."""
    import os
    import queue
    import signal

    from .store import db, migrations

    engine = db.open_database(settings.database_url, pool_size=settings.webhook_workers + 2)
    migrations.migrate(engine)
    signals: queue.SimpleQueue = queue.SimpleQueue()
    signal.signal(signal.SIGTERM, lambda *_: signals.put(1))
    signal.signal(signal.SIGINT, lambda *_: signals.put(1))
    deliverer = Deliverer(settings).start()
    log.info("delivering", extra={"pid": os.getpid(), "database": db.redact(settings.database_url)})
    while True:
        try:
            signals.get(timeout=0.1)  # steps, so the handler runs promptly (see runtime.py)
            break
        except queue.Empty:
            pass
    deliverer.stop(settings.grace_seconds)
    db.close()
    log.info("stopped", extra={"pid": os.getpid()})
    return 0
