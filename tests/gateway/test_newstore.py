"""NewStore order notes (seed 003) through the real gateway: every seed operation, UUID ids,
Go timestamps, and the error table."""

from __future__ import annotations

import re
import uuid

import pytest
import ulid
from notes.v1 import notes_pb2 as pb

from server.domain.model import SubjectType

from .conftest import bearer, expired_key

ORDER = "0dce51af-fcda-4f6b-aca1-2c8ee5e695b3"
ITEM = "643af430-5ab0-4cf7-96ac-278ac6a92cb0"
GO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d*[1-9])? \+0000 UTC$")
SEED_NOTE = {
    "text": "Customer wants to cancel this order.",
    "source": "Author 117",
    "source_type": "user",
    "tags": ["associate note", "cancellation"],
}
ORDER_FIELDS = {"id", "order_id", "text", "source", "tags", "created_at", "updated_at"}


@pytest.fixture
def order(tenant) -> str:
    tenant.register(SubjectType.ORDER, ORDER)
    tenant.register(SubjectType.ORDER_ITEM, ITEM, ORDER)
    return ORDER


def add(http, tenant, path: str = f"/orders/{ORDER}/notes", **fields) -> dict:
    response = http.post(path, headers=bearer(tenant.secret), json={**SEED_NOTE, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"message"}
    return response.json()["message"]


def grpc_note(tenant, note_uuid: str) -> pb.Note:
    note_id = "note_" + str(ulid.ULID.from_uuid(uuid.UUID(note_uuid)))
    return tenant.notes.GetNote(pb.GetNoteRequest(id=note_id), metadata=tenant.auth).note


# --- seed examples --------------------------------------------------------------------------


def test_seed_create_order_note_returns_200_and_the_documented_fields(http, tenant, order):
    response = http.post(
        f"/orders/{order}/notes",
        headers={**bearer(tenant.secret), "Content-Type": "application/json"},
        json=SEED_NOTE,
    )
    assert response.status_code == 200
    note = response.json()
    assert set(note) == ORDER_FIELDS
    assert uuid.UUID(note["id"]) and len(note["id"]) == 36
    assert note["order_id"] == order
    assert note["text"] == SEED_NOTE["text"] and note["source"] == "Author 117"
    assert note["tags"] == ["associate note", "cancellation"]
    assert GO_TIME.match(note["created_at"]) and note["created_at"] == note["updated_at"]
    stored = grpc_note(tenant, note["id"])
    assert stored.created_via == pb.SURFACE_NEWSTORE and stored.source_type == "user"


def test_seed_create_item_note_carries_the_item_id(http, tenant, order):
    note = add(http, tenant, f"/orders/{order}/items/{ITEM}/notes")
    assert set(note) == ORDER_FIELDS | {"item_id"}
    assert note["order_id"] == order and note["item_id"] == ITEM
    assert grpc_note(tenant, note["id"]).subject.type == pb.SUBJECT_TYPE_ORDER_ITEM


def test_seed_get_notes_lists_order_and_item_notes_newest_first(http, tenant, order):
    first = add(http, tenant, text="order note")
    second = add(http, tenant, f"/orders/{order}/items/{ITEM}/notes", text="item note")
    response = http.get(f"/orders/{order}/notes", headers=bearer(tenant.secret))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"notes"}
    assert body["notes"] == [second, first]
    assert "item_id" in body["notes"][0] and "item_id" not in body["notes"][1]


def test_seed_update_note_replaces_text_source_and_tags(http, tenant, order):
    note = add(http, tenant)
    response = http.put(
        f"/orders/{order}/notes/{note['id']}",
        headers=bearer(tenant.secret),
        json={"text": "Cancellation withdrawn.", "source": "Author 118", "tags": ["resolved"]},
    )
    assert response.status_code == 200
    updated = response.json()
    assert set(updated) == ORDER_FIELDS
    assert updated["id"] == note["id"] and updated["created_at"] == note["created_at"]
    assert (updated["text"], updated["source"], updated["tags"]) == (
        "Cancellation withdrawn.",
        "Author 118",
        ["resolved"],
    )
    assert grpc_note(tenant, note["id"]).source_type == ""  # replaced: it was not sent


