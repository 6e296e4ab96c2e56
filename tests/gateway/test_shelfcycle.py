"""ShelfCycle notes (seed 001) through the real gateway: the seed's requests, idempotency,
If-Match, and the error table."""

from __future__ import annotations

import re
import threading

from google.protobuf import field_mask_pb2
from notes.v1 import notes_pb2 as pb

from .conftest import admin_jwt, bearer, expired_key, revoked_key

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SEED_BODY = {
    "primarySubject": {"type": "customer", "id": "cus_1"},
    "linkedRecords": [
        {"type": "contact", "id": "con_1"},
        {"type": "product", "id": "prod_1"},
        {"type": "supplier", "id": "sup_1"},
    ],
    "noteType": "EMAIL",
    "title": "Inbound product approval thread",
    "body": "Jordan approved adding the new contact and asked for follow-up on acetone "
    "availability.",
    "happenedAt": "2026-05-28T16:00:00.000Z",
}
SEED_KEY = "gmail-thread-123:customer-id:create-note"
CREATED_FIELDS = {
    "id",
    "type",
    "url",
    "createdAt",
    "updatedAt",
    "createdBy",
    "createdVia",
    "requestedVia",
    "idempotencyStatus",
}


def post(http, tenant, body=None, key=SEED_KEY, secret=None):
    headers = {**bearer(secret or tenant.secret), "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return http.post("/api/v1/notes", headers=headers, json=SEED_BODY if body is None else body)


def created(http, tenant, **kwargs) -> dict:
    response = post(http, tenant, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def read(http, tenant, note_id: str) -> dict:
    response = http.get(f"/api/v1/notes/{note_id}", headers=bearer(tenant.secret))
    assert response.status_code == 200, response.text
    return response.json()["data"]


def patch(http, tenant, note_id: str, body: dict, if_match: str | None):
    headers = bearer(tenant.secret)
    if if_match is not None:
        headers["If-Match"] = if_match
    return http.patch(f"/api/v1/notes/{note_id}", headers=headers, json=body)


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert err["code"] == code
    assert (
        {"type", "code", "message", "requestId"}
        <= set(err)
        <= {
            "type",
            "code",
            "message",
            "param",
            "requestId",
        }
    )
    return err


def stored(tenant, note_id: str) -> pb.Note:
    return tenant.notes.GetNote(pb.GetNoteRequest(id=note_id), metadata=tenant.auth).note


# --- seed examples --------------------------------------------------------------------------


def test_seed_create_example_returns_the_documented_fields(http, tenant):
    response = post(http, tenant)
    assert response.status_code == 201
    data = response.json()["data"]
    assert set(response.json()) == {"data"}
    assert set(data) == CREATED_FIELDS
    assert data["type"] == "note"
    assert re.fullmatch(r"note_[0-9A-Z]{26}", data["id"])
    assert data["url"] == f"https://app.example.com/{tenant.org}/notes/{data['id']}"
    assert ISO_MS.match(data["createdAt"]) and data["createdAt"] == data["updatedAt"]
    assert data["createdBy"] == {"type": "user", "id": "user_1", "displayName": "Jordan Buyer"}
    assert data["createdVia"] == {"type": "public_api", "actorUserId": "user_1"}
    assert data["requestedVia"] == {"type": "api_key", "id": tenant.key_id, "purpose": "tests"}
    assert data["idempotencyStatus"] == "created"
    note = stored(tenant, data["id"])
    assert note.created_via == pb.SURFACE_SHELFCYCLE
    assert note.note_type == pb.NOTE_TYPE_EMAIL
    assert [(r.type, r.id) for r in note.linked_records] == [
        (pb.SUBJECT_TYPE_CONTACT, "con_1"),
        (pb.SUBJECT_TYPE_PRODUCT, "prod_1"),
        (pb.SUBJECT_TYPE_SUPPLIER, "sup_1"),
    ]


def test_seed_replay_returns_the_existing_note_as_replayed_and_changes_nothing(http, tenant):
    first = created(http, tenant)
    response = post(http, tenant)
    assert response.status_code == 200
    replay = response.json()["data"]
    assert replay["idempotencyStatus"] == "replayed"
    assert set(replay) == CREATED_FIELDS
    assert replay["id"] == first["id"] and replay["updatedAt"] == first["updatedAt"]
    assert stored(tenant, first["id"]).version == 1


def test_seed_read_example_returns_the_note_with_its_latest_updated_at(http, tenant):
    note = created(http, tenant)
    data = read(http, tenant, note["id"])
    assert data["updatedAt"] == note["updatedAt"]
    assert data["primarySubject"] == {"type": "customer", "id": "cus_1"}
    assert data["noteType"] == "EMAIL"
    assert data["title"] == SEED_BODY["title"] and data["body"] == SEED_BODY["body"]
    assert data["happenedAt"] == "2026-05-28T16:00:00.000Z"
    assert "idempotencyStatus" not in data


def test_seed_sparse_patch_example_updates_the_named_fields(http, tenant):
    note = created(http, tenant)
    response = patch(
        http,
        tenant,
        note["id"],
        {
            "title": "Updated title",
            "body": "Updated approved note body.",
            "happenedAt": "2026-05-28T18:00:00.000Z",
            "noteType": "PHONE_MEETING",
            "linkedRecords": [
                {"type": "customer", "id": "cus_1"},
                {"type": "contact", "id": "con_1"},
            ],
        },
        note["updatedAt"],
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["title"] == "Updated title" and data["body"] == "Updated approved note body."
    assert data["noteType"] == "PHONE_MEETING"
    assert data["happenedAt"] == "2026-05-28T18:00:00.000Z"
    assert data["linkedRecords"] == [{"type": "contact", "id": "con_1"}]  # the subject dropped
    assert data["primarySubject"] == {"type": "customer", "id": "cus_1"}
    assert data["updatedAt"] != note["updatedAt"]
    assert stored(tenant, note["id"]).version == 2


def test_a_patch_with_only_a_title_leaves_the_other_fields(http, tenant):
    note = created(http, tenant)
    response = patch(http, tenant, note["id"], {"title": "Just this"}, note["updatedAt"])
    data = response.json()["data"]
    assert data["title"] == "Just this" and data["body"] == SEED_BODY["body"]
    assert len(data["linkedRecords"]) == 3


# --- idempotency ------------------------------------------------------------------------------


def test_the_same_key_with_another_body_is_409_idempotency_key_reused(http, tenant):
    created(http, tenant)
    err = error(
        post(http, tenant, body={**SEED_BODY, "title": "other"}), 409, "idempotency_key_reused"
    )
    assert err["type"] == "conflict_error"
    assert err["message"] == "The Idempotency-Key was reused with a different request body."


def test_another_key_creates_another_note(http, tenant):
    assert created(http, tenant)["id"] != created(http, tenant, key="another-key")["id"]


def test_idempotency_keys_are_scoped_per_organization(http, tenant, other_tenant):
    mine = created(http, tenant)
    theirs = created(http, other_tenant, secret=other_tenant.secret)
    assert theirs["id"] != mine["id"] and theirs["idempotencyStatus"] == "created"


def test_a_missing_idempotency_key_is_400_idempotency_key_required(http, tenant):
    error(post(http, tenant, key=None), 400, "idempotency_key_required")


# --- If-Match ---------------------------------------------------------------------------------


def test_an_old_if_match_is_412_stale_record(http, tenant):
    note = created(http, tenant)
    assert patch(http, tenant, note["id"], {"title": "one"}, note["updatedAt"]).status_code == 200
    error(patch(http, tenant, note["id"], {"title": "two"}, note["updatedAt"]), 412, "stale_record")


def test_a_missing_if_match_is_428(http, tenant):
    note = created(http, tenant)
    error(patch(http, tenant, note["id"], {"title": "x"}, None), 428, "if_match_required")


def test_concurrent_patches_with_one_if_match_let_exactly_one_win(http, tenant):
    """Each PATCH compares If-Match and then writes under the version it read, so a change
    landing between another PATCH's read and write is caught as stale too."""
    note = created(http, tenant)
    statuses: list[int] = []

    def attempt(i: int) -> None:
        statuses.append(
            patch(http, tenant, note["id"], {"title": f"t{i}"}, note["updatedAt"]).status_code
        )

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [412] * 7
    assert stored(tenant, note["id"]).version == 2


def test_a_version_change_between_read_and_write_is_stale(http, tenant):
    """A gRPC update lands after the client's read: its If-Match no longer matches."""
    note = created(http, tenant)
    tenant.notes.UpdateNote(
        pb.UpdateNoteRequest(
            note=pb.Note(id=note["id"], title="by grpc"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=tenant.auth,
    )
    error(
        patch(http, tenant, note["id"], {"title": "late"}, note["updatedAt"]), 412, "stale_record"
    )


def test_patching_a_note_not_created_through_the_public_api_is_not_api_created(http, tenant):
    response = http.post(
        "/admin/customers/cus_1/notes", headers=bearer(admin_jwt(tenant)), json={"body": "x"}
    )
    note = read(http, tenant, response.json()["note"]["id"])
    assert note["createdVia"]["type"] != "public_api"
    err = error(
        patch(http, tenant, note["id"], {"title": "x"}, note["updatedAt"]), 409, "not_api_created"
    )
    assert err["type"] == "conflict_error"


def test_patch_cannot_change_the_primary_subject(http, tenant):
    note = created(http, tenant)
    body = {"primarySubject": {"type": "customer", "id": "cus_2"}}
    err = error(patch(http, tenant, note["id"], body, note["updatedAt"]), 400, "validation_failed")
    assert err["param"] == "primarySubject"


# --- subjects and links -----------------------------------------------------------------------


def test_an_order_as_subject_or_link_is_unsupported_linked_record(http, tenant):
    order = {**SEED_BODY, "primarySubject": {"type": "order", "id": "723"}}
    err = error(post(http, tenant, body=order, key="k1"), 400, "unsupported_linked_record")
    assert err["param"] == "primarySubject.type"
    link = {
        **SEED_BODY,
        "linkedRecords": [{"type": "contact", "id": "con_1"}, {"type": "order", "id": "723"}],
    }
    err = error(post(http, tenant, body=link, key="k2"), 400, "unsupported_linked_record")
    assert err["param"] == "linkedRecords[1].type"


def test_an_unknown_subject_or_link_is_404_not_found_with_its_param(http, tenant):
    body = {**SEED_BODY, "primarySubject": {"type": "customer", "id": "cus_missing"}}
    assert (
        error(post(http, tenant, body=body, key="k1"), 404, "not_found")["param"]
        == "primarySubject"
    )
    body = {**SEED_BODY, "linkedRecords": [{"type": "contact", "id": "con_missing"}]}
    assert (
        error(post(http, tenant, body=body, key="k2"), 404, "not_found")["param"]
        == "linkedRecords[0]"
    )


def test_an_archived_subject_is_archived_record(http, tenant):
    tenant.subjects.ArchiveSubject(
        pb.ArchiveSubjectRequest(type=pb.SUBJECT_TYPE_SUPPLIER, id="sup_1"), metadata=tenant.auth
    )
    body = {**SEED_BODY, "primarySubject": {"type": "supplier", "id": "sup_1"}}
    error(post(http, tenant, body=body, key="k1"), 409, "archived_record")


# --- credentials and validation --------------------------------------------------------------


def test_missing_or_invalid_keys_are_401_invalid_api_key(http, tenant):
    assert (
        error(http.get("/api/v1/notes/note_x"), 401, "invalid_api_key")["type"]
        == "authentication_error"
    )
    error(http.get("/api/v1/notes/note_x", headers=bearer("sk_nope")), 401, "invalid_api_key")
    error(post(http, tenant, secret="sk_nope"), 401, "invalid_api_key")


def test_revoked_and_expired_keys_have_their_own_codes(http, tenant):
    _, revoked = revoked_key(tenant)
    error(post(http, tenant, secret=revoked), 401, "api_key_revoked")
    error(post(http, tenant, secret=expired_key(tenant)), 401, "api_key_expired")


def test_a_key_without_notes_write_is_403_missing_scope_on_every_route(http, tenant):
    note = created(http, tenant)
    reader = tenant.key(scopes=["notes:read"])
    err = error(
        http.get(f"/api/v1/notes/{note['id']}", headers=bearer(reader)), 403, "missing_scope"
    )
    assert err["type"] == "authorization_error"
    error(post(http, tenant, secret=reader, key="k9"), 403, "missing_scope")
    response = http.patch(
        f"/api/v1/notes/{note['id']}",
        headers={**bearer(reader), "If-Match": note["updatedAt"]},
        json={"title": "x"},
    )
    error(response, 403, "missing_scope")


def test_another_organizations_note_is_404_not_found(http, tenant, other_tenant):
    note = created(http, tenant)
    error(
        http.get(f"/api/v1/notes/{note['id']}", headers=bearer(other_tenant.secret)),
        404,
        "not_found",
    )
    error(
        http.get("/api/v1/notes/note_01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=bearer(tenant.secret)),
        404,
        "not_found",
    )
    error(http.get("/api/v1/notes/garbage", headers=bearer(tenant.secret)), 404, "not_found")


def test_an_order_note_is_not_a_shelfcycle_note(http, tenant):
    note = tenant.create("order note", subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id="723"))
    error(
        http.get(f"/api/v1/notes/{note.note.id}", headers=bearer(tenant.secret)), 404, "not_found"
    )


def test_invalid_fields_are_400_validation_failed_with_param(http, tenant):
    cases = [
        ({k: v for k, v in SEED_BODY.items() if k != "body"}, "body"),
        ({**SEED_BODY, "noteType": "LETTER"}, "noteType"),
        ({**SEED_BODY, "happenedAt": "yesterday"}, "happenedAt"),
        ({**SEED_BODY, "title": "x" * 513}, "title"),
        ({**SEED_BODY, "body": ""}, "body"),
        ({**SEED_BODY, "linkedRecords": "con_1"}, "linkedRecords"),
        ({**SEED_BODY, "archived": True}, "archived"),
    ]
    for i, (body, param) in enumerate(cases):
        err = error(post(http, tenant, body=body, key=f"v{i}"), 400, "validation_failed")
        assert err["type"] == "validation_error" and err["param"] == param, err


# Past year 1 or 9999 once the offset is applied: a datetime cannot hold them in UTC.
OUT_OF_RANGE_MOMENTS = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


def test_a_happened_at_out_of_range_by_its_offset_is_400_on_create(http, tenant):
    for i, moment in enumerate(OUT_OF_RANGE_MOMENTS):
        response = post(http, tenant, body={**SEED_BODY, "happenedAt": moment}, key=f"r{i}")
        err = error(response, 400, "validation_failed")
        assert err["type"] == "validation_error" and err["param"] == "happenedAt", err
        assert err["message"] == "happenedAt is out of range"


def test_a_happened_at_out_of_range_by_its_offset_is_400_on_patch(http, tenant):
    note = created(http, tenant)
    for moment in OUT_OF_RANGE_MOMENTS:
        response = patch(http, tenant, note["id"], {"happenedAt": moment}, note["updatedAt"])
        err = error(response, 400, "validation_failed")
        assert err["type"] == "validation_error" and err["param"] == "happenedAt", err
    assert stored(tenant, note["id"]).version == 1


def test_a_happened_at_at_the_range_edges_within_range_is_kept(http, tenant):
    cases = [
        ("0001-01-01T00:00:00-01:00", "0001-01-01T01:00:00.000Z"),
        ("9999-12-31T23:59:59+01:00", "9999-12-31T22:59:59.000Z"),
    ]
    for i, (moment, expected) in enumerate(cases):
        note = created(http, tenant, body={**SEED_BODY, "happenedAt": moment}, key=f"e{i}")
        assert read(http, tenant, note["id"])["happenedAt"] == expected
    response = patch(http, tenant, note["id"], {"happenedAt": cases[0][0]}, note["updatedAt"])
    assert response.status_code == 200, response.text
    assert response.json()["data"]["happenedAt"] == cases[0][1]


def test_malformed_json_and_oversized_bodies_are_refused(http, tenant):
    headers = {**bearer(tenant.secret), "Idempotency-Key": "m", "Content-Type": "application/json"}
    error(http.post("/api/v1/notes", headers=headers, content=b'{"body": '), 400, "invalid_json")
    error(http.post("/api/v1/notes", headers=headers, content=b"[1]"), 400, "invalid_json")
    big = {**SEED_BODY, "body": "x" * (1024 * 1024)}
    error(http.post("/api/v1/notes", headers=headers, json=big), 413, "payload_too_large")


def test_unknown_routes_and_methods_are_shelfcycle_shaped(http, tenant):
    error(http.get("/api/v1/notes", headers=bearer(tenant.secret)), 405, "method_not_allowed")
    response = http.delete("/api/v1/notes/note_x", headers=bearer(tenant.secret))
    error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, HEAD, PATCH"
    error(http.get("/api/v1/customers", headers=bearer(tenant.secret)), 404, "not_found")
