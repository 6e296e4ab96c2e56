"""WooCommerce v3 order notes (seed 002) through the real gateway: every seed request, the
parameters, and the error table."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
from notes.v1 import notes_pb2 as pb

from server.domain.model import SubjectType

from .conftest import bearer, revoked_key

BASE = "https://shop.example.com"  # NOTES_PUBLIC_BASE_URL of the test service
NOTES = "/wp-json/wc/v3/orders/723/notes"
WC_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
NOTE_FIELDS = {
    "id",
    "author",
    "date_created",
    "date_created_gmt",
    "note",
    "customer_note",
    "_links",
}


def add(http, consumer, note: str = "Order ok!!!", order: str = "723", **fields) -> dict:
    response = http.post(
        f"/wp-json/wc/v3/orders/{order}/notes", auth=consumer, json={"note": note, **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()


def assert_note_shape(note: dict, order: str = "723") -> None:
    assert set(note) == NOTE_FIELDS
    assert isinstance(note["id"], int)
    assert isinstance(note["author"], str) and isinstance(note["note"], str)
    assert isinstance(note["customer_note"], bool)
    assert WC_DATE.match(note["date_created"]) and WC_DATE.match(note["date_created_gmt"])
    order_url = f"{BASE}/wp-json/wc/v3/orders/{order}"
    assert note["_links"] == {
        "self": [{"href": f"{order_url}/notes/{note['id']}"}],
        "collection": [{"href": f"{order_url}/notes"}],
        "up": [{"href": order_url}],
    }


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "data"}
    assert body["code"] == code
    assert body["data"]["status"] == status
    return body


# --- seed examples --------------------------------------------------------------------------


def test_seed_create_example_returns_201_the_note_and_a_location(http, consumer):
    response = http.post(
        "/wp-json/wc/v3/orders/723/notes",
        auth=consumer,
        headers={"Content-Type": "application/json"},
        content=b'{\n  "note": "Order ok!!!"\n}',
    )
    assert response.status_code == 201
    note = response.json()
    assert_note_shape(note)
    assert note["author"] == "system"
    assert note["note"] == "Order ok!!!"
    assert note["customer_note"] is False
    assert note["date_created"] == note["date_created_gmt"]  # the test shop runs on UTC
    assert response.headers["location"] == note["_links"]["self"][0]["href"]


def test_seed_retrieve_example_returns_the_note(http, consumer):
    created = add(http, consumer)
    response = http.get(f"{NOTES}/{created['id']}", auth=consumer)
    assert response.status_code == 200
    assert response.json() == created


def test_seed_list_example_returns_a_bare_array_newest_first(http, consumer):
    first = add(http, consumer, "Awaiting BACS payment Order status changed.")
    second = add(http, consumer, "Order status changed from On hold to Completed.")
    third = add(http, consumer, "Order ok!!!")
    response = http.get(NOTES, auth=consumer)
    assert response.status_code == 200
    notes = response.json()
    assert [n["id"] for n in notes] == [third["id"], second["id"], first["id"]]
    for note in notes:
        assert_note_shape(note)


def test_seed_delete_example_with_force_returns_the_note_as_it_was(http, consumer, tenant):
    created = add(http, consumer)
    response = http.delete(f"{NOTES}/{created['id']}?force=true", auth=consumer)
    assert response.status_code == 200
    assert response.json() == created
    error(http.get(f"{NOTES}/{created['id']}", auth=consumer), 404, "woocommerce_rest_invalid_id")
    assert http.get(NOTES, auth=consumer).json() == []


def test_delete_with_force_as_the_seed_python_and_php_clients_send_it_deletes(http, consumer):
    # requests renders params={"force": True} as force=True; PHP's http_build_query renders
    # ['force' => true] as force=1. Literal query strings: httpx would send a bool as "true".
    for force in ("True", "1"):
        created = add(http, consumer)
        response = http.delete(f"{NOTES}/{created['id']}?force={force}", auth=consumer)
        assert response.status_code == 200, (force, response.text)
        assert response.json() == created
        error(
            http.get(f"{NOTES}/{created['id']}", auth=consumer), 404, "woocommerce_rest_invalid_id"
        )
    assert http.get(NOTES, auth=consumer).json() == []


def test_seed_list_parameters_type_and_context_filter_and_are_accepted(http, consumer):
    private = add(http, consumer, "internal")
    public = add(http, consumer, "for the customer", customer_note=True)
    assert public["customer_note"] is True
    ids = lambda query: [n["id"] for n in http.get(NOTES + query, auth=consumer).json()]  # noqa: E731
    assert ids("?type=customer") == [public["id"]]
    assert ids("?type=internal") == [private["id"]]
    assert ids("?type=any&context=edit") == [public["id"], private["id"]]
    assert ids("?context=view") == [public["id"], private["id"]]


# --- behaviour beyond the seed ---------------------------------------------------------------


def test_added_by_user_attributes_the_note_to_the_user(http, consumer, tenant):
    note = add(http, consumer, "by hand", added_by_user=True)
    assert note["author"] == "Jordan Buyer"
    assert "added_by_user" not in note
    stored = tenant.notes.GetNote(pb.GetNoteRequest(number=note["id"]), metadata=tenant.auth).note
    assert stored.created_via == pb.SURFACE_WOOCOMMERCE
    assert stored.source_type == "user"


def test_customer_note_true_is_customer_visibility(http, consumer, tenant):
    note = add(http, consumer, "shown", customer_note=True)
    stored = tenant.notes.GetNote(pb.GetNoteRequest(number=note["id"]), metadata=tenant.auth).note
    assert stored.visibility == pb.VISIBILITY_CUSTOMER


def test_consumer_key_and_secret_query_parameters_authenticate(http, tenant):
    query = f"?consumer_key={tenant.key_id}&consumer_secret={tenant.secret}"
    response = http.post(NOTES + query, json={"note": "via query"})
    assert response.status_code == 201
    assert http.get(NOTES + query).json()[0]["note"] == "via query"


def test_a_form_encoded_body_is_accepted_as_wordpress_does(http, consumer):
    response = http.post(NOTES, auth=consumer, data={"note": "form", "customer_note": "true"})
    assert response.status_code == 201
    assert response.json()["customer_note"] is True


def test_date_created_is_in_the_shop_time_zone_and_links_follow_the_request(
    sao_paulo_gateway, consumer
):
    with httpx.Client(base_url=sao_paulo_gateway, timeout=10) as client:
        response = client.post(NOTES, auth=consumer, json={"note": "tz"})
    note = response.json()
    gmt = datetime.strptime(note["date_created_gmt"], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    local = gmt.astimezone(ZoneInfo("America/Sao_Paulo")).strftime("%Y-%m-%dT%H:%M:%S")
    assert note["date_created"] == local != note["date_created_gmt"]
    assert response.headers["location"] == f"{sao_paulo_gateway}{NOTES}/{note['id']}"


# --- errors ----------------------------------------------------------------------------------


def test_no_credentials_are_401_with_the_routes_own_code(http, consumer):
    note = add(http, consumer)
    cases = [
        (http.get(NOTES), "woocommerce_rest_cannot_view", "Sorry, you cannot list resources."),
        (
            http.get(f"{NOTES}/{note['id']}"),
            "woocommerce_rest_cannot_view",
            "Sorry, you cannot view this resource.",
        ),
        (
            http.post(NOTES, json={"note": "x"}),
            "woocommerce_rest_cannot_create",
            "Sorry, you are not allowed to create resources.",
        ),
        (
            http.delete(f"{NOTES}/{note['id']}?force=true"),
            "woocommerce_rest_cannot_delete",
            "Sorry, you are not allowed to delete this resource.",
        ),
        (
            http.delete(f"{NOTES}/{note['id']}"),
            "woocommerce_rest_cannot_delete",
            "Sorry, you are not allowed to delete this resource.",
        ),
    ]
    for response, code, message in cases:
        assert error(response, 401, code)["message"] == message


def test_a_wrong_secret_is_401_consumer_secret_is_invalid(http, tenant):
    body = error(
        http.get(NOTES, auth=(tenant.key_id, "sk_wrong")),
        401,
        "woocommerce_rest_authentication_error",
    )
    assert body["message"] == "Consumer secret is invalid."
    key_id, secret = revoked_key(tenant)
    error(http.get(NOTES, auth=(key_id, secret)), 401, "woocommerce_rest_authentication_error")


def test_a_known_caller_without_permission_is_403(http, tenant, consumer):
    note = add(http, consumer)
    reader = tenant.key(scopes=["notes:read"])
    response = http.post(NOTES, headers=bearer(reader), json={"note": "x"})
    error(response, 403, "woocommerce_rest_cannot_create")
    response = http.delete(f"{NOTES}/{note['id']}?force=true", headers=bearer(reader))
    error(response, 403, "woocommerce_rest_cannot_delete")
    no_notes = tenant.key(scopes=["subjects:write"])
    error(http.get(NOTES, headers=bearer(no_notes)), 403, "woocommerce_rest_cannot_view")


def test_non_numeric_ids_and_unknown_routes_are_rest_no_route(http, consumer):
    message = "No route was found matching the URL and request method."
    for response in (
        http.get("/wp-json/wc/v3/orders/abc/notes", auth=consumer),
        http.get(f"{NOTES}/abc", auth=consumer),
        http.get("/wp-json/wc/v3/orders/723", auth=consumer),
        http.put(f"{NOTES}/1", auth=consumer, json={"note": "x"}),
        http.delete(NOTES, auth=consumer),
    ):
        assert error(response, 404, "rest_no_route")["message"] == message


def test_a_missing_note_is_rest_missing_callback_param(http, consumer):
    body = error(http.post(NOTES, auth=consumer, json={}), 400, "rest_missing_callback_param")
    assert body["message"] == "Missing parameter(s): note"
    assert body["data"] == {"status": 400, "params": ["note"]}


def test_wrongly_typed_parameters_are_rest_invalid_param(http, consumer):
    for body, param in (
        ({"note": 5}, "note"),
        ({"note": "x", "customer_note": "maybe"}, "customer_note"),
        ({"note": "x", "added_by_user": [1]}, "added_by_user"),
        ({"note": "x" * 65537}, "note"),
        ({"note": ""}, "note"),
    ):
        response = http.post(NOTES, auth=consumer, json=body)
        found = error(response, 400, "rest_invalid_param")
        assert found["message"] == f"Invalid parameter(s): {param}"
        assert list(found["data"]["params"]) == [param]


def test_an_unknown_type_is_rest_invalid_param(http, consumer):
    body = error(http.get(NOTES + "?type=all", auth=consumer), 400, "rest_invalid_param")
    assert body["message"] == "Invalid parameter(s): type"
    error(http.get(NOTES + "?context=full", auth=consumer), 400, "rest_invalid_param")
    error(http.delete(f"{NOTES}/1?force=perhaps", auth=consumer), 400, "rest_invalid_param")


def test_malformed_json_is_rest_invalid_json_and_a_huge_body_is_413(http, consumer):
    headers = {"Content-Type": "application/json"}
    error(http.post(NOTES, auth=consumer, headers=headers, content=b"{"), 400, "rest_invalid_json")
    big = {"note": "x" * (1024 * 1024)}
    assert http.post(NOTES, auth=consumer, json=big).status_code == 413


def test_an_unknown_order_is_404_invalid_order_id(http, consumer):
    error(
        http.get("/wp-json/wc/v3/orders/999/notes", auth=consumer),
        404,
        "woocommerce_rest_shop_order_invalid_id",
    )
    missing = "/wp-json/wc/v3/orders/999/notes"
    for response in (
        http.post(missing, auth=consumer, json={"note": "x"}),
        http.get(missing + "/1", auth=consumer),
        http.delete(missing + "/1?force=true", auth=consumer),
    ):
        assert error(response, 404, "woocommerce_rest_order_invalid_id")["message"] == (
            "Invalid order ID."
        )


def test_an_unknown_note_or_a_note_of_another_order_is_invalid_id(http, consumer, tenant):
    tenant.register(SubjectType.ORDER, "724")
    other = add(http, consumer, "on 724", order="724")
    for response in (
        http.get(f"{NOTES}/{other['id']}", auth=consumer),
        http.get(f"{NOTES}/999999", auth=consumer),
        http.get(f"{NOTES}/0", auth=consumer),
        http.get(f"{NOTES}/99999999999999999999999", auth=consumer),
        http.delete(f"{NOTES}/{other['id']}?force=true", auth=consumer),
    ):
        assert error(response, 404, "woocommerce_rest_invalid_id")["message"] == (
            "Invalid resource ID."
        )
    assert (
        http.get(f"/wp-json/wc/v3/orders/724/notes/{other['id']}", auth=consumer).status_code == 200
    )


def test_delete_without_force_is_501_before_the_order_is_looked_up(http, consumer):
    for url in (f"{NOTES}/1", "/wp-json/wc/v3/orders/999/notes/1", f"{NOTES}/1?force=false"):
        error(http.delete(url, auth=consumer), 501, "woocommerce_rest_trash_not_supported")


def test_notes_of_another_organization_are_invisible(http, consumer, other_tenant):
    note = add(http, consumer)
    theirs = (other_tenant.key_id, other_tenant.secret)
    error(http.get(f"{NOTES}/{note['id']}", auth=theirs), 404, "woocommerce_rest_invalid_id")
    assert http.get(NOTES, auth=theirs).json() == []


def test_an_item_note_is_not_listed_as_an_order_note(http, consumer, tenant):
    tenant.create("item", subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER_ITEM, id="item_1"))
    assert http.get(NOTES, auth=consumer).json() == []
