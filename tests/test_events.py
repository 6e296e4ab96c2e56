"""The change feed (EventsService): what each change emits, ListEvents paging and cursors,
organizations kept apart, and credentials. WatchEvents: tests/test_watch_events.py."""

from __future__ import annotations

import json
import threading

import grpc
import pytest
from notes.v1 import events_pb2 as epb
from notes.v1 import notes_pb2 as pb

from server.domain.cursors import Cursor
from server.service.clock import now_us

from .conftest import bad_fields, error_info
from .events_helpers import drain, events_stub

CUSTOMER = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")


def test_each_change_emits_its_events_with_the_note_after_it(tenant):
    created = tenant.create("first", request_id="req-create").note
    updated = tenant.notes.UpdateNote(
        pb.UpdateNoteRequest(
            note=pb.Note(id=created.id, visibility=pb.VISIBILITY_CUSTOMER),
            update_mask={"paths": ["visibility"]},
            request_id="req-update",
        ),
        metadata=tenant.auth,
    ).note
    tenant.notes.DeleteNote(
        pb.DeleteNoteRequest(id=created.id, request_id="req-delete"), metadata=tenant.auth
    )
    tenant.notes.UndeleteNote(pb.UndeleteNoteRequest(id=created.id), metadata=tenant.auth)

    events, _ = drain(tenant)
    assert [e.type for e in events] == [
        "note.created",
        "note.updated",
        "note.customer_visible",
        "note.deleted",
        "note.undeleted",
    ]
    assert len({e.id for e in events}) == 5 and all(e.id.startswith("evt_") for e in events)
    assert [e.note.version for e in events] == [1, 2, 2, 3, 4]
    first, update, visible, deleted, undeleted = events
    assert first.note == created and update.note == updated and visible.note == updated
    assert deleted.note.HasField("delete_time") and not undeleted.note.HasField("delete_time")
    for e in events:
        assert e.organization == tenant.org and e.note.id == created.id
        assert e.actor.id == tenant.actor_id and e.actor.type == pb.AUTHOR_TYPE_USER
        assert e.surface == pb.SURFACE_GRPC
        assert e.requested_via.api_key_id == tenant.key_id
        assert e.cursor and e.event_time.seconds > 0
    assert first.request_id == "req-create" and update.request_id == visible.request_id
    assert update.request_id == "req-update"
    assert deleted.request_id == "req-delete" and undeleted.request_id == ""


def test_a_note_created_visible_to_the_customer_emits_customer_visible(tenant):
    note = tenant.create("shipped", visibility=pb.VISIBILITY_CUSTOMER).note
    events, _ = drain(tenant)
    assert [(e.type, e.note.id) for e in events] == [
        ("note.created", note.id),
        ("note.customer_visible", note.id),
    ]
    # Updating a note that is already visible is only an update.
    tenant.notes.UpdateNote(
        pb.UpdateNoteRequest(note=pb.Note(id=note.id, body="shipped today")),
        metadata=tenant.auth,
    )
    more, _ = drain(tenant, after=events[-1].cursor)
    assert [e.type for e in more] == ["note.updated"]


def test_filters_by_type_and_subject(tenant):
    tenant.create("a")
    tenant.create("b", subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id="723"))
    item = pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER_ITEM, id="item_1", parent_id="723")
    tenant.create("c", subject=item, visibility=pb.VISIBILITY_CUSTOMER)

    visible, _ = drain(tenant, types=["note.customer_visible"])
    assert [e.note.body for e in visible] == ["c"]
    order = pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id="723")
    about_order, _ = drain(tenant, subject=order, types=["note.created"])
    assert [e.note.body for e in about_order] == ["b", "c"]  # the order's items too
    about_customer, _ = drain(tenant, subject=CUSTOMER)
    assert [e.note.body for e in about_customer] == ["a"]


