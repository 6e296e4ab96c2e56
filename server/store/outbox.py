"""The outbox: the change feed's events, appended in the transaction of the change.

Events are ordered by (txid, seq). On SQLite txid is 0 and seq, allocated inside the one write
transaction at a time, is commit order. On PostgreSQL seq is allocated at insert but
transactions commit in any order, so a reader that walked seq could pass an event whose
transaction commits later, and skip it forever. Each event therefore records its transaction
id, and a reader only returns events of transactions older than the oldest one still running
(pg_snapshot_xmin): every event that commits later has a txid at or above that, so it sorts
after anything already returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from . import db

# PostgreSQL: the transaction id (xid8, 64 bits, never wraps) as a plain bigint.
_PG_TXID = "pg_current_xact_id()::text::bigint"
_PG_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


@dataclass(frozen=True)
class StoredEvent:
    txid: int
    seq: int
    id: str
    org: str
    type: str
    note_id: str
    event_time: int  # microseconds since the epoch
    payload: dict


def append(
    org: str,
    event_id: str,
    event_type: str,
    note_id: str,
    subject: tuple[str, str, str],
    event_time: int,
    payload: dict,
) -> int:
    """Inside writing(): appends one event; returns its seq."""
    engine = db.current()
    p = engine.database.param
    txid = _PG_TXID if engine.is_postgres else "0"
    sql = (
        'INSERT INTO "events" ("id", "org", "type", "note_id", "subject_type", "subject_id",'
        ' "subject_parent_id", "txid", "event_time", "payload")'
        f" VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {txid}, {p}, {p})"
    )
    params = (
        event_id,
        org,
        event_type,
        note_id,
        *subject,
        event_time,
        json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
    )
    if engine.is_postgres:
        return engine.database.execute_sql(sql + ' RETURNING "seq"', params).fetchone()[0]
    return engine.database.execute_sql(sql, params).lastrowid


def read(
    org: str | None,
    after: tuple[int, int],
    limit: int,
    *,
    types: list[str] | None = None,
    subject: tuple[str, str] | None = None,
) -> list[StoredEvent]:
    """Up to limit events of org (None: of every organization) strictly after the position
    (txid, seq), oldest first; on PostgreSQL only those of transactions that can no longer be
    overtaken (see above)."""
    engine = db.current()
    p = engine.database.param
    where = [f'("txid", "seq") > ({p}, {p})']
    params: list[object] = [after[0], after[1]]
    if org is not None:
        where.append(f'"org" = {p}')
        params.append(org)
    if engine.is_postgres:
        where.append(f'"txid" < {_PG_HORIZON}')
    if types:
        where.append(f'"type" IN ({", ".join([p] * len(types))})')
        params.extend(types)
    if subject is not None:
        where.append(
            f'(("subject_type" = {p} AND "subject_id" = {p})'
            f' OR ("subject_parent_id" = {p} AND "subject_type" = {p}))'
        )
        params.extend([subject[0], subject[1], subject[1], "order_item"])
    sql = (
        'SELECT "txid", "seq", "id", "org", "type", "note_id", "event_time", "payload"'
        f' FROM "events" WHERE {" AND ".join(where)} ORDER BY "txid", "seq" LIMIT {int(limit)}'
    )
    rows = engine.database.execute_sql(sql, params).fetchall()
    return [StoredEvent(*row[:7], json.loads(row[7])) for row in rows]


def horizon() -> tuple[int, int]:
    """A position every event committing from now on sorts after: (the oldest running
    transaction - 1, the largest seq) on PostgreSQL; (0, the last seq) on SQLite."""
    engine = db.current()
    if engine.is_postgres:
        row = engine.database.execute_sql(
            f'SELECT {_PG_HORIZON} - 1, COALESCE((SELECT max("seq") FROM "events"), 0)'
        ).fetchone()
        return int(row[0]), 2**62
    row = engine.database.execute_sql('SELECT COALESCE(max("seq"), 0) FROM "events"').fetchone()
    return 0, int(row[0])


def purge(older_than: int, batch: int = 10_000) -> int:
    """Deletes events older than older_than (microseconds); returns how many."""
    engine = db.current()
    p = engine.database.param
    sql = (
        'DELETE FROM "events" WHERE "seq" IN (SELECT "seq" FROM "events"'
        f' WHERE "event_time" < {p} ORDER BY "seq" LIMIT {int(batch)})'
    )
    return engine.database.execute_sql(sql, (older_than,)).rowcount
