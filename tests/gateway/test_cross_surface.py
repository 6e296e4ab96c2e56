"""A note written through one surface is read through the others where its subject fits."""

from __future__ import annotations

from notes.v1 import notes_pb2 as pb

from .conftest import admin_jwt, bearer

ORDER_723 = pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id="723")


def test_a_woocommerce_note_on_order_723_is_in_grpc_and_newstore_lists(http, tenant, consumer):
    woo = http.post("/wp-json/wc/v3/orders/723/notes", auth=consumer, json={"note": "Order ok!!!"})
    assert woo.status_code == 201
    listed = tenant.notes.ListNotes(pb.ListNotesRequest(subject=ORDER_723), metadata=tenant.auth)
    assert [(n.number, n.body, n.created_via) for n in listed.notes] == [
        (woo.json()["id"], "Order ok!!!", pb.SURFACE_WOOCOMMERCE)
    ]
    newstore = http.get("/orders/723/notes", headers=bearer(tenant.secret)).json()["notes"]
    assert [(n["text"], n["order_id"]) for n in newstore] == [("Order ok!!!", "723")]
    assert newstore[0]["id"] != str(woo.json()["id"])


def test_a_newstore_order_note_is_a_woocommerce_order_note_and_item_notes_are_not(
    http, tenant, consumer
):
    headers = bearer(tenant.secret)
    body = {"text": "from newstore", "source": "Author 117", "tags": []}
    assert http.post("/orders/723/notes", headers=headers, json=body).status_code == 200
    item = {**body, "text": "item"}
    assert (
        http.post("/orders/723/items/item_1/notes", headers=headers, json=item).status_code == 200
    )
    woo = http.get("/wp-json/wc/v3/orders/723/notes", auth=consumer).json()
    assert [(n["note"], n["author"]) for n in woo] == [("from newstore", "Author 117")]
    assert [n["text"] for n in http.get("/orders/723/notes", headers=headers).json()["notes"]] == [
        "item",
        "from newstore",
    ]


def test_customer_notes_and_shelfcycle_share_customer_notes(http, tenant):
    admin = bearer(admin_jwt(tenant))
    medusa = http.post("/admin/customers/cus_1/notes", headers=admin, json={"body": "medusa"})
    shelf = http.post(
        "/api/v1/notes",
        headers={**bearer(tenant.secret), "Idempotency-Key": "x"},
        json={"primarySubject": {"type": "customer", "id": "cus_1"}, "body": "shelfcycle"},
    )
    assert shelf.status_code == 201
    listed = http.get("/admin/customers/cus_1/notes", headers=admin).json()
    assert [n["body"] for n in listed["notes"]] == ["shelfcycle", "medusa"]
    read = http.get(f"/api/v1/notes/{medusa.json()['note']['id']}", headers=bearer(tenant.secret))
    assert read.json()["data"]["body"] == "medusa"