def test_pages_follow_the_cursor_strictly_after_it(tenant):
    ids = [tenant.create(f"n{i}").note.id for i in range(7)]
    stub = events_stub(tenant.channel)
    seen, after, pages = [], "", 0
    while True:
        resp = stub.ListEvents(
            epb.ListEventsRequest(after=after, page_size=3), metadata=tenant.auth
        )
        pages += 1
        assert len(resp.events) <= 3
        if resp.events:
            assert resp.events[-1].cursor == resp.next_cursor or len(resp.events) < 3
        seen += [e.note.id for e in resp.events]
        after = resp.next_cursor
        if not resp.events:
            break
    assert seen == ids and pages == 4
    # At the end the cursor is the position reached: nothing again, then only what is new.
    again = stub.ListEvents(epb.ListEventsRequest(after=after), metadata=tenant.auth)
    assert list(again.events) == [] and again.next_cursor
    new = tenant.create("new").note
    resp = stub.ListEvents(epb.ListEventsRequest(after=again.next_cursor), metadata=tenant.auth)
    assert [e.note.id for e in resp.events] == [new.id]


def test_two_organizations_never_see_each_others_events(tenant, other_tenant):
    mine = tenant.create("mine").note
    theirs = other_tenant.create("theirs").note
    my_events, my_cursor = drain(tenant)
    their_events, _ = drain(other_tenant)
    assert {e.note.id for e in my_events} == {mine.id}
    assert {e.note.id for e in their_events} == {theirs.id}
    assert {e.organization for e in their_events} == {other_tenant.org}
    # Another organization's cursor is only a position: it reveals nothing of theirs.
    after_mine, _ = drain(other_tenant, after=my_events[0].cursor)
    assert all(e.organization == other_tenant.org for e in after_mine)
    other_subject, _ = drain(other_tenant, subject=CUSTOMER, types=["note.created"])
    assert [e.note.id for e in other_subject] == [theirs.id]


@pytest.mark.parametrize(
    "request_kwargs, field",
    [
        ({"after": "not a cursor!"}, "after"),
        ({"after": Cursor(1, 2, 3).encode()[:-2]}, "after"),
        ({"after": "AQ"}, "after"),
        ({"types": ["note.created", "note.exploded"]}, "types[1]"),
        ({"page_size": -1}, "page_size"),
        ({"subject": pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER)}, "subject.id"),
        ({"subject": pb.SubjectRef(type=99, id="x")}, "subject.type"),
    ],
)
def test_bad_requests_name_the_field(tenant, request_kwargs, field):
    stub = events_stub(tenant.channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.ListEvents(epb.ListEventsRequest(**request_kwargs), metadata=tenant.auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in bad_fields(err.value)


def test_a_cursor_older_than_the_retention_is_failed_precondition(tenant):
    stub = events_stub(tenant.channel)
    fresh = Cursor(0, 0, now_us() - 29 * 86_400 * 1_000_000).encode()
    stub.ListEvents(epb.ListEventsRequest(after=fresh), metadata=tenant.auth)
    old = Cursor(0, 0, now_us() - 31 * 86_400 * 1_000_000).encode()
    with pytest.raises(grpc.RpcError) as err:
        stub.ListEvents(epb.ListEventsRequest(after=old), metadata=tenant.auth)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(err.value)
    assert info.reason == "EVENT_CURSOR_EXPIRED" and info.metadata["retentionDays"] == "30"


def test_page_size_zero_means_100_and_at_most_1000(tenant):
    stub = events_stub(tenant.channel)
    resp = stub.ListEvents(epb.ListEventsRequest(page_size=5000), metadata=tenant.auth)
    assert list(resp.events) == []


def test_an_event_exists_only_if_its_change_committed(tenant):
    note = tenant.create("x", request_id="once").note
    replay = tenant.create("x", request_id="once")
    assert replay.idempotency_status == pb.IDEMPOTENCY_STATUS_REPLAYED
    with pytest.raises(grpc.RpcError) as err:  # a stale version: nothing changes
        tenant.notes.UpdateNote(
            pb.UpdateNoteRequest(note=pb.Note(id=note.id, body="y"), expected_version=7),
            metadata=tenant.auth,
        )
    assert err.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.RpcError):  # an unknown subject: refused
        tenant.create("z", subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="nobody"))
    with pytest.raises(grpc.RpcError):  # undelete of a note that is not deleted
        tenant.notes.UndeleteNote(pb.UndeleteNoteRequest(id=note.id), metadata=tenant.auth)
    events, _ = drain(tenant)
    assert [(e.type, e.note.id) for e in events] == [("note.created", note.id)]


