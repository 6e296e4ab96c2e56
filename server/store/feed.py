"""Following the outbox across organizations (what a publisher does), and the durable
positions of such followers (table feed_positions, migration 9).

Reads obey the same rule as outbox.read: on PostgreSQL nothing at or above the oldest running
transaction is returned, so a follower never passes an event that commits later.
"""

from __future__ import annotations

from . import db
from .outbox import StoredEvent, horizon, read


def read_all(after: tuple[int, int], limit: int) -> tuple[list[StoredEvent], tuple[int, int]]:
    """Up to limit events of every organization strictly after the position, oldest first,
    and the position reached: the last event's, or when fewer than limit came back, a position
    past everything committed so far (never one a later commit could sort before)."""
    mark = horizon()  # first: everything below it has committed before the read begins
    events = read(None, after, limit)
    reached = (events[-1].txid, events[-1].seq) if events else after
    if len(events) < limit:
        reached = max(reached, mark)
    return events, reached


def load_position(consumer: str) -> tuple[int, int]:
    engine = db.current()
    p = engine.database.param
    row = engine.database.execute_sql(
        f'SELECT "txid", "seq" FROM "feed_positions" WHERE "consumer" = {p}', (consumer,)
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def save_position(consumer: str, position: tuple[int, int], at: int) -> None:
    engine = db.current()
    p = engine.database.param
    engine.database.execute_sql(
        'INSERT INTO "feed_positions" ("consumer", "txid", "seq", "update_time")'
        f' VALUES ({p}, {p}, {p}, {p}) ON CONFLICT ("consumer") DO UPDATE SET'
        ' "txid" = excluded."txid", "seq" = excluded."seq", "update_time" = excluded."update_time"',
        (consumer, position[0], position[1], at),
    )
