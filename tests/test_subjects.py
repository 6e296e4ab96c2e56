"""The subject registry and the rules notes follow about subjects."""

from __future__ import annotations

import time
from concurrent import futures
from urllib.parse import parse_qs, urlparse

import grpc
import psycopg
import pytest
from google.protobuf import field_mask_pb2
from notes.v1 import notes_pb2 as pb

from server.domain.model import SubjectType

from .conftest import bad_fields, error_info


def upsert(tenant, **fields):
    return tenant.subjects.UpsertSubject(
        pb.UpsertSubjectRequest(subject=pb.Subject(**fields)), metadata=tenant.auth
    )


def test_upsert_registers_then_updates_the_display_name(tenant):
    first = upsert(tenant, type=pb.SUBJECT_TYPE_SUPPLIER, id="sup_9", display_name="Acme")
    assert first.created and first.subject.display_name == "Acme"
    again = upsert(tenant, type=pb.SUBJECT_TYPE_SUPPLIER, id="sup_9", display_name="Acme Ltd")
    assert not again.created and again.subject.display_name == "Acme Ltd"
    got = tenant.subjects.GetSubject(
        pb.GetSubjectRequest(type=pb.SUBJECT_TYPE_SUPPLIER, id="sup_9"), metadata=tenant.auth
    )
    assert got.subject.display_name == "Acme Ltd"
    assert got.subject.create_time == first.subject.create_time


def test_an_order_item_needs_its_registered_order(tenant):
    with pytest.raises(grpc.RpcError) as e:
        upsert(tenant, type=pb.SUBJECT_TYPE_ORDER_ITEM, id="item_9")
    assert bad_fields(e.value) == {"subject.parent_id"}
    with pytest.raises(grpc.RpcError) as e:
        upsert(tenant, type=pb.SUBJECT_TYPE_ORDER_ITEM, id="item_9", parent_id="no_order")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(e.value).reason == "SUBJECT_NOT_FOUND"
    assert error_info(e.value).metadata["subjectId"] == "no_order"
    assert upsert(tenant, type=pb.SUBJECT_TYPE_ORDER_ITEM, id="item_9", parent_id="723").created
    with pytest.raises(grpc.RpcError) as e:
        upsert(tenant, type=pb.SUBJECT_TYPE_CUSTOMER, id="c", parent_id="723")
    assert bad_fields(e.value) == {"subject.parent_id"}


def test_a_note_on_an_item_under_the_wrong_order_is_refused(tenant):
    tenant.register(SubjectType.ORDER, "724")
    with pytest.raises(grpc.RpcError) as e:
        tenant.create(
            subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER_ITEM, id="item_1", parent_id="724")
        )
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(e.value).reason == "SUBJECT_PARENT_MISMATCH"
    ok = tenant.create(
        subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER_ITEM, id="item_1", parent_id="723")
    )
    assert ok.note.subject.parent_id == "723"


def test_a_linked_order_item_is_checked_against_and_shown_with_its_order(tenant):
    tenant.register(SubjectType.ORDER, "724")
    item = pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER_ITEM, id="item_1")
    wrong = pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER_ITEM, id="item_1", parent_id="724")
    with pytest.raises(grpc.RpcError) as e:
        tenant.create(linked_records=[wrong])
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(e.value).reason == "SUBJECT_PARENT_MISMATCH"
    assert error_info(e.value).metadata["field"] == "linked_records[0]"

    created = tenant.create(linked_records=[item]).note
    got = tenant.notes.GetNote(pb.GetNoteRequest(id=created.id), metadata=tenant.auth).note
    for note in (created, got):
        assert [(r.id, r.parent_id) for r in note.linked_records] == [("item_1", "723")]
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.UpdateNote(
            pb.UpdateNoteRequest(
                note=pb.Note(id=created.id, linked_records=[wrong]),
                update_mask=field_mask_pb2.FieldMask(paths=["linked_records"]),
            ),
            metadata=tenant.auth,
        )
    assert error_info(e.value).reason == "SUBJECT_PARENT_MISMATCH"


