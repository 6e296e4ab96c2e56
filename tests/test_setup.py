"""Setting up: a PostgreSQL ?schema= that does not exist yet, and rotating the server keys that
seal API key secrets."""

from __future__ import annotations

import os
import subprocess
import uuid

import psycopg
import pytest
from cryptography.fernet import Fernet

from server.domain.model import Author, AuthorType, Principal
from server.service import credentials, webhooks
from server.store import uow
from server.store import webhooks as webhook_store
from server.store.models import ApiKeyRow

from .conftest import BIN, PG_URL


@pytest.mark.skipif(not PG_URL, reason="NOTES_TEST_POSTGRES_URL is not set")
def test_migrate_and_keys_create_make_a_missing_schema(tmp_path):
    schema = "missing_" + uuid.uuid4().hex[:10]
    sep = "&" if "?" in PG_URL else "?"
    env = {**os.environ, "NOTES_DATABASE_URL": f"{PG_URL}{sep}schema={schema}"}
    try:
        for args in (
            ["migrate"],
            [
                "keys",
                "create",
                "--org",
                "acme",
                "--actor-id",
                "u1",
                "--display-name",
                "U",
                "--purpose",
                "setup",
            ],
        ):
            done = subprocess.run(
                [str(BIN / "notes"), *args],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            assert "Traceback" not in done.stderr
        with psycopg.connect(PG_URL) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = 'api_keys'",
                (schema,),
            ).fetchone()[0]
        assert tables == 1
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_reseal_moves_every_secret_to_a_new_first_key(service, monkeypatch):
    monkeypatch.setenv("NOTES_WEBHOOK_ALLOW_PRIVATE", "1")  # a receiver that need not exist
    old = os.environ["NOTES_SECRET_KEYS"]
    key = credentials.create_key("org_reseal", "u1", "U", ["notes:read"], "rotation")
    owner = Principal("org_reseal", Author(AuthorType.SYSTEM, "t"), frozenset({"webhooks:write"}))
    hook, hook_secret, _ = webhooks.create_webhook(owner, "http://127.0.0.1:9/h", [], True)
    new = Fernet.generate_key().decode()
    done = subprocess.run(
        [str(BIN / "notes"), "keys", "reseal"],
        env={**service.env, "NOTES_SECRET_KEYS": f"{new},{old}"},
        cwd=service.env["NOTES_TEST_CWD"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    with uow.reading():
        sealed = ApiKeyRow.get(ApiKeyRow.key_id == key.key_id).secret_sealed
    assert credentials.SecretBox([new]).open(sealed) == key.secret  # the old key can go now
    assert credentials.SecretBox([old]).open(sealed) is None
    with uow.reading():
        sealed = webhook_store.get("org_reseal", hook.id).sealed_secret
    assert credentials.SecretBox([new]).open(sealed) == hook_secret  # webhooks' too
