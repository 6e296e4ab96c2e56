"""Changes through the HTTP dialects emit the same change-feed events, with their surface:
what WooCommerce's customer_note promises ("they will be notified") is note.customer_visible."""

from __future__ import annotations

from notes.v1 import notes_pb2 as pb

from tests.events_helpers import drain

from .conftest import admin_jwt, bearer


def test_woocommerce_customer_note_true_emits_customer_visible(http, consumer, tenant):
    private = http.post(
        "/wp-json/wc/v3/orders/723/notes", auth=consumer, json={"note": "packed"}
    ).json()
    public = http.post(
        "/wp-json/wc/v3/orders/723/notes",
        auth=consumer,
        json={"note": "Your order has shipped", "customer_note": True},
    ).json()
    events, _ = drain(tenant)
    assert [(e.type, e.note.number) for e in events] == [
        ("note.created", private["id"]),
        ("note.created", public["id"]),
        ("note.customer_visible", public["id"]),
    ]
    visible = events[-1]
    assert visible.surface == pb.SURFACE_WOOCOMMERCE
    assert visible.note.body == "Your order has shipped"
    assert visible.note.visibility == pb.VISIBILITY_CUSTOMER
    assert visible.note.subject == pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id="723")
    assert visible.requested_via.api_key_id == tenant.key_id


def test_customer_notes_is_internal_false_emits_customer_visible(http, tenant):
    headers = bearer(admin_jwt(tenant))
    url = "/admin/customers/cus_1/notes"
    internal = http.post(url, headers=headers, json={"body": "called", "is_internal": True})
    public = http.post(url, headers=headers, json={"body": "refund sent", "is_internal": False})
    assert internal.status_code == public.status_code == 201
    note_id = public.json()["note"]["id"]
    events, _ = drain(tenant)
    assert [(e.type, e.note.id) for e in events] == [
        ("note.created", internal.json()["note"]["id"]),
        ("note.created", note_id),
        ("note.customer_visible", note_id),
    ]
    visible = events[-1]
    assert visible.surface == pb.SURFACE_CUSTOMER_NOTES
    assert visible.actor.id == tenant.actor_id and visible.actor.display_name == "Jordan Buyer"
    assert visible.note.metadata is not None and visible.note.body == "refund sent"
