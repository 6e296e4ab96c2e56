"""What real clients of the legacy APIs send: Medusa's own admin tokens, Medusa's substring `q`,
offsets past the end, NewStore's UUIDs and tags, and the service limits the documents leave
open."""

from __future__ import annotations

import json
import time
import uuid

import grpc
import jwt
import pytest
from notes.v1 import notes_pb2 as pb

from tests.conftest import JWT_SECRET

from .conftest import bearer


def medusa_admin_token(actor_id: str = "user_01MEDUSA", **extra) -> str:
    """An admin JWT as Medusa v2 issues it: no scopes, no org."""
    now = int(time.time())
    claims = {
        "actor_id": actor_id,
        "actor_type": "user",
        "auth_identity_id": "authid_01ABC",
        "app_metadata": {"user_id": actor_id},
        "iat": now,
        "exp": now + 600,
        **extra,
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def customer_notes(customer: str = "cus_1") -> str:
    return f"/admin/customers/{customer}/notes"


# --- Medusa admin tokens ---------------------------------------------------------------


def test_a_medusa_admin_token_manages_customer_notes(http, tenant):
    token = medusa_admin_token(org=tenant.org)  # org only to reach this test's tenant
    created = http.post(customer_notes(), headers=bearer(token), json={"body": "From Medusa"})
    assert created.status_code == 201, created.text
    assert created.json()["note"]["author_id"] == "user_01MEDUSA"
    listed = http.get(customer_notes(), headers=bearer(token))
    assert listed.status_code == 200
    assert [n["body"] for n in listed.json()["notes"]] == ["From Medusa"]


def test_a_medusa_admin_token_grants_nothing_elsewhere(http, tenant):
    token = medusa_admin_token(org=tenant.org)
    with pytest.raises(grpc.RpcError) as err:
        tenant.notes.ListNotes(
            pb.ListNotesRequest(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")),
            metadata=(("authorization", f"Bearer {token}"),),
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert http.get("/orders/723/notes", headers=bearer(token)).status_code == 403
    response = http.post(
        "/api/v1/notes",
        headers={**bearer(token), "Idempotency-Key": "k1"},
        json={"primarySubject": {"type": "customer", "id": "cus_1"}, "body": "x"},
    )
    assert response.status_code == 403


def test_a_medusa_customer_token_is_not_an_admin(http, tenant):
    token = medusa_admin_token(org=tenant.org, actor_type="customer")
    assert http.get(customer_notes(), headers=bearer(token)).status_code == 403


# --- q: notes containing the text ------------------------------------------------------


def test_q_finds_notes_containing_the_text(http, tenant):
    admin = bearer(medusa_admin_token(org=tenant.org))
    for body in ("Customer was refunded twice", "Asked about REFUNDS policy", "Shipped late"):
        assert http.post(customer_notes(), headers=admin, json={"body": body}).status_code == 201

    def found(q: str) -> list[str]:
        response = http.get(customer_notes(), headers=admin, params={"q": q})
        assert response.status_code == 200, response.text
        assert response.json()["count"] == len(response.json()["notes"])
        return sorted(n["body"] for n in response.json()["notes"])

    assert found("refund") == ["Asked about REFUNDS policy", "Customer was refunded twice"]
    assert found("fund") == ["Asked about REFUNDS policy", "Customer was refunded twice"]
    assert found("was refunded tw") == ["Customer was refunded twice"]
    assert found("PPED L") == ["Shipped late"]
    assert found("IP") == ["Shipped late"]  # shorter than a trigram
    assert found("x") == []
    assert found("100%") == [] and found("_") == []  # LIKE's wildcards are plain text


def test_q_folds_case_beyond_ascii(http, tenant):
    """Medusa's ILIKE folds every letter's case, not only ASCII's."""
    admin = bearer(medusa_admin_token(org=tenant.org))
    for body in ("Frau MÜLLER rief an", "Ärger mit der Lieferung", "Élodie a appelé"):
        assert http.post(customer_notes(), headers=admin, json={"body": body}).status_code == 201

    def found(q: str) -> list[str]:
        response = http.get(customer_notes(), headers=admin, params={"q": q})
        assert response.status_code == 200, response.text
        return sorted(n["body"] for n in response.json()["notes"])

    assert found("müller") == ["Frau MÜLLER rief an"]
    assert found("äR") == ["Ärger mit der Lieferung"]  # shorter than a trigram
    assert found("éLODIE") == ["Élodie a appelé"]


def test_q_of_a_whole_twenty_word_sentence_finds_its_note(http, tenant):
    admin = bearer(medusa_admin_token(org=tenant.org))
    sentence = (
        "The customer called twice about the delayed parcel and asked us to refund the "
        "shipping fee before Friday next week"
    )
    assert len(sentence.split()) == 20
    body = f"Summary. {sentence}. Follow up next week."
    assert http.post(customer_notes(), headers=admin, json={"body": body}).status_code == 201
    response = http.get(customer_notes(), headers=admin, params={"q": sentence})
    assert response.status_code == 200, response.text
    assert [n["body"] for n in response.json()["notes"]] == [body]


def test_q_follows_every_change_to_a_note(http, tenant):
    """q within a customer reads a structure of its own (migration 12): a note's create,
    update, deletion and move to another text are seen at once, and only on its customer."""
    admin = bearer(medusa_admin_token(org=tenant.org))

    def found(q: str, customer: str = "cus_1") -> list[str]:
        response = http.get(customer_notes(customer), headers=admin, params={"q": q})
        assert response.status_code == 200, response.text
        assert response.json()["count"] == len(response.json()["notes"])
        return [n["body"] for n in response.json()["notes"]]

    first = tenant.create("Walnut sideboard zqfirst").note
    second = tenant.create("Oak table zqsecond").note
    other = tenant.create(
        "Walnut sideboard zqfirst", subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_2")
    ).note
    assert found("zqfirst") == ["Walnut sideboard zqfirst"]
    assert found("ALNUT SIDE") == ["Walnut sideboard zqfirst"]
    assert found("zqfirst", "cus_2") == ["Walnut sideboard zqfirst"]

    tenant.notes.UpdateNote(
        pb.UpdateNoteRequest(note=pb.Note(id=first.id, body="Birch chair zqthird")),
        metadata=tenant.auth,
    )
    assert found("zqfirst") == [] and found("walnut") == []
    assert found("zqthird") == ["Birch chair zqthird"]
    assert found("zqfirst", "cus_2") == ["Walnut sideboard zqfirst"]  # another customer's
    tenant.notes.UpdateNote(
        pb.UpdateNoteRequest(note=pb.Note(id=first.id, title="Ash zqtitle")),
        metadata=tenant.auth,
    )
    assert found("zqtitle") == ["Birch chair zqthird"]  # the title counts too

    tenant.notes.DeleteNote(pb.DeleteNoteRequest(id=second.id), metadata=tenant.auth)
    assert found("zqsecond") == [] and found("oak") == []
    tenant.notes.DeleteNote(pb.DeleteNoteRequest(id=other.id), metadata=tenant.auth)
    assert found("zqfirst", "cus_2") == []


def test_grpc_query_keeps_its_word_language(tenant):
    tenant.create("Customer was refunded twice")
    subject = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")
    words = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=subject, query="refund"), metadata=tenant.auth
    )
    assert list(words.notes) == []  # a word, not a substring
    inside = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=subject, contains="efunde"), metadata=tenant.auth
    )
    assert [n.body for n in inside.notes] == ["Customer was refunded twice"]


