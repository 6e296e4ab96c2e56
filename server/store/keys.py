"""API keys and their OAuth nonces."""

from __future__ import annotations

import hmac

from . import db
from .models import ApiKeyRow


def insert_key(row: dict[str, object]) -> None:
    ApiKeyRow.insert(**row).execute()


def find_key(*, key_id: str = "", secret_hash: str = "") -> ApiKeyRow | None:
    query = ApiKeyRow.select()
    if key_id:
        query = query.where(ApiKeyRow.key_id == key_id)
    else:
        query = query.where(ApiKeyRow.secret_hash == secret_hash)
    return query.first()


def revoke_key(key_id: str, now: int) -> bool:
    return bool(
        ApiKeyRow.update(revoke_time=now)
        .where((ApiKeyRow.key_id == key_id) & ApiKeyRow.revoke_time.is_null())
        .execute()
    )


def list_keys(org: str) -> list[ApiKeyRow]:
    return list(ApiKeyRow.select().where(ApiKeyRow.org == org).order_by(ApiKeyRow.create_time))


def set_key_sealed(key_id: str, sealed: str) -> None:
    ApiKeyRow.update(secret_sealed=sealed).where(ApiKeyRow.key_id == key_id).execute()


def use_nonce(key_id: str, nonce: str, timestamp: int, request_ref: str, oldest: int) -> bool:
    """Records an OAuth nonce of a key; False when it was used before by another request.

    The unique key (key_id, nonce) decides across replicas. A request the gateway serves with
    several calls presents the same request_ref each time; those are the same use. Nonces
    whose timestamp is older than `oldest` are forgotten: their timestamp is refused anyway."""
    database = db.current().database
    ph = database.param
    database.execute_sql(
        f"DELETE FROM oauth_nonces WHERE key_id = {ph} AND oauth_timestamp < {ph}",
        (key_id, oldest),
    )
    conflict = "ON CONFLICT (key_id, nonce) DO NOTHING"
    cursor = database.execute_sql(
        "INSERT INTO oauth_nonces (key_id, nonce, oauth_timestamp, request_ref)"
        f" VALUES ({ph}, {ph}, {ph}, {ph}) {conflict}",
        (key_id, nonce, timestamp, request_ref),
    )
    if cursor.rowcount == 1:
        return True
    row = database.execute_sql(
        f"SELECT request_ref FROM oauth_nonces WHERE key_id = {ph} AND nonce = {ph}",
        (key_id, nonce),
    ).fetchone()
    return row is not None and hmac.compare_digest(row[0], request_ref)


def list_all_keys() -> list[ApiKeyRow]:
    return list(ApiKeyRow.select().order_by(ApiKeyRow.create_time))
