"""Erasure through every surface and in the database's bytes, export -> import round trips,
and the legacy systems' import formats (issue 12)."""

from __future__ import annotations

import json
import random
import secrets
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
import ulid
from notes.v1 import notes_pb2 as pb

from server.domain.model import SubjectType
from server.store import db
from tests.conftest import Tenant, make_database, start_service, stop_service

from .conftest import admin_jwt, bearer

CUSTOMER = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_e")


def _word() -> str:
    """A word no other test writes, lower case as the full-text index keeps its terms."""
    return "zq" + secrets.token_hex(8)


def _absent_from_tables(*words: str) -> None:
    """No row of any table of the store holds any of words."""
    database = db.current().database
    tables = [
        "notes",
        "note_events",
        "note_tags",
        "note_links",
        "request_ids",
        "subjects",
        "erasures",
        "note_texts",  # customer notes' q within a subject (migrations 12 and 13)
    ]
    with database.connection_context():
        for table in tables:
            rows = database.execute_sql(f'SELECT * FROM "{table}"').fetchall()
            text = repr(rows)
            for w in words:
                assert w not in text, f"{w} is still in {table}"


def _absent_from_files(service, *words: str) -> None:
    """SQLite: no byte of words in the database file or its WAL (the erasure checkpointed)."""
    path = Path(service.database_url.removeprefix("sqlite:///"))
    files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
    assert path in files
    for f in files:
        data = f.read_bytes()
        for w in words:
            assert w.encode() not in data, f"{w} is still in {f.name}"