def test_seed_delete_note_is_204_without_a_body(http, tenant, order):
    note = add(http, tenant)
    response = http.delete(f"/orders/{order}/notes/{note['id']}", headers=bearer(tenant.secret))
    assert response.status_code == 204
    assert response.content == b""
    assert http.get(f"/orders/{order}/notes", headers=bearer(tenant.secret)).json() == {"notes": []}


def test_seed_error_sample_invalid_note_id_in_request_url(http, tenant, order):
    response = http.delete(f"/orders/{order}/notes/not-a-uuid", headers=bearer(tenant.secret))
    assert error(response, 400) == "Invalid note ID in request url."


# --- behaviour beyond the seed ---------------------------------------------------------------


def test_timestamps_are_go_time_strings_of_the_stored_instant(http, tenant, order):
    note = add(http, tenant)
    stored = grpc_note(tenant, note["id"])
    when = stored.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
    fraction = f"{stored.create_time.nanos:09d}".rstrip("0")
    expected = f"{when}.{fraction} +0000 UTC" if fraction else f"{when} +0000 UTC"
    assert note["created_at"] == expected


def test_a_listed_note_shows_each_update_though_renderings_are_remembered(http, tenant, order):
    # The gateway remembers renderings under the note's own bytes: an update, even one back to
    # the first text, is a new rendering.
    note = add(http, tenant)
    listed = f"/orders/{order}/notes"
    assert http.get(listed, headers=bearer(tenant.secret)).json()["notes"] == [note]
    for text in ("Cancellation withdrawn.", SEED_NOTE["text"]):
        response = http.put(
            f"/orders/{order}/notes/{note['id']}",
            headers=bearer(tenant.secret),
            json={**SEED_NOTE, "text": text},
        )
        assert response.status_code == 200, response.text
        notes = http.get(listed, headers=bearer(tenant.secret)).json()["notes"]
        assert notes == [response.json()] and notes[0]["text"] == text


def test_an_item_note_can_be_updated_and_deleted_through_its_order(http, tenant, order):
    note = add(http, tenant, f"/orders/{order}/items/{ITEM}/notes")
    url = f"/orders/{order}/notes/{note['id']}"
    response = http.put(url, headers=bearer(tenant.secret), json={**SEED_NOTE, "text": "v2"})
    assert response.json()["item_id"] == ITEM and response.json()["text"] == "v2"
    assert http.delete(url, headers=bearer(tenant.secret)).status_code == 204


def test_order_ids_pass_through_as_subject_ids(http, tenant):
    note = add(http, tenant, "/orders/723/notes")
    assert note["order_id"] == "723"


# --- errors ----------------------------------------------------------------------------------


def test_missing_credentials_are_401_and_rejected_ones_403(http, tenant, order):
    url = f"/orders/{order}/notes"
    error(http.get(url), 401)
    error(http.post(url, json=SEED_NOTE), 401)
    error(http.get(url, headers=bearer("sk_wrong")), 403)
    error(http.get(url, headers=bearer(expired_key(tenant))), 403)
    error(http.post(url, headers=bearer(tenant.key(scopes=["notes:read"])), json=SEED_NOTE), 403)


def test_bad_input_without_credentials_is_still_401(http, order):
    error(http.post(f"/orders/{order}/notes", json={"text": ""}), 401)
    error(http.delete(f"/orders/{order}/notes/not-a-uuid"), 401)


