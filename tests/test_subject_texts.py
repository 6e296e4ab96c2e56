"""A subject's notes containing a text (customer notes' q, ListNotesRequest.contains with a
subject) are read from note_texts (migrations 12 and 13): pages, tokens, offsets, counts,
deletions, long texts and other organizations come out as they do for any list."""

from __future__ import annotations

import grpc
import pytest
from notes.v1 import notes_pb2 as pb

from .conftest import run_on_fresh_database

CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")


def _list(tenant, **fields) -> pb.ListNotesResponse:
    request = pb.ListNotesRequest(subject=CUS_1, include_total_size=True, **fields)
    return tenant.notes.ListNotes(request, metadata=tenant.auth)


def test_pages_tokens_and_offsets_of_a_text_within_a_subject(tenant):
    made = [tenant.create(f"Walnut zqpage {i}").note for i in range(7)]
    for i in range(5):  # newer, and not matching: a page must look past them
        tenant.create(f"Oak {i}")
    newest_first = [n.id for n in reversed(made)]

    seen, token = [], ""
    while True:
        page = _list(tenant, contains="ZQPAGE", page_size=3, page_token=token)
        assert page.total_size == 7
        seen += [n.id for n in page.notes]
        token = page.next_page_token
        if not token:
            break
    assert seen == newest_first

    skipped = _list(tenant, contains="zqpage", page_size=2, offset=5)
    assert [n.id for n in skipped.notes] == newest_first[5:]
    assert skipped.total_size == 7


def test_deleted_notes_count_only_when_asked_for(tenant):
    kept = tenant.create("Walnut zqlive kept").note
    gone = tenant.create("Walnut zqlive gone").note
    tenant.notes.DeleteNote(pb.DeleteNoteRequest(id=gone.id), metadata=tenant.auth)

    live = _list(tenant, contains="zqlive")
    assert [n.id for n in live.notes] == [kept.id] and live.total_size == 1
    every = _list(tenant, contains="zqlive", show_deleted=True)
    assert [n.id for n in every.notes] == [gone.id, kept.id] and every.total_size == 2


def test_other_filters_apply_to_the_page_and_the_count(tenant):
    tenant.create("Walnut zqother internal", visibility=pb.VISIBILITY_INTERNAL)
    shown = tenant.create("Walnut zqother customer", visibility=pb.VISIBILITY_CUSTOMER).note
    tagged = tenant.create("Walnut zqother tagged", tags=["vip"]).note

    by_visibility = _list(tenant, contains="zqother", visibility=pb.VISIBILITY_CUSTOMER)
    assert [n.id for n in by_visibility.notes] == [shown.id] and by_visibility.total_size == 1
    by_tag = _list(tenant, contains="zqother", tags=["vip"])
    assert [n.id for n in by_tag.notes] == [tagged.id] and by_tag.total_size == 1
    nobody = _list(tenant, contains="zqother", author_ids=["someone_else"])
    assert list(nobody.notes) == [] and nobody.total_size == 0


def test_a_text_too_long_for_the_index_is_still_found(tenant):
    """PostgreSQL keeps no folded copy of a text longer than a B-tree entry takes: such a note
    is tested on the note itself, for the page and for the count."""
    long_hit = tenant.create("x" * 3000 + " Walnut ZQLONG at the end").note
    tenant.create("y" * 3000 + " nothing to find")
    short_hit = tenant.create("short zqlong").note

    page = _list(tenant, contains="zqlong")
    assert [n.id for n in page.notes] == [short_hit.id, long_hit.id]
    assert page.total_size == 2
    assert _list(tenant, contains="nothing to find").total_size == 1
    tenant.notes.UpdateNote(
        pb.UpdateNoteRequest(note=pb.Note(id=short_hit.id, body="z" * 3000 + " zqlong")),
        metadata=tenant.auth,
    )
    assert _list(tenant, contains="zqlong").total_size == 2


def test_another_organizations_notes_on_the_same_subject_are_not_seen(tenant, other_tenant):
    other_tenant.create("Walnut zqtheirs")
    for i in range(3):
        other_tenant.create(f"Walnut zqtheirs {i}")
    mine = tenant.create("Walnut zqmine").note

    page = _list(tenant, contains="walnut")
    assert [n.id for n in page.notes] == [mine.id] and page.total_size == 1
    assert _list(tenant, contains="zqtheirs").total_size == 0


def test_a_text_within_an_order_with_its_items_is_not_read_from_note_texts(tenant):
    order = pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id="723")
    item = pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER_ITEM, id="item_1")
    on_order = tenant.create("Walnut zqitems order", subject=order).note
    on_item = tenant.create("Walnut zqitems item", subject=item).note
    page = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=order, include_children=True, contains="zqitems"),
        metadata=tenant.auth,
    )
    assert [n.id for n in page.notes] == [on_item.id, on_order.id]


def test_a_text_that_is_not_valid_is_refused(tenant):
    with pytest.raises(grpc.RpcError) as e:
        _list(tenant, contains="x" * 513)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


UPGRADE = """
import json, sys
from server.domain.model import *
from server.service import notes, subjects
from server.store import db, migrations
engine = db.open_database(sys.argv[1], pool_size=2)
migrations.migrate(engine, target=12)
ph = ", ".join([engine.database.param] * 26)
rows = [(1, "Walnut zqold", None), (2, "Walnut zqold gone", 5), (3, "w" * 3000 + " zqold", None)]
for number, body, deleted in rows:
    engine.database.execute_sql(
        "INSERT INTO notes (number, org_number, id, org, subject_type, subject_id, note_type,"
        " title, body, visibility, tags, links, metadata, source, source_type, author_type,"
        " author_id, author_name, created_via, api_key_id, purpose, happened_at, create_time,"
        f" update_time, delete_time, version) VALUES ({ph})",
        (number, number, f"note_{number}", "a", "customer", "c", "NOTE", "", body, "internal",
         "[]", "[]", "{}", "", "", "user", "u", "", "grpc", "", "", None, 1, 1, deleted, 1),
    )
migrations.migrate(engine)
p = Principal("a", Author(AuthorType.USER, "u"), frozenset(["notes:write", "notes:read",
                                                           "subjects:write"]))
subjects.upsert_subject(p, Subject(SubjectType.CUSTOMER, "c"))
ref = SubjectRef(SubjectType.CUSTOMER, "c")
out = {}
for deleted in (False, True):
    q = ListQuery(subject=ref, contains="ZQOLD", show_deleted=deleted, include_total_size=True)
    page = notes.list_notes(p, q, notes.PageTokens(b"k" * 32))
    out[str(deleted)] = {"ids": [n.id for n in page.notes], "count": page.total_size}
print(json.dumps(out))
"""


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_the_upgrade_fills_note_texts_with_what_is_live(engine, tmp_path):
    assert run_on_fresh_database(engine, tmp_path, UPGRADE) == {
        "False": {"ids": ["note_3", "note_1"], "count": 2},
        "True": {"ids": ["note_3", "note_2", "note_1"], "count": 3},
    }