def _not_found(call) -> None:
    with pytest.raises(grpc.RpcError) as e:
        call()
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_erased_customer_leaves_nothing_behind(service, tenant, http):
    w_body, w_title, w_name, w_tag = _word(), _word(), _word(), _word()
    tenant.subjects.UpsertSubject(
        pb.UpsertSubjectRequest(
            subject=pb.Subject(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_e", display_name=w_name),
            request_id=str(uuid.uuid4()),
        ),
        metadata=tenant.auth,
    )
    rid = str(uuid.uuid4())
    by_grpc = tenant.create(
        f"Called about {w_body}",
        subject=CUSTOMER,
        title=f"Call {w_title}",
        tags=[w_tag],
        request_id=rid,
    ).note
    tenant.notes.UpdateNote(
        pb.UpdateNoteRequest(note=pb.Note(id=by_grpc.id, body=f"Updated {w_body} again")),
        metadata=tenant.auth,
    )
    jwt = bearer(admin_jwt(tenant))
    by_http = http.post(
        "/admin/customers/cus_e/notes", headers=jwt, json={"body": f"Prefers {w_body} deliveries"}
    )
    assert by_http.status_code == 201
    shelf = http.post(
        "/api/v1/notes",
        headers={**bearer(tenant.secret), "Idempotency-Key": uuid.uuid4().hex},
        json={
            "primarySubject": {"type": "customer", "id": "cus_e"},
            "noteType": "NOTE",
            "title": f"Thread {w_title}",
            "body": f"Email about {w_body}",
        },
    )
    assert shelf.status_code == 201, shelf.text
    deleted = tenant.create(f"Deleted {w_body}", subject=CUSTOMER).note
    tenant.notes.DeleteNote(pb.DeleteNoteRequest(id=deleted.id), metadata=tenant.auth)
    linking = tenant.create("Mentions the customer", linked_records=[CUSTOMER]).note
    keeper = tenant.create("Unrelated note").note
    erased_ids = [by_grpc.id, by_http.json()["note"]["id"], shelf.json()["data"]["id"], deleted.id]

    out = tenant.subjects.EraseSubject(
        pb.EraseSubjectRequest(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_e"), metadata=tenant.auth
    )
    assert (out.notes_erased, out.links_removed) == (4, 1)

    for note_id in erased_ids:
        _not_found(
            lambda i=note_id: tenant.notes.GetNote(pb.GetNoteRequest(id=i), metadata=tenant.auth)
        )
        _not_found(
            lambda i=note_id: tenant.notes.GetNoteHistory(
                pb.GetNoteHistoryRequest(id=i), metadata=tenant.auth
            )
        )
        assert (
            http.get(f"/api/v1/notes/{note_id}", headers=bearer(tenant.secret)).status_code == 404
        )
    for query in (w_body, w_title, f"{w_body[:6]}*"):
        found = tenant.notes.ListNotes(
            pb.ListNotesRequest(query=query, show_deleted=True), metadata=tenant.auth
        )
        assert list(found.notes) == []
    listed = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUSTOMER, show_deleted=True), metadata=tenant.auth
    )
    assert list(listed.notes) == []
    tagged = tenant.notes.ListNotes(pb.ListNotesRequest(tags=[w_tag]), metadata=tenant.auth)
    assert list(tagged.notes) == []
    customer_list = http.get("/admin/customers/cus_e/notes", headers=jwt)
    assert customer_list.status_code in (200, 404) and w_body not in customer_list.text

    # The note that mentioned the customer no longer does, in a new version with an event.
    after = tenant.notes.GetNote(pb.GetNoteRequest(id=linking.id), metadata=tenant.auth).note
    assert list(after.linked_records) == [] and after.version == linking.version + 1
    history = tenant.notes.GetNoteHistory(
        pb.GetNoteHistoryRequest(id=linking.id), metadata=tenant.auth
    ).events
    assert [e.action for e in history] == ["CREATE", "UPDATE"]
    backlinks = tenant.notes.ListNotes(
        pb.ListNotesRequest(linked_record=CUSTOMER), metadata=tenant.auth
    )
    assert list(backlinks.notes) == []
    assert (
        tenant.notes.GetNote(pb.GetNoteRequest(id=keeper.id), metadata=tenant.auth).note == keeper
    )

    # The subject stays, archived and nameless, so its id is not quietly reused.
    subject = tenant.subjects.GetSubject(
        pb.GetSubjectRequest(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_e"), metadata=tenant.auth
    ).subject
    assert subject.display_name == "" and subject.HasField("archive_time")
    # The request id's stored reply (which held the text) is gone: no replay of it.
    with pytest.raises(grpc.RpcError) as e:
        tenant.create(
            f"Called about {w_body}",
            subject=CUSTOMER,
            title=f"Call {w_title}",
            tags=[w_tag],
            request_id=rid,
        )
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    again = tenant.subjects.EraseSubject(
        pb.EraseSubjectRequest(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_e"), metadata=tenant.auth
    )
    assert (again.notes_erased, again.links_removed) == (0, 0)

    words = (w_body, w_title, w_name, w_tag)
    _absent_from_tables(*words)
    if service.engine == "sqlite":
        _absent_from_files(service, *words)
    database = db.current().database
    with database.connection_context():
        rows = database.execute_sql(
            "SELECT reason, subject_type, subject_id, notes_erased, links_removed FROM erasures"
            f" WHERE org = {database.param} ORDER BY pk",
            (tenant.org,),
        ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("subject", "customer", "cus_e", 4, 1),
        ("subject", "customer", "cus_e", 0, 0),
    ]


def test_erasing_an_order_erases_its_items_notes(tenant, http, consumer):
    w = _word()
    woo = http.post("/wp-json/wc/v3/orders/723/notes", auth=consumer, json={"note": f"Order {w}"})
    assert woo.status_code == 201
    item = tenant.create(
        f"Item {w}", subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER_ITEM, id="item_1")
    ).note
    linking = tenant.create(
        "Mentions the item",
        linked_records=[pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER_ITEM, id="item_1")],
    ).note
    out = tenant.subjects.EraseSubject(
        pb.EraseSubjectRequest(type=pb.SUBJECT_TYPE_ORDER, id="723", request_id="erase-723"),
        metadata=tenant.auth,
    )
    assert (out.notes_erased, out.links_removed) == (2, 1)
    replay = tenant.subjects.EraseSubject(
        pb.EraseSubjectRequest(type=pb.SUBJECT_TYPE_ORDER, id="723", request_id="erase-723"),
        metadata=tenant.auth,
    )
    assert replay == out
    assert (
        http.get(f"/wp-json/wc/v3/orders/723/notes/{woo.json()['id']}", auth=consumer).status_code
        == 404
    )
    assert http.get("/orders/723/notes", headers=bearer(tenant.secret)).json() == {"notes": []}
    _not_found(lambda: tenant.notes.GetNote(pb.GetNoteRequest(id=item.id), metadata=tenant.auth))
    after = tenant.notes.GetNote(pb.GetNoteRequest(id=linking.id), metadata=tenant.auth).note
    assert list(after.linked_records) == []
    _absent_from_tables(w)
    _not_found(
        lambda: tenant.subjects.EraseSubject(
            pb.EraseSubjectRequest(type=pb.SUBJECT_TYPE_ORDER, id="no_such"), metadata=tenant.auth
        )
    )


