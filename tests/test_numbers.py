"""Note numbers belong to the organization: each counts from 1, concurrent creates get
distinct consecutive numbers, and an upgrade keeps every number it finds."""

from __future__ import annotations

from concurrent import futures

import httpx
import pytest
from notes.v1 import notes_pb2 as pb

from server.domain.model import SubjectType

from .conftest import run_on_fresh_database

THREADS = 8
EACH = 5


def test_two_organizations_each_get_number_one(service, tenant, other_tenant):
    first = tenant.create("mine").note
    theirs = other_tenant.create("theirs").note
    assert (first.number, theirs.number) == (1, 1)
    assert tenant.create("mine too").note.number == 2
    mine = tenant.notes.GetNote(pb.GetNoteRequest(number=1), metadata=tenant.auth).note
    assert mine.id == first.id
    other = other_tenant.notes.GetNote(pb.GetNoteRequest(number=1), metadata=other_tenant.auth)
    assert other.note.id == theirs.id
    # WooCommerce's integer ids are these numbers
    tenant.register(SubjectType.ORDER, "900")
    auth = (tenant.key_id, tenant.secret)
    with httpx.Client(base_url=service.http_base, timeout=10, auth=auth) as http:
        made = http.post("/wp-json/wc/v3/orders/900/notes", json={"note": "woo"})
        assert made.status_code == 201, made.text
        assert made.json()["id"] == 3
        assert http.get("/wp-json/wc/v3/orders/900/notes/3").json()["note"] == "woo"


def test_concurrent_creates_in_one_organization_get_distinct_consecutive_numbers(tenant):
    def create(i: int) -> list[int]:
        return [tenant.create(f"n{i}.{k}").note.number for k in range(EACH)]

    with futures.ThreadPoolExecutor(THREADS) as pool:
        numbers = [n for batch in pool.map(create, range(THREADS)) for n in batch]
    assert sorted(numbers) == list(range(1, THREADS * EACH + 1))
    listed = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")),
        metadata=tenant.auth,
    )
    assert sorted(n.number for n in listed.notes) == sorted(numbers)


UPGRADE = """
import json, sys
from server.domain.model import *
from server.service import notes, subjects
from server.store import db, migrations
engine = db.open_database(sys.argv[1], pool_size=2)
migrations.migrate(engine, target=2)
ph = ", ".join([engine.database.param] * 25)
for number, org in [(1, "a"), (2, "b"), (3, "a"), (7, "b"), (9, "a")]:
    engine.database.execute_sql(
        "INSERT INTO notes (number, id, org, subject_type, subject_id, note_type, title, body,"
        " visibility, tags, links, metadata, source, source_type, author_type, author_id,"
        " author_name, created_via, api_key_id, purpose, happened_at, create_time,"
        f" update_time, delete_time, version) VALUES ({ph})",
        (number, f"note_{number}", org, "customer", "c", "NOTE", "", "old", "internal", "[]",
         "[]", "{}", "", "", "user", "u", "", "grpc", "", "", None, 1, 1, None, 1),
    )
if engine.is_postgres:  # as the serial would have left it
    engine.database.execute_sql("SELECT setval(pg_get_serial_sequence('notes', 'number'), 9)")
migrations.migrate(engine)
out = {}
for org in ("a", "b"):
    p = Principal(org, Author(AuthorType.USER, "u"), frozenset(["notes:write", "notes:read",
                                                               "subjects:write"]))
    subjects.upsert_subject(p, Subject(SubjectType.CUSTOMER, "c"))
    ref = SubjectRef(SubjectType.CUSTOMER, "c")
    old = {}
    for n in (1, 2, 3, 7, 9):
        try:
            old[n] = notes.get_note(p, number=n).id
        except Exception:
            pass
    new = notes.create_note(p, NoteFields(subject=ref, body="new")).note.number
    out[org] = {"old": old, "new": new}
print(json.dumps(out))
"""


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_the_upgrade_keeps_every_number_and_counts_on_from_each_organizations_last(
    engine, tmp_path
):
    assert run_on_fresh_database(engine, tmp_path, UPGRADE) == {
        "a": {"old": {"1": "note_1", "3": "note_3", "9": "note_9"}, "new": 10},
        "b": {"old": {"2": "note_2", "7": "note_7"}, "new": 8},
    }