def test_notes_attach_only_to_registered_subjects_and_links(tenant):
    with pytest.raises(grpc.RpcError) as e:
        tenant.create(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_unknown"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(e.value)
    assert info.reason == "SUBJECT_NOT_FOUND" and info.metadata["subjectId"] == "cus_unknown"
    with pytest.raises(grpc.RpcError) as e:
        tenant.create(linked_records=[pb.SubjectRef(type=pb.SUBJECT_TYPE_PRODUCT, id="nope")])
    assert error_info(e.value).metadata["field"] == "linked_records[0]"
    # The same id registered as another type is another subject.
    with pytest.raises(grpc.RpcError) as e:
        tenant.create(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_SUPPLIER, id="cus_1"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_archived_subject_refuses_new_notes_but_keeps_its_old_ones(tenant):
    old = tenant.create(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_2")).note
    archived = tenant.subjects.ArchiveSubject(
        pb.ArchiveSubjectRequest(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_2"), metadata=tenant.auth
    )
    assert archived.subject.HasField("archive_time")
    with pytest.raises(grpc.RpcError) as e:
        tenant.create(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_2"))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(e.value).reason == "SUBJECT_ARCHIVED"
    got = tenant.notes.GetNote(pb.GetNoteRequest(id=old.id), metadata=tenant.auth)
    assert got.note.id == old.id


def test_unknown_subjects_are_not_found(tenant, other_tenant):
    for stub, request in [
        (tenant.subjects.GetSubject, pb.GetSubjectRequest(type=pb.SUBJECT_TYPE_ORDER, id="9")),
        (
            tenant.subjects.ArchiveSubject,
            pb.ArchiveSubjectRequest(type=pb.SUBJECT_TYPE_ORDER, id="9"),
        ),
    ]:
        with pytest.raises(grpc.RpcError) as e:
            stub(request, metadata=tenant.auth)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    tenant.register(SubjectType.ORDER, "only_mine")
    with pytest.raises(grpc.RpcError) as e:
        other_tenant.subjects.GetSubject(
            pb.GetSubjectRequest(type=pb.SUBJECT_TYPE_ORDER, id="only_mine"),
            metadata=other_tenant.auth,
        )
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        tenant.subjects.GetSubject(pb.GetSubjectRequest(id="723"), metadata=tenant.auth)
    assert bad_fields(e.value) == {"type"}


def test_registry_calls_with_a_request_id_run_once(tenant):
    sup = pb.Subject(type=pb.SUBJECT_TYPE_SUPPLIER, id="sup_rid", display_name="Acme")
    first = tenant.subjects.UpsertSubject(
        pb.UpsertSubjectRequest(subject=sup, request_id="reg-1"), metadata=tenant.auth
    )
    assert first.created and first.idempotency_status == pb.IDEMPOTENCY_STATUS_CREATED
    again = tenant.subjects.UpsertSubject(
        pb.UpsertSubjectRequest(subject=sup, request_id="reg-1"), metadata=tenant.auth
    )
    assert again.idempotency_status == pb.IDEMPOTENCY_STATUS_REPLAYED
    assert again.subject == first.subject and again.created
    renamed = pb.Subject(type=pb.SUBJECT_TYPE_SUPPLIER, id="sup_rid", display_name="Other")
    with pytest.raises(grpc.RpcError) as e:
        tenant.subjects.UpsertSubject(
            pb.UpsertSubjectRequest(subject=renamed, request_id="reg-1"), metadata=tenant.auth
        )
    assert error_info(e.value).reason == "REQUEST_ID_REUSED"
    with pytest.raises(grpc.RpcError) as e:
        tenant.subjects.UpsertSubject(
            pb.UpsertSubjectRequest(subject=sup, request_id="x" * 37), metadata=tenant.auth
        )
    assert bad_fields(e.value) == {"request_id"}

    archive = pb.ArchiveSubjectRequest(
        type=pb.SUBJECT_TYPE_SUPPLIER, id="sup_rid", request_id="arch-1"
    )
    archived = tenant.subjects.ArchiveSubject(archive, metadata=tenant.auth)
    assert archived.idempotency_status == pb.IDEMPOTENCY_STATUS_CREATED
    assert archived.subject.HasField("archive_time")
    replayed = tenant.subjects.ArchiveSubject(archive, metadata=tenant.auth)
    assert replayed.idempotency_status == pb.IDEMPOTENCY_STATUS_REPLAYED
    assert replayed.subject == archived.subject


def test_a_note_racing_the_archiving_of_its_subject_never_lands_on_it(service, tenant):
    """PostgreSQL: the subject is archived by a transaction still open; a create on it must
    wait for that transaction (it reads its subjects FOR SHARE), then see the archive."""
    if service.engine != "postgres":
        pytest.skip("SQLite runs one write transaction at a time")
    parsed = urlparse(service.database_url)
    schema = parse_qs(parsed.query)["schema"][0]
    url = parsed._replace(query="").geturl()
    with psycopg.connect(url) as archiver, psycopg.connect(url, autocommit=True) as watcher:
        archiver.execute(
            f'UPDATE "{schema}".subjects SET archive_time = 1'
            " WHERE org = %s AND type = 'customer' AND external_id = 'cus_1'",
            (tenant.org,),
        )
        with futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(tenant.create, "racing the archive", timeout=30)
            deadline = time.monotonic() + 20
            while not watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database() AND query LIKE %s",
                ('%"subjects"%FOR SHARE%',),
            ).fetchone()[0]:
                assert not pending.done(), "the create did not wait for the archiving"
                assert time.monotonic() < deadline
            archiver.commit()
            with pytest.raises(grpc.RpcError) as e:
                pending.result(timeout=30)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(e.value).reason == "SUBJECT_ARCHIVED"
