"""Webhooks and their deliveries, in plain SQL.

A delivery row is made for every enabled webhook subscribed to an event, in the transaction
that appends the event (fan_out), so a committed event is never without its deliveries. The
delivery worker (server/delivery.py) claims one due delivery at a time with a lease
(locked_until): on PostgreSQL under FOR UPDATE SKIP LOCKED, so replicas never take the same
row; on SQLite writers are serialized anyway. A worker that dies mid-delivery leaves its lease
to expire, and the delivery is attempted again.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import db
from .uow import run_sql

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

_WEBHOOK_COLUMNS = (
    '"seq", "id", "org", "url", "event_types", "enabled", "disabled_reason", "sealed_secret",'
    ' "create_time", "update_time"'
)


@dataclass(frozen=True)
class WebhookRow:
    seq: int
    id: str
    org: str
    url: str
    event_types: tuple[str, ...]
    enabled: bool
    disabled_reason: str
    sealed_secret: str
    create_time: int
    update_time: int


@dataclass(frozen=True)
class DeliveryRow:
    seq: int
    event_id: str
    event_type: str
    state: str
    attempts: int
    last_status: int
    last_error: str
    next_attempt_time: int
    last_attempt_time: int | None
    create_time: int


@dataclass(frozen=True)
class Claimed:
    """A delivery taken by one worker until lease_until."""

    seq: int
    webhook_id: str
    event_id: str
    event_type: str
    attempts: int
    url: str
    sealed_secret: str
    lease_until: int
    # The event row (None when it is no longer retained).
    event: tuple | None


def _types_in(stored: str) -> tuple[str, ...]:
    return tuple(t for t in stored.split(",") if t)


def _types_out(types: list[str] | tuple[str, ...]) -> str:
    """ ",a,b," so that one type is found with instr/strpos of ",type,"; "" means all."""
    return "," + ",".join(types) + "," if types else ""


def _webhook(row: tuple) -> WebhookRow:
    seq, wid, org, url, types, enabled, reason, sealed, created, updated = row
    return WebhookRow(
        seq, wid, org, url, _types_in(types), bool(enabled), reason, sealed, created, updated
    )


# --- webhooks ------------------------------------------------------------------------------


def insert(w: WebhookRow) -> None:
    run_sql(
        'INSERT INTO "webhooks" ("id", "org", "url", "event_types", "enabled",'
        ' "disabled_reason", "sealed_secret", "create_time", "update_time")'
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            w.id,
            w.org,
            w.url,
            _types_out(w.event_types),
            int(w.enabled),
            w.disabled_reason,
            w.sealed_secret,
            w.create_time,
            w.update_time,
        ),
    )


def get(org: str, webhook_id: str) -> WebhookRow | None:
    row = run_sql(
        f'SELECT {_WEBHOOK_COLUMNS} FROM "webhooks" WHERE "org" = ? AND "id" = ?',
        (org, webhook_id),
    ).fetchone()
    return _webhook(row) if row else None


def org_of(webhook_id: str) -> str | None:
    """The organization of a webhook, whichever it is (for the operator's CLI)."""
    row = run_sql('SELECT "org" FROM "webhooks" WHERE "id" = ?', (webhook_id,)).fetchone()
    return row[0] if row else None


def page(org: str, after_seq: int, limit: int) -> list[WebhookRow]:
    rows = run_sql(
        f'SELECT {_WEBHOOK_COLUMNS} FROM "webhooks" WHERE "org" = ? AND "seq" > ?'
        f' ORDER BY "seq" LIMIT {int(limit)}',
        (org, after_seq),
    ).fetchall()
    return [_webhook(r) for r in rows]


def update(w: WebhookRow) -> None:
    run_sql(
        'UPDATE "webhooks" SET "url" = ?, "event_types" = ?, "enabled" = ?,'
        ' "disabled_reason" = ?, "update_time" = ? WHERE "org" = ? AND "id" = ?',
        (
            w.url,
            _types_out(w.event_types),
            int(w.enabled),
            w.disabled_reason,
            w.update_time,
            w.org,
            w.id,
        ),
    )


def delete(org: str, webhook_id: str) -> bool:
    run_sql(
        'DELETE FROM "webhook_deliveries" WHERE "org" = ? AND "webhook_id" = ?', (org, webhook_id)
    )
    cursor = run_sql('DELETE FROM "webhooks" WHERE "org" = ? AND "id" = ?', (org, webhook_id))
    return cursor.rowcount > 0


def disable(webhook_id: str, reason: str, now: int) -> None:
    run_sql(
        'UPDATE "webhooks" SET "enabled" = 0, "disabled_reason" = ?, "update_time" = ?'
        ' WHERE "id" = ?',
        (reason, now, webhook_id),
    )


# --- deliveries ----------------------------------------------------------------------------


def sealed_secrets() -> list[tuple[str, str]]:
    """(id, sealed secret) of every webhook of every organization: for resealing."""
    return [(r[0], r[1]) for r in run_sql('SELECT "id", "sealed_secret" FROM "webhooks"')]


def set_sealed_secret(webhook_id: str, sealed: str) -> None:
    run_sql('UPDATE "webhooks" SET "sealed_secret" = ? WHERE "id" = ?', (sealed, webhook_id))


def fan_out(org: str, event_id: str, event_type: str, now: int) -> int:
    """Inside the event's transaction: one pending delivery per enabled webhook of org
    subscribed to event_type; returns how many. With no webhook it is one index probe."""
    find = "strpos" if db.current().is_postgres else "instr"
    return run_sql(
        'INSERT INTO "webhook_deliveries" ("webhook_id", "org", "event_id", "event_type",'
        ' "next_attempt_time", "create_time")'
        ' SELECT "id", "org", ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT) FROM "webhooks"'
        ' WHERE "org" = ? AND "enabled" = 1'
        f' AND ("event_types" = \'\' OR {find}("event_types", ?) > 0)',
        (event_id, event_type, now, now, org, f",{event_type},"),
    ).rowcount


def deliveries(org: str, webhook_id: str, after_seq: int, limit: int) -> list[DeliveryRow]:
    rows = run_sql(
        'SELECT "seq", "event_id", "event_type", "state", "attempts", "last_status",'
        ' "last_error", "next_attempt_time", "last_attempt_time", "create_time"'
        ' FROM "webhook_deliveries" WHERE "webhook_id" = ? AND "org" = ? AND "seq" > ?'
        f' ORDER BY "seq" LIMIT {int(limit)}',
        (webhook_id, org, after_seq),
    ).fetchall()
    return [DeliveryRow(*r) for r in rows]


# The webhook served least recently that is enabled, not leased (no delivery in flight) and
# has a due pending delivery. The lease is the webhook's: one delivery in flight per webhook.
_CLAIM_WEBHOOK = """
SELECT w."id", w."url", w."sealed_secret" FROM "webhooks" w
WHERE w."enabled" = 1 AND w."lease_until" <= ?
  AND EXISTS (
    SELECT 1 FROM "webhook_deliveries" d
    WHERE d."webhook_id" = w."id" AND d."state" = 'pending' AND d."next_attempt_time" <= ?
  )
ORDER BY w."lease_until"
LIMIT 1
"""

# Its oldest due deliveries, with their events.
_OLDEST_DUE = """
SELECT d."seq", d."event_id", d."event_type", d."attempts",
       e."id", e."org", e."type", e."event_time", e."payload"
FROM "webhook_deliveries" d
LEFT JOIN "events" e ON e."id" = d."event_id"
WHERE d."webhook_id" = ? AND d."state" = 'pending' AND d."next_attempt_time" <= ?
ORDER BY d."seq"
LIMIT ?
"""


def pending_count() -> int:
    """Deliveries pending, every organization's (the partial index of pending ones)."""
    sql = 'SELECT count(*) FROM "webhook_deliveries" WHERE "state" = ?'
    return int(run_sql(sql, (PENDING,)).fetchone()[0])


def any_due(now: int) -> bool:
    """Whether claim() may find something (a cheap read before taking a write lock)."""
    return run_sql(_CLAIM_WEBHOOK, (now, now)).fetchone() is not None


def claim(now: int, lease_until: int, batch: int = 1) -> list[Claimed]:
    """Inside writing(): leases the least recently served webhook with due deliveries until
    lease_until and returns up to batch of its oldest due deliveries, in order."""
    skip = " FOR UPDATE OF w SKIP LOCKED" if db.current().is_postgres else ""
    hook = run_sql(_CLAIM_WEBHOOK + skip, (now, now)).fetchone()
    if hook is None:
        return []
    rows = run_sql(_OLDEST_DUE, (hook[0], now, int(batch))).fetchall()
    if not rows:
        return []
    run_sql('UPDATE "webhooks" SET "lease_until" = ? WHERE "id" = ?', (lease_until, hook[0]))
    return [
        Claimed(
            seq=row[0],
            webhook_id=hook[0],
            event_id=row[1],
            event_type=row[2],
            attempts=row[3],
            url=hook[1],
            sealed_secret=hook[2],
            lease_until=lease_until,
            event=row[4:] if row[4] is not None else None,
        )
        for row in rows
    ]


def release(c: Claimed, now: int) -> bool:
    """Inside writing(): ends the webhook's lease; False when it is no longer ours (it
    expired and another worker took the webhook over: its outcome counts, not ours)."""
    return (
        run_sql(
            'UPDATE "webhooks" SET "lease_until" = ? WHERE "id" = ? AND "lease_until" = ?',
            (now, c.webhook_id, c.lease_until),
        ).rowcount
        > 0
    )


def record(
    c: Claimed,
    *,
    state: str,
    status: int,
    error: str,
    attempted_at: int,
    next_attempt_time: int,
) -> None:
    """Inside writing(), after release() said the lease was ours: one attempt's outcome."""
    run_sql(
        'UPDATE "webhook_deliveries" SET "state" = ?, "attempts" = "attempts" + 1,'
        ' "last_status" = ?, "last_error" = ?, "last_attempt_time" = ?,'
        ' "next_attempt_time" = ? WHERE "seq" = ? AND "state" = \'pending\'',
        (state, status, error, attempted_at, next_attempt_time, c.seq),
    )
