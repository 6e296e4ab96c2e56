"""Customer notes (seed 000) through the real gateway: every seed example, then the error table."""

from __future__ import annotations

import re
import time

import jwt
from notes.v1 import notes_pb2 as pb

from server.domain.model import SubjectType
from tests.conftest import JWT_SECRET

from .conftest import admin_jwt, basic, bearer

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
NOTE_ID = re.compile(r"^note_[0-9A-Z]{26}$")
NOTE_FIELDS = {
    "id",
    "customer_id",
    "body",
    "is_internal",
    "author_id",
    "metadata",
    "created_at",
    "updated_at",
}
SEED_CREATE = {
    "body": "Customer reported issue with product quality. Offered replacement.",
    "is_internal": True,
    "metadata": {"category": "support", "priority": "medium", "ticket_id": "TKT-12345"},
}


def notes_url(customer_id: str = "cus_1") -> str:
    return f"/admin/customers/{customer_id}/notes"


def create(http, headers, body: str, customer_id: str = "cus_1", **fields) -> dict:
    response = http.post(notes_url(customer_id), headers=headers, json={"body": body, **fields})
    assert response.status_code == 201, response.text
    return response.json()["note"]


def assert_note_shape(note: dict) -> None:
    assert set(note) == NOTE_FIELDS
    assert NOTE_ID.match(note["id"])
    assert isinstance(note["customer_id"], str)
    assert isinstance(note["body"], str)
    assert isinstance(note["is_internal"], bool)
    assert isinstance(note["author_id"], str)
    assert isinstance(note["metadata"], dict)
    assert ISO_MS.match(note["created_at"]) and ISO_MS.match(note["updated_at"])


# --- seed examples --------------------------------------------------------------------------


def test_seed_create_example_returns_201_with_the_note_envelope(http, admin, tenant):
    response = http.post(
        notes_url(),
        headers={**admin, "Content-Type": "application/json"},
        json=SEED_CREATE,
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"note"}
    note = body["note"]
    assert_note_shape(note)
    assert note["customer_id"] == "cus_1"
    assert note["body"] == SEED_CREATE["body"]
    assert note["is_internal"] is True
    assert note["author_id"] == tenant.actor_id
    assert note["metadata"] == SEED_CREATE["metadata"]
    assert note["created_at"] == note["updated_at"]


def test_seed_javascript_usage_without_is_internal_defaults_to_internal(http, admin):
    note = create(
        http,
        admin,
        "Upgraded to premium tier",
        metadata={"tier": "premium", "upgrade_date": "2024-01-15"},
    )
    assert note["is_internal"] is True
    assert note["metadata"] == {"tier": "premium", "upgrade_date": "2024-01-15"}


def test_seed_use_case_examples_keep_metadata_values_and_types(http, admin):
    support = {
        "ticket_id": "TKT-9",
        "category": "billing",
        "resolved": True,
        "resolution_time": 3.5,
    }
    follow_up = {"category": "follow_up", "due_date": "2024-02-01", "completed": False}
    history = {
        "event_type": "tier_upgrade",
        "timestamp": "2024-01-15T10:30:00.000Z",
        "previous_value": "standard",
        "new_value": None,
    }
    for body, metadata in (
        ("Support ticket TKT-9: refund", support),
        ("Call back about the refund", follow_up),
        ("Customer upgraded from standard to premium tier", history),
    ):
        assert create(http, admin, body, metadata=metadata)["metadata"] == metadata


def test_seed_list_example_pages_with_limit_and_offset(http, admin):
    first = create(
        http, admin, "Processed refund for order #1042", metadata={"refund_amount": 5000}
    )
    second = create(http, admin, "Customer requested expedited shipping on next order")
    response = http.get(notes_url() + "?limit=20&offset=0", headers=admin)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"notes", "count", "offset", "limit"}
    assert body["count"] == 2 and body["offset"] == 0 and body["limit"] == 20
    assert [n["id"] for n in body["notes"]] == [second["id"], first["id"]]  # newest first
    for note in body["notes"]:
        assert_note_shape(note)
    assert body["notes"][1]["metadata"] == {"refund_amount": 5000}


