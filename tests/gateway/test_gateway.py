"""What all dialects share: the service being unreachable, paths no dialect owns, and the
OpenAPI document."""

from __future__ import annotations

import httpx
import pytest

from server.gateway import openapi

from .conftest import bearer

# One request per dialect, and the shape its 503 must have.
DIALECT_REQUESTS = [
    ("GET", "/admin/customers/cus_1/notes", None, {"message", "type"}),
    ("POST", "/api/v1/notes", {"body": "x"}, {"error"}),
    ("GET", "/wp-json/wc/v3/orders/723/notes", None, {"code", "message", "data"}),
    ("GET", "/orders/723/notes", None, {"message"}),
]


@pytest.mark.parametrize("method,path,body,keys", DIALECT_REQUESTS)
def test_an_unreachable_service_is_503_in_each_dialects_shape(
    unreachable_gateway, method, path, body, keys
):
    headers = {**bearer("sk_anything"), "Idempotency-Key": "k"}
    with httpx.Client(base_url=unreachable_gateway, timeout=30) as client:
        response = client.request(method, path, headers=headers, json=body)
    assert response.status_code == 503
    assert set(response.json()) == keys
    assert "Traceback" not in response.text


def test_an_unreachable_service_without_credentials_is_still_503(unreachable_gateway):
    with httpx.Client(base_url=unreachable_gateway, timeout=30) as client:
        response = client.post("/orders/723/notes", json={"text": ""})
    assert response.status_code == 503
    assert response.json() == {"message": "Service unavailable."}


def test_paths_no_dialect_owns_are_json_404s(http):
    response = http.get("/nothing/here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"message"}


def test_the_openapi_document_covers_every_dialect_route(http):
    response = http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document == openapi.DOCUMENT  # the document the contract run generates from
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/admin/customers/{id}/notes",
        "/api/v1/notes",
        "/api/v1/notes/{id}",
        "/wp-json/wc/v3/orders/{order_id}/notes",
        "/wp-json/wc/v3/orders/{order_id}/notes/{note_id}",
        "/orders/{order_uuid}/notes",
        "/orders/{order_uuid}/items/{item_uuid}/notes",
        "/orders/{order_uuid}/notes/{note_uuid}",
    }


def test_health_answers_without_the_service(unreachable_gateway):
    assert httpx.get(unreachable_gateway + "/healthz").json() == {"status": "ok"}
