"""Issue 9 through the real gateway: inputs that once reached a 5xx are each the owning
dialect's 4xx, no traceback is logged, and only the gateway can name a surface."""

from __future__ import annotations

import grpc
import pytest
from notes.v1 import notes_pb2 as pb

from server.domain.model import SubjectType

from .conftest import admin_jwt, basic, bearer
from .test_shelfcycle import SEED_BODY, error, patch, post, read

ORDER = "0dce51af-fcda-4f6b-aca1-2c8ee5e695b3"


def no_traceback(service, since: int) -> None:
    logged = "".join(service.log[since:])
    assert "Traceback" not in logged and "unexpected" not in logged, logged[-2000:]


# --- the surface is the gateway's to name -----------------------------------------------------


def test_a_direct_grpc_caller_cannot_name_a_surface(http, tenant):
    forged = (*tenant.auth, ("x-notes-surface", "shelfcycle"))
    note = tenant.notes.CreateNote(
        pb.CreateNoteRequest(note=pb.Note(subject=SEED_SUBJECT, body="forged")), metadata=forged
    ).note
    assert note.created_via == pb.SURFACE_GRPC
    signed_badly = (*forged, ("x-notes-surface-sig", "0" * 64))
    note2 = tenant.notes.CreateNote(
        pb.CreateNoteRequest(note=pb.Note(subject=SEED_SUBJECT, body="forged")),
        metadata=signed_badly,
    ).note
    assert note2.created_via == pb.SURFACE_GRPC
    events = tenant.notes.GetNoteHistory(
        pb.GetNoteHistoryRequest(id=note.id), metadata=tenant.auth
    ).events
    assert [e.surface for e in events] == [pb.SURFACE_GRPC]
    # ...so ShelfCycle, which lets only its own notes be patched, refuses it.
    current = read(http, tenant, note.id)
    assert current["createdVia"]["type"] != "public_api"
    error(
        patch(http, tenant, note.id, {"title": "x"}, current["updatedAt"]), 409, "not_api_created"
    )


def test_the_gateway_still_names_its_surface(http, tenant):
    response = post(http, tenant)
    assert response.status_code == 201, response.text
    note_id = response.json()["data"]["id"]
    note = tenant.notes.GetNote(pb.GetNoteRequest(id=note_id), metadata=tenant.auth).note
    assert note.created_via == pb.SURFACE_SHELFCYCLE


SEED_SUBJECT = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")


# --- hundreds of violations -------------------------------------------------------------------

MANY = 300


def test_hundreds_of_bad_tags_or_links_are_invalid_argument_over_grpc(service, tenant):
    bad_tags = pb.Note(subject=SEED_SUBJECT, body="x", tags=["\x00" * 2] * MANY)
    long_links = pb.Note(
        subject=SEED_SUBJECT,
        body="x",
        linked_records=[
            pb.SubjectRef(type=pb.SUBJECT_TYPE_PRODUCT, id=f"{i}" + "p" * 200) for i in range(MANY)
        ],
    )
    for note in (bad_tags, long_links):
        with pytest.raises(grpc.RpcError) as caught:
            tenant.notes.CreateNote(pb.CreateNoteRequest(note=note), metadata=tenant.auth)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # first 50, then one that counts the rest
        from tests.conftest import bad_fields

        assert len(bad_fields(caught.value)) <= 52


def test_hundreds_of_bad_tags_are_a_newstore_400(http, tenant, service):
    tenant.register(SubjectType.ORDER, ORDER)
    since = len(service.log)
    body = {"text": "x", "source": "a", "source_type": "user", "tags": ["t" * 200] * MANY}
    response = http.post(f"/orders/{ORDER}/notes", headers=bearer(tenant.secret), json=body)
    assert response.status_code == 400, response.text
    assert "more violations" in response.json()["message"]
    no_traceback(service, since)


def test_hundreds_of_long_linked_record_ids_are_a_shelfcycle_400(http, tenant, service):
    since = len(service.log)
    links = [{"type": "product", "id": f"{i}" + "p" * 200} for i in range(MANY)]
    response = post(http, tenant, body={**SEED_BODY, "linkedRecords": links})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "validation_error"
    no_traceback(service, since)


# --- WooCommerce ids past int64 ---------------------------------------------------------------


@pytest.mark.parametrize("digits", [20, 4301, 5000])
def test_woocommerce_ids_past_int64_are_invalid_id(http, tenant, consumer, service, digits):
    tenant.register(SubjectType.ORDER, "723")
    since = len(service.log)
    huge = "9" * digits
    auth = basic(*consumer)
    note = http.get(f"/wp-json/wc/v3/orders/723/notes/{huge}", headers=auth)
    assert note.status_code == 404, note.text
    assert note.json()["code"] == "woocommerce_rest_invalid_id"
    for method in ("GET", "POST"):
        orders = http.request(
            method, f"/wp-json/wc/v3/orders/{huge}/notes", headers=auth, json={"note": "x"}
        )
        assert orders.status_code == 404, orders.text
        assert orders.json()["code"].endswith("order_invalid_id")
    deleted = http.delete(f"/wp-json/wc/v3/orders/{huge}/notes/{huge}?force=true", headers=auth)
    assert deleted.status_code == 404, deleted.text
    # without credentials, as for any other id: 401 first
    anonymous = http.get(f"/wp-json/wc/v3/orders/{huge}/notes")
    assert anonymous.status_code == 401, anonymous.text
    no_traceback(service, since)


# --- NUL in credentials -----------------------------------------------------------------------


def test_a_nul_in_a_key_id_or_consumer_key_is_401(http, tenant, service):
    tenant.register(SubjectType.ORDER, "723")
    since = len(service.log)
    by_header = http.get("/wp-json/wc/v3/orders/723/notes", headers=basic("key_\x00x", "sk_x"))
    assert by_header.status_code == 401, by_header.text
    by_query = http.get(
        "/wp-json/wc/v3/orders/723/notes",
        params={"consumer_key": "ck_\x00", "consumer_secret": tenant.secret},
    )
    assert by_query.status_code == 401, by_query.text
    customer = http.get("/admin/customers/cus_1/notes", headers=basic("\x00:x"))
    assert customer.status_code == 401, customer.text
    no_traceback(service, since)


def test_a_nul_in_a_jwt_claim_is_401(http, tenant, service):
    import time

    import jwt

    from tests.conftest import JWT_SECRET

    since = len(service.log)
    for actor, name in (("user_\x00", "x"), ("user_1", "Jordan\x00")):
        claims = {"org": tenant.org, "actor_id": actor, "name": name, "scopes": ["notes:write"]}
        token = jwt.encode({**claims, "exp": int(time.time()) + 600}, JWT_SECRET, "HS256")
        response = http.post(
            "/admin/customers/cus_1/notes", headers=bearer(token), json={"body": "x"}
        )
        assert response.status_code == 401, response.text
    no_traceback(service, since)


# --- customer notes offsets past int32 --------------------------------------------------------


def test_customer_notes_offset_past_int32_is_an_empty_page_with_the_count(http, tenant, service):
    admin = bearer(admin_jwt(tenant))
    for _ in range(2):
        made = http.post("/admin/customers/cus_1/notes", headers=admin, json={"body": "x"})
        assert made.status_code == 201
    since = len(service.log)
    for offset in (2**31, 2**63, 10**30):
        response = http.get(f"/admin/customers/cus_1/notes?offset={offset}", headers=admin)
        assert response.status_code == 200, response.text
        assert response.json()["notes"] == []
        assert response.json()["count"] == 2
    no_traceback(service, since)