def test_cli_erases_a_subject(service, tenant):
    w = _word()
    tenant.create(f"Secret {w}", subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_2"))
    out = service.cli(
        "subjects", "erase", "--org", tenant.org, "--type", "customer", "--id", "cus_2"
    )
    assert json.loads(out.stdout) == {"notes_erased": 1, "links_removed": 0}
    _absent_from_tables(w)


# --- export -> import ----------------------------------------------------------------------


def _all_notes(t: Tenant) -> list[pb.Note]:
    return list(
        t.notes.ListNotes(
            pb.ListNotesRequest(show_deleted=True, page_size=1000), metadata=t.auth
        ).notes
    )


def test_export_then_import_into_a_fresh_database_gives_identical_notes(
    service, tenant, http, consumer, tmp_path
):
    headers = bearer(tenant.secret)
    order, item = str(uuid.uuid4()), str(uuid.uuid4())
    tenant.register(SubjectType.ORDER, order)
    tenant.register(SubjectType.ORDER_ITEM, item, order)
    assert (
        http.post(
            "/wp-json/wc/v3/orders/723/notes",
            auth=consumer,
            json={"note": "Order ok!!!", "customer_note": True},
        ).status_code
        == 201
    )
    body = {"text": "Cancel it", "source": "Author 117", "tags": ["a", "b"]}
    assert http.post(f"/orders/{order}/notes", headers=headers, json=body).status_code == 200
    assert (
        http.post(f"/orders/{order}/items/{item}/notes", headers=headers, json=body).status_code
        == 200
    )
    jwt = bearer(admin_jwt(tenant))
    assert (
        http.post(
            "/admin/customers/cus_1/notes",
            headers=jwt,
            json={"body": "Likes oak", "metadata": {"n": 5}},
        ).status_code
        == 201
    )
    linked = tenant.create(
        "With links",
        title="T",
        tags=["x"],
        linked_records=[pb.SubjectRef(type=pb.SUBJECT_TYPE_PRODUCT, id="prod_1")],
        request_id=str(uuid.uuid4()),
    ).note
    tenant.notes.UpdateNote(
        pb.UpdateNoteRequest(note=pb.Note(id=linked.id, body="Edited")), metadata=tenant.auth
    )
    gone = tenant.create("Deleted one").note
    tenant.notes.DeleteNote(pb.DeleteNoteRequest(id=gone.id), metadata=tenant.auth)

    export = tmp_path / "export.jsonl"
    service.cli("export", "--org", tenant.org, "--out", str(export))
    lines = [json.loads(x) for x in export.read_text().splitlines()]
    note_lines = [x for x in lines if "subject" not in x or "id" in x]
    note_lines = [x for x in note_lines if "noteEvent" not in x]
    assert len(note_lines) == 6

    url, drop = make_database(service.engine, tmp_path)
    fresh = start_service(url, tmp_path)
    try:
        first = fresh.cli("import", "--org", tenant.org, str(export))
        assert json.loads(first.stdout)["created"] == 6
        assert "import:" in first.stderr  # the progress line
        second = fresh.cli("import", "--org", tenant.org, str(export))
        assert json.loads(second.stdout)["created"] == 0
        key = json.loads(
            fresh.cli(
                "keys",
                "create",
                "--org",
                tenant.org,
                "--actor-id",
                "user_1",
                "--display-name",
                "Jordan Buyer",
                "--scopes",
                "notes:read,notes:write,subjects:write",
                "--purpose",
                "tests",
            ).stdout
        )
        with (
            grpc.insecure_channel(fresh.grpc_target) as ch,
            httpx.Client(base_url=fresh.http_base, timeout=10) as http2,
        ):
            copy = Tenant(tenant.org, key["key_id"], key["secret"], ch)
            before, after = _all_notes(tenant), _all_notes(copy)
            assert len(before) == 6
            assert after == before  # every field: ids, numbers, authors, surfaces, times...
            for n in before:
                req = pb.GetNoteHistoryRequest(id=n.id)
                assert copy.notes.GetNoteHistory(req, metadata=copy.auth) == (
                    tenant.notes.GetNoteHistory(req, metadata=tenant.auth)
                )
            subjects_req = pb.ListSubjectsRequest(show_archived=True, page_size=1000)
            # The same subjects (registration order aside: items follow their orders).
            theirs = copy.subjects.ListSubjects(subjects_req, metadata=copy.auth).subjects
            ours = tenant.subjects.ListSubjects(subjects_req, metadata=tenant.auth).subjects
            assert sorted(theirs, key=str) == sorted(ours, key=str)
            woo_path = "/wp-json/wc/v3/orders/723/notes"
            woo2 = http2.get(woo_path, auth=(key["key_id"], key["secret"])).json()
            assert woo2 == http.get(woo_path, auth=consumer).json() and len(woo2) == 1
            ns_path = f"/orders/{order}/notes"
            ns2 = http2.get(ns_path, headers=bearer(key["secret"])).json()
            assert ns2 == http.get(ns_path, headers=headers).json() and len(ns2["notes"]) == 2
            cn_path = "/admin/customers/cus_1/notes"
            assert http2.get(cn_path, headers=jwt).json() == http.get(cn_path, headers=jwt).json()
            # Imported notes are found by q within their customer as they were before.
            q = {"q": "ikes OA"}
            found = http2.get(cn_path, headers=jwt, params=q).json()
            assert found == http.get(cn_path, headers=jwt, params=q).json()
            assert [n["body"] for n in found["notes"]] == ["Likes oak"]
            # New notes in the copy do not collide with imported numbers.
            assert copy.create("new").note.number > max(n.number for n in before)
    finally:
        stop_service(fresh)
        drop()


# --- legacy formats ----------------------------------------------------------------------


def _write(path: Path, objects: list[dict]) -> str:
    path.write_text("".join(json.dumps(o) + "\n" for o in objects))
    return str(path)


def test_woocommerce_notes_keep_their_ids_and_dates(service, tenant, http, consumer, tmp_path):
    base = random.randrange(10**9, 10**12)
    notes = [
        {
            "order_id": 9723,
            "id": base,
            "author": "system",
            "date_created_gmt": "2017-03-21T16:46:41",
            "note": "Order ok!!!",
            "customer_note": False,
        },
        {
            "order_id": 9723,
            "id": base + 5,
            "author": "Jordan",
            "date_created_gmt": "2017-03-22T09:00:00",
            "note": "Called",
            "customer_note": True,
        },
    ]
    path = _write(tmp_path / "woo.jsonl", notes)
    out = service.cli("import", "--org", tenant.org, "--format", "woocommerce", path)
    assert json.loads(out.stdout)["created"] == 2
    again = service.cli("import", "--org", tenant.org, "--format", "woocommerce", path)
    assert json.loads(again.stdout)["created"] == 0
    listed = http.get("/wp-json/wc/v3/orders/9723/notes", auth=consumer).json()
    shown = [
        {k: n[k] for k in ("id", "author", "date_created_gmt", "note", "customer_note")}
        for n in listed
    ]
    assert shown == list(reversed(notes)) or shown == [
        {k: v for k, v in n.items() if k != "order_id"} for n in reversed(notes)
    ]
    one = http.get(f"/wp-json/wc/v3/orders/9723/notes/{base}", auth=consumer).json()
    assert one["note"] == "Order ok!!!" and one["date_created"] == "2017-03-21T16:46:41"
    # Imported notes are in the containment (trigram) index too, which the import fills.
    found = tenant.notes.ListNotes(pb.ListNotesRequest(contains="RDER OK!"), metadata=tenant.auth)
    assert [n.number for n in found.notes] == [base]


def test_newstore_notes_keep_their_uuids_and_times(service, tenant, http, tmp_path):
    order, item = str(uuid.uuid4()), str(uuid.uuid4())
    notes = [
        {
            "id": str(uuid.uuid4()),
            "order_id": order,
            "text": "Cancel",
            "source": "Author 117",
            "tags": ["associate note"],
            "created_at": "2012-10-31 15:50:13.793654 +0000 UTC",
            "updated_at": "2012-10-31 15:50:13.793654 +0000 UTC",
        },
        {
            "id": str(uuid.uuid4()),
            "order_id": order,
            "item_id": item,
            "text": "Item",
            "source": "Author 118",
            "tags": [],
            "created_at": "2012-11-01 10:00:00 +0000 UTC",
            "updated_at": "2012-11-02 10:00:00.5 +0000 UTC",
        },
    ]
    path = _write(tmp_path / "ns.jsonl", notes)
    out = service.cli("import", "--org", tenant.org, "--format", "newstore", path)
    assert json.loads(out.stdout)["created"] == 2
    listed = http.get(f"/orders/{order}/notes", headers=bearer(tenant.secret)).json()["notes"]
    assert listed == list(reversed(notes))
    again = service.cli("import", "--org", tenant.org, "--format", "newstore", path)
    assert json.loads(again.stdout)["created"] == 0


def test_customer_notes_keep_their_ids_and_times(service, tenant, http, tmp_path):
    note = {
        "id": "note_" + str(ulid.ULID()),
        "customer_id": "cus_legacy",
        "body": "Hi",
        "is_internal": False,
        "author_id": "user_9",
        "metadata": {"priority": "high"},
        "created_at": "2024-05-29T14:35:00.123Z",
        "updated_at": "2024-05-30T08:00:00.000Z",
    }
    path = _write(tmp_path / "cn.jsonl", [note])
    out = service.cli("import", "--org", tenant.org, "--format", "customer-notes", path)
    assert json.loads(out.stdout)["created"] == 1
    listed = http.get("/admin/customers/cus_legacy/notes", headers=bearer(admin_jwt(tenant)))
    assert listed.json()["notes"] == [note]


def test_a_bad_line_is_named_and_nothing_of_its_batch_is_written(service, tenant, tmp_path):
    path = _write(
        tmp_path / "bad.jsonl",
        [
            {"order_id": 1, "id": 5, "date_created_gmt": "2017-03-21T16:46:41", "note": "ok"},
            {"order_id": 1, "id": 6, "date_created_gmt": "yesterday", "note": "bad"},
        ],
    )
    out = service.cli("import", "--org", tenant.org, "--format", "woocommerce", path, check=False)
    assert out.returncode == 2 and "line 2" in out.stderr