def test_seed_search_example_filters_by_content(http, admin):
    create(http, admin, "Processed refund for order #1042")
    create(http, admin, "Customer requested expedited shipping")
    body = http.get(notes_url() + "?q=refund", headers=admin).json()
    assert [n["body"] for n in body["notes"]] == ["Processed refund for order #1042"]
    assert body["count"] == 1


def test_seed_author_filter_example_returns_that_authors_notes(http, admin, tenant):
    other = bearer(admin_jwt(tenant, actor_id="user_2"))
    mine = create(http, admin, "mine")
    create(http, other, "theirs")
    body = http.get(notes_url() + f"?author_id={tenant.actor_id}", headers=admin).json()
    assert [n["id"] for n in body["notes"]] == [mine["id"]]


def test_seed_multiple_authors_example_accepts_the_bracket_form(http, admin, tenant):
    other = bearer(admin_jwt(tenant, actor_id="user_2"))
    third = bearer(admin_jwt(tenant, actor_id="user_3"))
    create(http, admin, "one")
    create(http, other, "two")
    create(http, third, "three")
    body = http.get(
        notes_url() + f"?author_id[]={tenant.actor_id}&author_id[]=user_2", headers=admin
    ).json()
    assert sorted(n["body"] for n in body["notes"]) == ["one", "two"]
    repeated = http.get(
        notes_url(), params=[("author_id", "user_2"), ("author_id", "user_3")], headers=admin
    ).json()
    assert sorted(n["body"] for n in repeated["notes"]) == ["three", "two"]


def test_seed_troubleshooting_example_lists_one_note_and_the_full_count(http, admin):
    for text in ("a", "b", "c"):
        create(http, admin, text)
    body = http.get(notes_url() + "?limit=1&offset=0", headers=admin).json()
    assert [n["body"] for n in body["notes"]] == ["c"]
    assert body["count"] == 3 and body["limit"] == 1


# --- behaviour beyond the seed ---------------------------------------------------------------


def test_list_defaults_to_50_and_caps_the_limit_at_100(http, admin):
    assert http.get(notes_url(), headers=admin).json()["limit"] == 50
    assert http.get(notes_url() + "?limit=500", headers=admin).json()["limit"] == 100


def test_offset_skips_the_newest_notes(http, admin):
    for text in ("a", "b", "c"):
        create(http, admin, text)
    body = http.get(notes_url() + "?limit=1&offset=1", headers=admin).json()
    assert [n["body"] for n in body["notes"]] == ["b"]
    assert body["offset"] == 1 and body["count"] == 3


def test_is_internal_false_makes_the_note_visible_to_the_customer(http, admin, tenant):
    note = create(http, admin, "shown", is_internal=False)
    assert note["is_internal"] is False
    stored = tenant.notes.GetNote(pb.GetNoteRequest(id=note["id"]), metadata=tenant.auth).note
    assert stored.visibility == pb.VISIBILITY_CUSTOMER
    assert stored.created_via == pb.SURFACE_CUSTOMER_NOTES


def test_a_secret_key_sent_as_basic_user_name_is_accepted(http, tenant):
    create(http, basic(tenant.secret), "via basic")


def test_notes_of_another_customer_are_not_listed(http, admin):
    create(http, admin, "for cus_2", customer_id="cus_2")
    assert http.get(notes_url("cus_1"), headers=admin).json()["notes"] == []


# --- errors ----------------------------------------------------------------------------------

UNAUTHORIZED = {"message": "Unauthorized", "type": "not_allowed"}


def test_missing_credentials_are_401_unauthorized(http):
    assert http.get(notes_url()).status_code == 401
    response = http.post(notes_url(), json={"body": "x"})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_an_expired_or_forged_token_is_401(http, tenant):
    now = int(time.time())
    claims = {"actor_id": "user_1", "org": tenant.org, "scopes": ["notes:read"], "exp": now - 5}
    expired = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    forged = jwt.encode(
        {**claims, "exp": now + 60}, "not-the-secret-of-this-service-at-all", algorithm="HS256"
    )
    for token in (expired, forged, "garbage"):
        response = http.get(notes_url(), headers=bearer(token))
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


def test_a_token_without_notes_scopes_is_403(http, tenant):
    response = http.get(notes_url(), headers=bearer(admin_jwt(tenant, ["subjects:write"])))
    assert response.status_code == 403
    assert response.json()["type"] == "not_allowed"


