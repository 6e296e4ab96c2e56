"""NotesService over a real server: every RPC's success and error paths."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2, timestamp_pb2
from notes.v1 import notes_pb2 as pb

from server.store import db

from .conftest import bad_fields, error_info

ORDER_723 = pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id="723")
ITEM_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER_ITEM, id="item_1")
CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")


def metadata(**values) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def test_create_returns_the_stored_note_with_server_fields(tenant):
    happened = timestamp_pb2.Timestamp(seconds=1_780_000_000)
    resp = tenant.create(
        "Jordan approved the new contact",
        subject=CUS_1,
        linked_records=[
            pb.SubjectRef(type=pb.SUBJECT_TYPE_CONTACT, id="con_1"),
            pb.SubjectRef(type=pb.SUBJECT_TYPE_CONTACT, id="con_1"),
            pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1"),
            pb.SubjectRef(type=pb.SUBJECT_TYPE_PRODUCT, id="prod_1"),
        ],
        note_type=pb.NOTE_TYPE_EMAIL,
        title="Inbound thread",
        tags=["a", "b", "a"],
        metadata=metadata(priority="high", amount=5000),
        source="Author 117",
        source_type="user",
        happened_at=happened,
    )
    note = resp.note
    assert resp.idempotency_status == pb.IDEMPOTENCY_STATUS_CREATED
    assert note.id.startswith("note_") and len(note.id) == 31
    assert note.number > 0 and note.version == 1
    assert [(r.type, r.id) for r in note.linked_records] == [
        (pb.SUBJECT_TYPE_CONTACT, "con_1"),
        (pb.SUBJECT_TYPE_PRODUCT, "prod_1"),
    ]
    assert list(note.tags) == ["a", "b"]
    assert note.metadata["amount"] == 5000 and note.metadata["priority"] == "high"
    assert note.visibility == pb.VISIBILITY_INTERNAL
    assert (note.author.type, note.author.id, note.author.display_name) == (
        pb.AUTHOR_TYPE_USER,
        "user_1",
        "Jordan Buyer",
    )
    assert note.created_via == pb.SURFACE_GRPC
    assert note.requested_via.api_key_id == tenant.key_id
    assert note.requested_via.purpose == "tests"
    assert note.happened_at == happened
    assert note.create_time == note.update_time and not note.HasField("delete_time")
    got = tenant.notes.GetNote(pb.GetNoteRequest(id=note.id), metadata=tenant.auth).note
    assert got == note


def test_author_comes_from_the_credential_not_the_request(tenant):
    note = tenant.create(author=pb.Author(type=pb.AUTHOR_TYPE_SYSTEM, id="forged")).note
    assert note.author.id == "user_1" and note.author.type == pb.AUTHOR_TYPE_USER


def test_numbers_increase(tenant):
    numbers = [tenant.create(f"n{i}").note.number for i in range(3)]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3


def test_get_by_number_and_unknown_ids(tenant):
    note = tenant.create().note
    by_number = tenant.notes.GetNote(pb.GetNoteRequest(number=note.number), metadata=tenant.auth)
    assert by_number.note.id == note.id
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.GetNote(pb.GetNoteRequest(id="note_missing"), metadata=tenant.auth)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(e.value).reason == "NOTE_NOT_FOUND"
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.GetNote(pb.GetNoteRequest(), metadata=tenant.auth)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(e.value) == {"id"}


def test_update_changes_only_the_masked_fields_and_bumps_the_version(tenant):
    note = tenant.create("before", title="t", tags=["x"]).note
    resp = tenant.notes.UpdateNote(
        pb.UpdateNoteRequest(
            note=pb.Note(id=note.id, body="after", title="ignored"),
            update_mask=field_mask_pb2.FieldMask(paths=["body"]),
            expected_version=1,
        ),
        metadata=tenant.auth,
    )
    assert resp.note.body == "after" and resp.note.title == "t" and resp.note.version == 2
    assert list(resp.note.tags) == ["x"]
    assert resp.note.update_time.ToMicroseconds() > note.update_time.ToMicroseconds()
    assert resp.note.create_time == note.create_time


def test_update_with_an_empty_mask_writes_the_fields_that_are_set(tenant):
    note = tenant.create("before", title="t").note
    resp = tenant.notes.UpdateNote(
        pb.UpdateNoteRequest(note=pb.Note(id=note.id, tags=["new"])), metadata=tenant.auth
    )
    assert list(resp.note.tags) == ["new"] and resp.note.body == "before"
    assert resp.note.title == "t"


def test_update_with_star_replaces_every_updatable_field(tenant):
    note = tenant.create("before", title="t", tags=["x"]).note
    resp = tenant.notes.UpdateNote(
        pb.UpdateNoteRequest(
            note=pb.Note(id=note.id, body="only body"),
            update_mask=field_mask_pb2.FieldMask(paths=["*"]),
        ),
        metadata=tenant.auth,
    )
    assert resp.note.body == "only body" and resp.note.title == "" and not resp.note.tags


def test_update_refuses_unknown_mask_paths_and_the_subject(tenant):
    note = tenant.create().note
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.UpdateNote(
            pb.UpdateNoteRequest(
                note=pb.Note(id=note.id, body="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["subject", "author"]),
            ),
            metadata=tenant.auth,
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(e.value) == {"update_mask"}


def test_a_stale_version_is_aborted_with_the_current_version(tenant):
    note = tenant.create().note
    update = pb.UpdateNoteRequest(note=pb.Note(id=note.id, body="v2"), expected_version=1)
    tenant.notes.UpdateNote(update, metadata=tenant.auth)
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.UpdateNote(update, metadata=tenant.auth)
    assert e.value.code() == grpc.StatusCode.ABORTED
    info = error_info(e.value)
    assert info.reason == "VERSION_MISMATCH" and info.metadata["currentVersion"] == "2"
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.DeleteNote(
            pb.DeleteNoteRequest(id=note.id, expected_version=1), metadata=tenant.auth
        )
    assert e.value.code() == grpc.StatusCode.ABORTED


def test_delete_is_soft_and_undelete_restores(tenant):
    note = tenant.create(subject=CUS_1).note
    deleted = tenant.notes.DeleteNote(pb.DeleteNoteRequest(id=note.id), metadata=tenant.auth)
    assert deleted.note.HasField("delete_time") and deleted.note.version == 2
    got = tenant.notes.GetNote(pb.GetNoteRequest(id=note.id), metadata=tenant.auth).note
    assert got.HasField("delete_time")
    listed = tenant.notes.ListNotes(pb.ListNotesRequest(subject=CUS_1), metadata=tenant.auth)
    assert note.id not in [n.id for n in listed.notes]
    listed = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, show_deleted=True), metadata=tenant.auth
    )
    assert note.id in [n.id for n in listed.notes]
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.DeleteNote(pb.DeleteNoteRequest(id=note.id), metadata=tenant.auth)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.UpdateNote(
            pb.UpdateNoteRequest(note=pb.Note(id=note.id, body="x")), metadata=tenant.auth
        )
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(e.value).reason == "NOTE_DELETED"
    restored = tenant.notes.UndeleteNote(pb.UndeleteNoteRequest(id=note.id), metadata=tenant.auth)
    assert not restored.note.HasField("delete_time") and restored.note.version == 3
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.UndeleteNote(pb.UndeleteNoteRequest(id=note.id), metadata=tenant.auth)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_history_records_every_change_and_outlives_deletion(tenant):
    note = tenant.create().note
    tenant.notes.UpdateNote(
        pb.UpdateNoteRequest(note=pb.Note(id=note.id, body="x"), request_id="upd-1"),
        metadata=tenant.auth,
    )
    tenant.notes.DeleteNote(pb.DeleteNoteRequest(id=note.id), metadata=tenant.auth)
    events = tenant.notes.GetNoteHistory(
        pb.GetNoteHistoryRequest(id=note.id), metadata=tenant.auth
    ).events
    assert [(e.action, e.old_version, e.new_version) for e in events] == [
        ("CREATE", 0, 1),
        ("UPDATE", 1, 2),
        ("DELETE", 2, 3),
    ]
    assert events[1].request_id == "upd-1"
    assert all(e.actor.id == "user_1" and e.surface == pb.SURFACE_GRPC for e in events)


def test_list_filters(tenant):
    a = tenant.create("alpha", subject=CUS_1, tags=["vip"], note_type=pb.NOTE_TYPE_EMAIL).note
    b = tenant.create(
        "beta",
        subject=CUS_1,
        visibility=pb.VISIBILITY_CUSTOMER,
        linked_records=[pb.SubjectRef(type=pb.SUBJECT_TYPE_PRODUCT, id="prod_1")],
    ).note
    other = tenant.key(actor_id="user_9")
    c = tenant.notes.CreateNote(
        pb.CreateNoteRequest(note=pb.Note(subject=CUS_1, body="gamma")),
        metadata=(("authorization", f"Bearer {other}"),),
    ).note

    def ids(**kwargs) -> list[str]:
        resp = tenant.notes.ListNotes(
            pb.ListNotesRequest(subject=CUS_1, **kwargs), metadata=tenant.auth
        )
        return [n.id for n in resp.notes]

    assert ids() == [c.id, b.id, a.id]  # newest first
    assert ids(tags=["vip"]) == [a.id]
    assert ids(note_types=[pb.NOTE_TYPE_EMAIL]) == [a.id]
    assert ids(visibility=pb.VISIBILITY_CUSTOMER) == [b.id]
    assert ids(author_ids=["user_9"]) == [c.id]
    assert ids(query="beta") == [b.id]
    backlinks = tenant.notes.ListNotes(
        pb.ListNotesRequest(linked_record=pb.SubjectRef(type=pb.SUBJECT_TYPE_PRODUCT, id="prod_1")),
        metadata=tenant.auth,
    )
    assert [n.id for n in backlinks.notes] == [b.id]
    counted = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, include_total_size=True, page_size=1, offset=1),
        metadata=tenant.auth,
    )
    assert counted.total_size == 3 and [n.id for n in counted.notes] == [b.id]


def test_an_orders_list_includes_its_items_notes(tenant):
    on_order = tenant.create("order note", subject=ORDER_723).note
    on_item = tenant.create("item note", subject=ITEM_1).note
    assert on_item.subject.parent_id == "723"
    only = tenant.notes.ListNotes(pb.ListNotesRequest(subject=ORDER_723), metadata=tenant.auth)
    assert [n.id for n in only.notes] == [on_order.id]
    both = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=ORDER_723, include_children=True), metadata=tenant.auth
    )
    assert [n.id for n in both.notes] == [on_item.id, on_order.id]


@pytest.mark.parametrize(
    "query",
    ['"unterminated', "AND OR NOT", "*", "' OR 1=1 --", "NEAR(a b)", "body:x", "a -b", "^x"],
)
def test_search_survives_hostile_queries(tenant, query):
    tenant.create("plain words here")
    # With a subject the search filters its notes; without, it walks the text index itself.
    for request in (
        pb.ListNotesRequest(subject=CUS_1, query=query),
        pb.ListNotesRequest(query=query),
    ):
        try:
            tenant.notes.ListNotes(request, metadata=tenant.auth)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_search_finds_words_phrases_and_prefixes(tenant):
    a = tenant.create("The quick brown fox jumps", subject=CUS_1).note
    b = tenant.create("A brown quick dog sleeps", subject=CUS_1).note

    def found(query: str) -> set[str]:
        resp = tenant.notes.ListNotes(
            pb.ListNotesRequest(subject=CUS_1, query=query), metadata=tenant.auth
        )
        return {n.id for n in resp.notes}

    assert found("brown") == {a.id, b.id}
    assert found('"quick brown"') == {a.id}
    assert found("jum*") == {a.id}
    assert found("QUICK dog") == {b.id}
    assert found("absent") == set()


def test_a_search_without_a_subject_pages_newest_first_and_skips_deleted_notes(tenant):
    made = []
    for i in range(7):
        made.append(tenant.create(f"kumquat number {i}", subject=ORDER_723 if i % 2 else CUS_1))
        tenant.create(f"plain filler {i}")
    gone = made[3].note
    tenant.notes.DeleteNote(pb.DeleteNoteRequest(id=gone.id), metadata=tenant.auth)
    expected = [m.note.id for m in reversed(made) if m.note.id != gone.id]

    seen, token = [], ""
    while True:
        page = tenant.notes.ListNotes(
            pb.ListNotesRequest(query="kumquat", page_size=2, page_token=token),
            metadata=tenant.auth,
        )
        seen.extend(n.id for n in page.notes)
        token = page.next_page_token
        if not token:
            break
    assert seen == expected
    counted = tenant.notes.ListNotes(
        pb.ListNotesRequest(query="kumqu*", include_total_size=True, page_size=1, offset=2),
        metadata=tenant.auth,
    )
    assert counted.total_size == 6 and [n.id for n in counted.notes] == [expected[2]]


def _skip_note_numbers(count: int) -> None:
    """The next note gets a number count higher than it would have (as if other organizations
    had written count notes meanwhile)."""
    engine = db.current()
    with engine.database.connection_context():
        if engine.is_postgres:
            engine.database.execute_sql(
                "SELECT setval(pg_get_serial_sequence('notes', 'number'),"
                " (SELECT last_value FROM notes_number_seq) + %s)",
                (count,),
            )
        else:
            engine.database.execute_sql(
                "UPDATE sqlite_sequence SET seq = seq + ? WHERE name = 'notes'", (count,)
            )


def test_a_search_finds_the_same_notes_in_the_same_order_across_far_apart_numbers(tenant):
    """PostgreSQL searches window by window of note numbers (4,096 numbers, then 4 times more
    at most, then unbounded past 2**26): matches on either side of every window's edge, many
    non-matching notes in between, come back as one list, newest first, whatever the paging."""
    made = []
    for gap in (
        0,
        1,
        4_100,
        3,
        17_000,
        70_000,
        300_000,
        1_100_000,
        4_500_000,
        17_000_000,
        70_000_000,
        2,
    ):
        _skip_note_numbers(gap)
        made.append(tenant.create(f"quince tart {len(made)}", subject=CUS_1).note)
        tenant.create(f"plain filler {len(made)}", subject=CUS_1)
        if len(made) % 3 == 0:
            made.append(tenant.create(f"tart of quince {len(made)}", subject=ORDER_723).note)
    gone = made[4]
    tenant.notes.DeleteNote(pb.DeleteNoteRequest(id=gone.id), metadata=tenant.auth)
    newest_first = [n for n in reversed(made) if n.id != gone.id]

    def ids(query: str, *, page_size: int = 0, offset: int = 0) -> tuple[list[str], int]:
        seen, token = [], ""
        while True:
            page = tenant.notes.ListNotes(
                pb.ListNotesRequest(
                    query=query,
                    page_size=page_size,
                    page_token=token,
                    offset=offset,
                    include_total_size=True,
                ),
                metadata=tenant.auth,
            )
            seen.extend(n.id for n in page.notes)
            token = page.next_page_token
            if not token or offset:
                return seen, page.total_size

    everything = [n.id for n in newest_first]
    assert ids("quince") == (everything, len(everything))
    assert ids("quin*", page_size=2) == (everything, len(everything))
    assert ids("quince", page_size=3, offset=4) == (everything[4:7], len(everything))
    tarts = [n.id for n in newest_first if n.body.startswith("quince tart")]
    assert ids('"quince tart"', page_size=4) == (tarts, len(tarts))
    assert ids("quince absent") == ([], 0)


def test_a_search_pages_only_its_own_organizations_notes_across_windows(tenant, other_tenant):
    """PostgreSQL puts a search's probes of every window into one statement: another
    organization's matches, newer than this one's in every window and in the rest past the
    longest window, neither show up in its pages nor take any of their places."""
    mine, theirs = [], []
    for gap in (0, 5_000, 20_000, 300_000, 70_000_000):
        _skip_note_numbers(gap)
        mine.append(tenant.create(f"medlar jam {len(mine)}").note.id)
        theirs += [other_tenant.create(f"medlar jam {i}").note.id for i in range(3)]
    mine.reverse()
    theirs.reverse()

    def ids(who, page_size: int, offset: int = 0) -> list[str]:
        seen, token = [], ""
        while True:
            page = who.notes.ListNotes(
                pb.ListNotesRequest(
                    query="medlar", page_size=page_size, page_token=token, offset=offset
                ),
                metadata=who.auth,
            )
            seen.extend(n.id for n in page.notes)
            token = page.next_page_token
            if not token or offset:
                return seen

    for page_size in (1, 2, 50):
        assert ids(tenant, page_size) == mine
        assert ids(other_tenant, page_size) == theirs
    assert ids(tenant, 2, offset=2) == mine[2:4]
    assert ids(other_tenant, 4, offset=5) == theirs[5:9]


def test_a_listed_note_is_exactly_the_stored_note_whatever_its_text(tenant):
    """SQLite lists read rows as one JSON document; nothing may change on the way."""
    text = 'quote " backslash \\ bell \x07 tab \t rtl \u202e emoji \U0001f600 line \u2028 é'
    metadata = struct_pb2.Struct()
    metadata.update({"text": text, "n": 2**40, "f": 0.1, "nested": {"list": [1, "two", None]}})
    created = tenant.create(
        text,
        subject=ORDER_723,
        title=text[:40],
        tags=[text[:20], "plain"],
        metadata=metadata,
        source=text[:30],
        linked_records=[pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")],
    ).note
    listed = tenant.notes.ListNotes(  # first, so that the list decodes the row itself
        pb.ListNotesRequest(subject=ORDER_723, page_size=1), metadata=tenant.auth
    ).notes
    got = tenant.notes.GetNote(pb.GetNoteRequest(id=created.id), metadata=tenant.auth).note
    assert got == created
    assert list(listed) == [created]
