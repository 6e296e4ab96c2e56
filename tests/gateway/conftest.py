"""Gateway fixtures: an HTTP client on the real gateway, credentials in each dialect's form,
and a gateway whose service is unreachable."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator

import httpx
import pytest

from server.service import credentials
from tests.conftest import BIN, JWT_SECRET, Tenant

SCOPES = ["notes:read", "notes:write"]


@pytest.fixture
def http(service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.http_base, timeout=10) as client:
        yield client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def basic(user: str, password: str = "") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def admin_jwt(
    tenant: Tenant, scopes: list[str] | None = None, ttl: int = 600, actor_id: str = ""
) -> str:
    return credentials.mint_token(
        JWT_SECRET, tenant.org, actor_id or tenant.actor_id, scopes or SCOPES, ttl, "Jordan Buyer"
    )


def expired_key(tenant: Tenant) -> str:
    """A key of the tenant whose expiry has passed; returns its secret."""
    from server.store import uow
    from server.store.models import ApiKeyRow

    key = credentials.create_key(tenant.org, "user_1", "Jordan Buyer", SCOPES, "tests", 3600)
    with uow.writing():
        ApiKeyRow.update(expire_time=1).where(ApiKeyRow.key_id == key.key_id).execute()
    return key.secret


def revoked_key(tenant: Tenant) -> tuple[str, str]:
    """A revoked key of the tenant: (key_id, secret)."""
    key = credentials.create_key(tenant.org, "user_1", "Jordan Buyer", SCOPES, "tests")
    credentials.revoke_key(key.key_id)
    return key.key_id, key.secret


@pytest.fixture
def admin(tenant) -> dict[str, str]:
    """Customer notes credentials: an admin JWT of the tenant's user."""
    return bearer(admin_jwt(tenant))


@pytest.fixture
def key(tenant) -> dict[str, str]:
    """Bearer API key credentials of the tenant (ShelfCycle, NewStore)."""
    return bearer(tenant.secret)


@pytest.fixture
def consumer(tenant) -> tuple[str, str]:
    """WooCommerce consumer_key:consumer_secret of the tenant."""
    return (tenant.key_id, tenant.secret)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gateway(target: str, cwd, **env: str) -> Iterator[str]:
    """A `notes gateway` process for target; yields its base URL."""
    process = subprocess.Popen(
        [str(BIN / "notes"), "gateway", "--target", target],
        env={
            **os.environ,
            "NOTES_HTTP_ADDR": "127.0.0.1:0",
            "PYTHONUNBUFFERED": "1",
            # The service's secret, from which the key that signs surfaces is derived.
            "NOTES_JWT_SECRET": JWT_SECRET,
            **env,
        },
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = 0
    for line in process.stderr:  # blocks until the gateway says it serves, or exits
        if '"event": "serving"' in line:
            port = json.loads(line)["http_port"]
            break
    if not port:
        process.kill()
        raise RuntimeError("the gateway did not start")
    threading.Thread(target=process.stderr.read, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="session")
def unreachable_gateway(tmp_path_factory) -> Iterator[str]:
    """A gateway whose service address has no listener."""
    cwd = tmp_path_factory.mktemp("unreachable")
    with gateway(f"127.0.0.1:{_free_port()}", cwd, NOTES_GATEWAY_DEADLINE_SECONDS="5") as url:
        yield url


@pytest.fixture(scope="session")
def sao_paulo_gateway(service, tmp_path_factory) -> Iterator[str]:
    """A second gateway on the same service, with a shop in America/Sao_Paulo and no public
    base URL (links are built from the request)."""
    cwd = tmp_path_factory.mktemp("sao_paulo")
    env = {"NOTES_SHOP_TIMEZONE": "America/Sao_Paulo", "NOTES_PUBLIC_BASE_URL": ""}
    with gateway(service.grpc_target, cwd, **env) as url:
        yield url