@pytest.mark.parametrize(
    "change",
    [
        {"text": ""},
        {"text": "x" * 4001},
        {"text": None},
        {"text": 5},
        {"source": ""},
        {"source": "s" * 257},
        {"source": None},
        {"source_type": ""},
        {"source_type": "t" * 257},
        {"tags": None},
        {"tags": "cancellation"},
        {"tags": [""]},
        {"tags": ["t" * 129]},
        {"tags": [5]},
    ],
    ids=lambda change: "-".join(f"{k}={str(v)[:8]}" for k, v in change.items()),
)
def test_each_field_limit_is_400(http, tenant, order, change):
    body = {k: v for k, v in {**SEED_NOTE, **change}.items() if v is not None}
    field = next(iter(change))
    for url, send in (
        (f"/orders/{order}/notes", http.post),
        (f"/orders/{order}/items/{ITEM}/notes", http.post),
    ):
        assert field in error(send(url, headers=bearer(tenant.secret), json=body), 400)
    note = add(http, tenant)
    response = http.put(
        f"/orders/{order}/notes/{note['id']}", headers=bearer(tenant.secret), json=body
    )
    assert field in error(response, 400)


def test_limits_at_their_maximum_are_accepted(http, tenant, order):
    add(http, tenant, text="x" * 4000, source="s" * 256, source_type="t" * 256, tags=["g" * 128])


def test_malformed_json_a_non_object_and_a_huge_body_are_refused(http, tenant, order):
    url = f"/orders/{order}/notes"
    headers = {**bearer(tenant.secret), "Content-Type": "application/json"}
    error(http.post(url, headers=headers, content=b'{"text": "x",'), 400)
    error(http.post(url, headers=headers, content=b'"text"'), 400)
    error(http.post(url, headers=headers, json={**SEED_NOTE, "text": "x" * (1024 * 1024)}), 413)


def test_an_unknown_order_or_item_is_404(http, tenant, order):
    missing = "8a8c0f59-3f51-4b5e-9d55-0a1e9d7f6a11"
    assert error(http.get(f"/orders/{missing}/notes", headers=bearer(tenant.secret)), 404) == (
        "Order not found."
    )
    response = http.post(f"/orders/{missing}/notes", headers=bearer(tenant.secret), json=SEED_NOTE)
    assert error(response, 404) == "Order not found."
    response = http.post(
        f"/orders/{order}/items/{missing}/notes", headers=bearer(tenant.secret), json=SEED_NOTE
    )
    assert error(response, 404) == "Item not found."


def test_an_item_of_another_order_is_404(http, tenant, order):
    tenant.register(SubjectType.ORDER, "other-order")
    response = http.post(
        f"/orders/other-order/items/{ITEM}/notes", headers=bearer(tenant.secret), json=SEED_NOTE
    )
    assert error(response, 404) == "Item not found."


def test_an_unknown_note_or_a_note_of_another_order_is_404(http, tenant, order):
    note = add(http, tenant)
    add(http, tenant, "/orders/723/notes")
    unknown = str(uuid.uuid4())
    for url in (f"/orders/{order}/notes/{unknown}", f"/orders/723/notes/{note['id']}"):
        assert error(http.delete(url, headers=bearer(tenant.secret)), 404) == "Note not found."
        response = http.put(url, headers=bearer(tenant.secret), json=SEED_NOTE)
        assert error(response, 404) == "Note not found."


def test_a_deleted_note_is_404(http, tenant, order):
    note = add(http, tenant)
    url = f"/orders/{order}/notes/{note['id']}"
    assert http.delete(url, headers=bearer(tenant.secret)).status_code == 204
    error(http.delete(url, headers=bearer(tenant.secret)), 404)


def test_another_organizations_order_is_404(http, tenant, other_tenant, order):
    add(http, tenant)
    error(http.get(f"/orders/{order}/notes", headers=bearer(other_tenant.secret)), 404)


def test_unknown_routes_and_methods_are_newstore_shaped(http, tenant, order):
    error(http.get(f"/orders/{order}", headers=bearer(tenant.secret)), 404)
    response = http.patch(f"/orders/{order}/notes", headers=bearer(tenant.secret), json={})
    error(response, 405)
    assert response.headers["allow"] == "GET, HEAD, POST"