def test_credentials_are_checked(tenant, channel):
    stub = events_stub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.ListEvents(epb.ListEventsRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    no_read = tenant.key(["subjects:write"])
    with pytest.raises(grpc.RpcError) as err:
        stub.ListEvents(epb.ListEventsRequest(), metadata=(("authorization", f"Bearer {no_read}"),))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    reader = tenant.key(["notes:read"])
    stub.ListEvents(epb.ListEventsRequest(), metadata=(("authorization", f"Bearer {reader}"),))


def test_paging_under_concurrent_writers_sees_every_event_exactly_once(service, tenant):
    """Writers commit while a reader follows next_cursor with small pages. On PostgreSQL an
    older transaction holds an event uncommitted while later ones commit: the reader must not
    pass it (it would never see it), so nothing newer is returned until it commits."""
    from server.service.events import new_event_id
    from server.store import outbox, uow

    stub = events_stub(tenant.channel)
    created: list[str] = []
    lock = threading.Lock()
    seen: list[epb.Event] = []
    cursor = ""

    def read_page() -> int:
        nonlocal cursor
        resp = stub.ListEvents(
            epb.ListEventsRequest(after=cursor, page_size=5), metadata=tenant.auth
        )
        seen.extend(resp.events)
        cursor = resp.next_cursor
        return len(resp.events)

    held_id = new_event_id()
    appended, release = threading.Event(), threading.Event()

    def hold() -> None:
        with uow.writing():
            outbox.append(
                tenant.org,
                held_id,
                "note.updated",
                "note_held",
                ("customer", "cus_1", ""),
                now_us(),
                {"request_id": "held"},
            )
            appended.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    if service.engine == "postgres":  # SQLite commits one writer at a time, in order
        holder.start()
        assert appended.wait(10)

    def write(i: int) -> None:
        for j in range(12):
            note = tenant.create(f"w{i}-{j}").note
            with lock:
                created.append(note.id)

    try:
        writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for w in writers:
            w.start()
        while any(w.is_alive() for w in writers):
            read_page()
        for w in writers:
            w.join()
        while read_page():
            pass
        if service.engine == "postgres":
            # Everything written after the open transaction waits for it.
            assert held_id not in {e.id for e in seen}
            assert not {e.note.id for e in seen} & set(created)
            release.set()
            holder.join()
            while read_page():
                pass
            assert [e.id for e in seen].count(held_id) == 1
    finally:
        release.set()
        if holder.is_alive():
            holder.join(10)
    ids = [e.id for e in seen]
    assert len(ids) == len(set(ids)), "an event was returned twice"
    assert sorted(e.note.id for e in seen if e.type == "note.created") == sorted(created)
    assert len(created) == 48


def test_purge_events_deletes_only_what_is_past_the_retention(service, tenant):
    from server.store import db

    old = tenant.create("old").note
    kept = tenant.create("kept").note
    database = db.current().database
    with database.connection_context():
        database.execute_sql(
            f'UPDATE "events" SET "event_time" = 1 WHERE "note_id" = {database.param}',
            (old.id,),
        )
    out = service.cli("purge-events")
    assert json.loads(out.stdout)["purged"] >= 1
    events, _ = drain(tenant)
    assert [e.note.id for e in events] == [kept.id]
