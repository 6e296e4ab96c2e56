"""A GET through the gateway is one call to the service when what it reads exists: counted in
the service's own access log (one "rpc" line per call, with the caller's organization)."""

from __future__ import annotations

import uuid

import httpx
from notes.v1 import notes_pb2 as pb

from server.domain.model import SubjectType
from tests.conftest import new_tenant, rpc_lines

from .conftest import basic, bearer

ORDER_UUID = "0dce51af-fcda-4f6b-aca1-2c8ee5e695b3"


def _calls_made_by(service, tenant, request) -> list[str]:
    """The service methods one HTTP request called, between two marker calls of the tenant."""

    def marked(log) -> list[int]:
        lines = [r for r in rpc_lines(log) if r.get("org") == tenant.org]
        return [i for i, r in enumerate(lines) if r["method"].endswith("/CheckAccess")]

    def mark() -> list[dict]:
        seen = len(marked(service.log))
        tenant.access.CheckAccess(pb.CheckAccessRequest(), metadata=tenant.auth)
        log = service.wait_for_log(lambda log: len(marked(log)) > seen)
        return [r for r in rpc_lines(log) if r.get("org") == tenant.org]

    before = len(mark())
    response = request()
    assert response.status_code == 200, response.text
    lines = mark()
    return [r["method"].rsplit("/", 1)[-1] for r in lines[before : len(lines) - 1]]


def test_every_get_of_something_that_exists_is_one_call_to_the_service(service, channel):
    tenant = new_tenant(channel)
    tenant.register(SubjectType.ORDER, ORDER_UUID)
    base = service.http_base
    key = bearer(tenant.secret)

    def post(path: str, body: dict, headers: dict | None = None) -> dict:
        response = httpx.post(base + path, json=body, headers={**key, **(headers or {})})
        assert response.is_success, response.text
        return response.json()

    shelf = post(
        "/api/v1/notes",
        {"primarySubject": {"type": "customer", "id": "cus_1"}, "body": "Called back"},
        {"Idempotency-Key": str(uuid.uuid4())},
    )
    post(f"/orders/{ORDER_UUID}/notes", {"text": "Packed", "source": "wms", "tags": []})
    woo = post("/wp-json/wc/v3/orders/723/notes", {"note": "Shipped"})
    woo_auth = basic(tenant.key_id, tenant.secret)
    reads = {
        "customer notes list": ("/admin/customers/cus_1/notes", basic(tenant.secret)),
        "ShelfCycle note": (f"/api/v1/notes/{shelf['data']['id']}", key),
        "NewStore list": (f"/orders/{ORDER_UUID}/notes", key),
        "WooCommerce list": ("/wp-json/wc/v3/orders/723/notes", woo_auth),
        "WooCommerce note": (f"/wp-json/wc/v3/orders/723/notes/{woo['id']}", woo_auth),
    }
    made = {
        name: _calls_made_by(service, tenant, lambda p=path, h=h: httpx.get(base + p, headers=h))
        for name, (path, h) in reads.items()
    }
    assert made == {
        "customer notes list": ["ListNotes"],
        "ShelfCycle note": ["GetNote"],
        "NewStore list": ["ListNotes"],
        "WooCommerce list": ["ListNotes"],
        "WooCommerce note": ["GetNote"],
    }