def test_an_unknown_customer_is_404_with_the_seed_message(http, admin):
    for response in (
        http.get(notes_url("cus_missing"), headers=admin),
        http.post(notes_url("cus_missing"), headers=admin, json={"body": "x"}),
    ):
        assert response.status_code == 404
        assert response.json() == {
            "message": "Customer with id: cus_missing was not found",
            "type": "not_found",
        }


def test_a_customer_of_another_organization_is_404(http, admin, other_tenant):
    other_tenant.register(SubjectType.CUSTOMER, "cus_only_other")
    other = bearer(admin_jwt(other_tenant))
    assert (
        http.post(notes_url("cus_only_other"), headers=other, json={"body": "x"}).status_code == 201
    )
    assert http.get(notes_url("cus_only_other"), headers=admin).status_code == 404
    response = http.post(notes_url("cus_only_other"), headers=admin, json={"body": "x"})
    assert response.status_code == 404


def validation(response) -> list[dict]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"message", "errors"} and body["message"] == "Validation failed"
    return body["errors"]


def test_body_length_is_1_to_5000_characters(http, admin):
    assert validation(http.post(notes_url(), headers=admin, json={"body": ""})) == [
        {"field": "body", "message": "body must be between 1 and 5000 characters"}
    ]
    too_long = http.post(notes_url(), headers=admin, json={"body": "x" * 5001})
    assert validation(too_long)[0]["field"] == "body"
    create(http, admin, "x" * 5000)


def test_a_missing_or_non_string_body_is_422(http, admin):
    assert validation(http.post(notes_url(), headers=admin, json={}))[0]["field"] == "body"
    assert validation(http.post(notes_url(), headers=admin, json={"body": 5}))[0]["field"] == "body"


def test_metadata_must_be_an_object(http, admin):
    for bad in ("string", ["array"], 5):
        errors = validation(
            http.post(notes_url(), headers=admin, json={"body": "x", "metadata": bad})
        )
        assert errors == [{"field": "metadata", "message": "metadata must be an object"}]


def test_is_internal_must_be_a_boolean(http, admin):
    errors = validation(
        http.post(notes_url(), headers=admin, json={"body": "x", "is_internal": "no"})
    )
    assert errors[0]["field"] == "is_internal"


def test_unknown_body_fields_are_refused_including_author_id(http, admin):
    errors = validation(
        http.post(notes_url(), headers=admin, json={"body": "x", "author_id": "user_9"})
    )
    assert errors == [{"field": "author_id", "message": "author_id is not allowed"}]


def test_metadata_over_the_service_limit_is_422_on_metadata(http, admin):
    errors = validation(
        http.post(notes_url(), headers=admin, json={"body": "x", "metadata": {"k": "v" * 70000}})
    )
    assert [e["field"] for e in errors] == ["metadata"]


def test_malformed_json_is_400_invalid_data(http, admin):
    response = http.post(
        notes_url(), headers={**admin, "Content-Type": "application/json"}, content=b"{nope"
    )
    assert response.status_code == 400
    assert response.json()["type"] == "invalid_data"
    assert set(response.json()) == {"message", "type"}


def test_a_json_array_body_is_400_invalid_data(http, admin):
    response = http.post(notes_url(), headers=admin, json=["body"])
    assert response.status_code == 400
    assert response.json()["type"] == "invalid_data"


def test_a_body_over_one_mebibyte_is_413(http, admin):
    response = http.post(notes_url(), headers=admin, json={"body": "x" * (1024 * 1024)})
    assert response.status_code == 413
    assert set(response.json()) == {"message", "type"}


def test_bad_paging_parameters_are_400_invalid_data(http, admin):
    for query in ("limit=ten", "offset=-1", "offset=1e3"):
        response = http.get(notes_url() + "?" + query, headers=admin)
        assert response.status_code == 400, query
        assert response.json()["type"] == "invalid_data"


def test_unknown_admin_routes_and_methods_are_medusa_shaped(http, admin):
    response = http.get("/admin/customers/cus_1/nothing", headers=admin)
    assert response.status_code == 404
    assert set(response.json()) == {"message", "type"}
    response = http.delete(notes_url(), headers=admin)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.json()["type"] == "not_allowed"