# --- offsets past the end --------------------------------------------------------------


@pytest.mark.parametrize("offset", [2, 150_000, 2**31, 10**30])
def test_an_offset_past_the_end_is_an_empty_page_with_the_count(http, tenant, offset):
    admin = bearer(medusa_admin_token(org=tenant.org))
    for body in ("one", "two"):
        http.post(customer_notes(), headers=admin, json={"body": body})
    response = http.get(customer_notes(), headers=admin, params={"offset": offset, "limit": 5})
    assert response.status_code == 200, response.text
    assert response.json() == {"notes": [], "count": 2, "offset": offset, "limit": 5}


def test_grpc_offsets_past_the_end_are_empty_pages_counted_first(tenant):
    """The service counts first and skips the list query when the offset is past the count,
    so even past OFFSET_MAX (100,000) such an offset is an empty page, not an error."""
    tenant.create("one")
    subject = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")
    for offset, with_total in ((1, True), (100_001, True), (100_001, False)):
        page = tenant.notes.ListNotes(
            pb.ListNotesRequest(subject=subject, offset=offset, include_total_size=with_total),
            metadata=tenant.auth,
        )
        assert list(page.notes) == [] and page.next_page_token == ""
        assert page.total_size == (1 if with_total else 0)


# --- NewStore --------------------------------------------------------------------------


def test_newstore_ids_are_uuidv7(http, tenant, key):
    response = http.post(
        "/orders/723/notes",
        headers=key,
        json={"text": "Check", "source": "Author 117", "tags": []},
    )
    assert response.status_code == 200, response.text
    value = uuid.UUID(response.json()["id"])
    assert value.version == 7 and value.variant == uuid.RFC_4122
    ms = int.from_bytes(value.bytes[:6], "big")
    assert abs(ms / 1000 - time.time()) < 3600


def test_newstore_renders_a_source_for_notes_from_other_surfaces(http, tenant, key):
    tenant.create("From gRPC", subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id="723"))
    notes = http.get("/orders/723/notes", headers=key).json()["notes"]
    assert [n["source"] for n in notes] == ["Jordan Buyer"]


def test_newstore_accepts_256_tags_of_128_characters(http, tenant, key):
    tags = [f"{i:03d}" + "t" * 125 for i in range(256)]
    response = http.post(
        "/orders/723/notes", headers=key, json={"text": "Tagged", "source": "s", "tags": tags}
    )
    assert response.status_code == 200, response.text
    assert response.json()["tags"] == tags
    too_many = http.post(
        "/orders/723/notes",
        headers=key,
        json={"text": "Tagged", "source": "s", "tags": [*tags, "one more"]},
    )
    assert too_many.status_code == 400


# --- metadata limits -------------------------------------------------------------------


def test_metadata_up_to_64_kib_and_32_levels_is_accepted(http, tenant):
    admin = bearer(medusa_admin_token(org=tenant.org))
    deep: dict = {"leaf": 1}
    for _ in range(31):
        deep = {"d": deep}
    big = {"k": "v" * (64 * 1024 - 16)}
    assert len(json.dumps(big, separators=(",", ":"))) <= 64 * 1024
    for metadata in (deep, big):
        response = http.post(
            customer_notes(), headers=admin, json={"body": "m", "metadata": metadata}
        )
        assert response.status_code == 201, response.text
        assert response.json()["note"]["metadata"] == metadata
    deeper = {"d": deep}
    response = http.post(customer_notes(), headers=admin, json={"body": "m", "metadata": deeper})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["metadata"]
