"""What operators touch: grpcurl by reflection, health, the CLI, logs, shutdown, migrations."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from notes.v1 import notes_pb2 as pb
from notes.v1 import notes_pb2_grpc as pb_grpc

from server.store import migrations

from .conftest import (
    error_info,
    lifecycle,
    make_database,
    new_tenant,
    rpc_lines,
    run_on_fresh_database,
    start_service,
    stop_service,
)
from .test_faults import writes_blocked

CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"


def grpcurl(service, *args: str, data: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [GRPCURL, "-plaintext"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=30, check=False)


def test_grpcurl_lists_and_calls_services_through_reflection(service, tenant):
    listed = grpcurl(service, service.grpc_target, "list")
    assert listed.returncode == 0, listed.stderr
    names = set(listed.stdout.split())
    assert {
        "notes.v1.NotesService",
        "notes.v1.SubjectsService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    described = grpcurl(service, service.grpc_target, "describe", "notes.v1.Note")
    assert "linked_records" in described.stdout
    auth = ["-H", f"authorization: Bearer {tenant.secret}"]
    created = grpcurl(
        service,
        *auth,
        service.grpc_target,
        "notes.v1.NotesService/CreateNote",
        data={
            "note": {"subject": {"type": "SUBJECT_TYPE_ORDER", "id": "723"}, "body": "via grpcurl"},
            "request_id": "grpcurl-1",
        },
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)[
        "idempotencyStatus" if "idempotencyStatus" in created.stdout else "idempotency_status"
    ].endswith("CREATED")
    listed = grpcurl(
        service,
        *auth,
        service.grpc_target,
        "notes.v1.NotesService/ListNotes",
        data={"subject": {"type": "SUBJECT_TYPE_ORDER", "id": "723"}},
    )
    assert "via grpcurl" in listed.stdout
    refused = grpcurl(service, service.grpc_target, "notes.v1.NotesService/ListNotes", data={})
    assert refused.returncode != 0 and "Unauthenticated" in refused.stderr + refused.stdout


def test_grpcurl_checks_health(service):
    out = grpcurl(service, service.grpc_target, "grpc.health.v1.Health/Check")
    assert out.returncode == 0 and "SERVING" in out.stdout


def test_the_cli_manages_keys_subjects_and_tokens(service, channel):
    org = "cli_org"
    created = json.loads(
        service.cli(
            "keys",
            "create",
            "--org",
            org,
            "--actor-id",
            "ops",
            "--display-name",
            "Ops",
            "--scopes",
            "notes:read,notes:write",
            "--purpose",
            "cli test",
            "--expires-in",
            "600",
        ).stdout
    )
    assert set(created) == {"key_id", "secret"}
    listed = json.loads(service.cli("keys", "list", "--org", org).stdout)
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert created["secret"] not in json.dumps(listed)
    put = json.loads(
        service.cli("subjects", "put", "--org", org, "--type", "order", "--id", "o1").stdout
    )
    assert put["created"]
    item = service.cli(
        "subjects",
        "put",
        "--org",
        org,
        "--type",
        "order_item",
        "--id",
        "i1",
        "--parent-type",
        "order",
        "--parent-id",
        "o1",
    )
    assert json.loads(item.stdout)["parent_id"] == "o1"
    bad = service.cli("subjects", "put", "--org", org, "--type", "planet", "--id", "x", check=False)
    assert bad.returncode == 2 and "type" in bad.stderr
    stub_auth = (("authorization", f"Bearer {created['secret']}"),)
    from notes.v1 import notes_pb2_grpc

    notes = notes_pb2_grpc.NotesServiceStub(channel)
    note = notes.CreateNote(
        pb.CreateNoteRequest(
            note=pb.Note(
                subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER_ITEM, id="i1"),
                body="from the cli's key",
            )
        ),
        metadata=stub_auth,
    ).note
    audit = json.loads(service.cli("audit", note.id, "--org", org).stdout)
    assert [e["action"] for e in audit] == ["CREATE"]
    token = service.cli("token", "--org", org, "--actor-id", "ops").stdout.strip()
    got = notes.GetNote(
        pb.GetNoteRequest(id=note.id), metadata=(("authorization", f"Bearer {token}"),)
    )
    assert got.note.id == note.id
    service.cli("subjects", "archive", "--org", org, "--type", "order_item", "--id", "i1")
    with pytest.raises(grpc.RpcError) as e:
        notes.CreateNote(
            pb.CreateNoteRequest(
                note=pb.Note(
                    subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER_ITEM, id="i1"), body="x"
                )
            ),
            metadata=stub_auth,
        )
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    service.cli("keys", "revoke", created["key_id"])
    assert service.cli("keys", "revoke", created["key_id"], check=False).returncode == 1


def test_migrate_is_idempotent_on_a_live_database(service):
    out = json.loads(service.cli("migrate").stdout)
    assert out == {"applied": [], "version": migrations.LATEST}


def test_logs_carry_one_line_per_rpc_without_secrets_or_bodies(service, tenant):
    marker = "body-marker-7f3a"
    tenant.create(marker, request_id="log-check")
    with pytest.raises(grpc.RpcError):
        tenant.notes.GetNote(pb.GetNoteRequest(id="note_absent"), metadata=tenant.auth)

    def access(log: list[str]) -> list[dict]:
        return [x for x in rpc_lines(log) if x["org"] == tenant.org]

    mine = access(service.wait_for_log(lambda log: len(access(log)) >= 2))
    assert {"method", "code", "ms", "org", "request_id"} <= set(mine[0])
    assert any(x["request_id"] == "log-check" and x["code"] == "OK" for x in mine)
    assert any(x["code"] == "NOT_FOUND" for x in mine)
    text = "".join(service.log)
    assert marker not in text and tenant.secret not in text


def test_sigterm_under_load_finishes_in_flight_creates_refuses_new_calls_and_exits_in_grace(
    service, channel, tmp_path
):
    """CreateNote calls wait on the notes table's write lock, held from outside, when SIGTERM
    comes: health turns NOT_SERVING, a new call is refused, and once the lock is released every
    call in flight completes and is stored; the process exits 0 within the grace period."""
    tenant = new_tenant(channel)  # registered through the session's store
    in_flight, grace = 4, 15.0
    svc = start_service(
        service.database_url,
        tmp_path,
        "--no-http",
        env_extra={"NOTES_GRACE_SECONDS": str(grace)},
    )
    try:
        with (
            grpc.insecure_channel(svc.grpc_target) as ch,
            futures.ThreadPoolExecutor(2 * in_flight) as pool,
        ):
            notes = pb_grpc.NotesServiceStub(ch)

            def create(i: int) -> pb.CreateNoteResponse:
                request = pb.CreateNoteRequest(
                    note=pb.Note(subject=CUS_1, body=f"in flight {i}", tags=["sigterm"]),
                    request_id=f"sigterm-{i}",
                )
                return notes.CreateNote(request, metadata=tenant.auth, timeout=60)

            watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest())
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            with writes_blocked(service):
                # Each create is sent twice with one request id. The server refuses the second
                # at once, ABORTED, because the first is under way: that answer is the event
                # that says the first has reached the server and holds its request id.
                pairs = [(pool.submit(create, i), pool.submit(create, i)) for i in range(in_flight)]
                pending = []
                for pair in pairs:
                    done, waiting = futures.wait(
                        pair, timeout=30, return_when=futures.FIRST_COMPLETED
                    )
                    assert len(done) == 1 and len(waiting) == 1, "one of the two is refused"
                    refused = done.pop().exception()
                    assert isinstance(refused, grpc.RpcError), refused
                    assert refused.code() == grpc.StatusCode.ABORTED
                    assert error_info(refused).reason == "REQUEST_IN_FLIGHT"
                    pending.append(waiting.pop())
                assert not any(p.done() for p in pending), "the lock holds every create"
                signalled = time.monotonic()
                svc.process.send_signal(signal.SIGTERM)
                assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
                watch.cancel()
                svc.wait_for_log(lambda log: any('"draining"' in x for x in log))
                with grpc.insecure_channel(svc.grpc_target) as fresh:
                    with pytest.raises(grpc.RpcError) as e:
                        pb_grpc.NotesServiceStub(fresh).CreateNote(
                            pb.CreateNoteRequest(
                                note=pb.Note(subject=CUS_1, body="after SIGTERM"),
                                request_id="sigterm-refused",
                            ),
                            metadata=tenant.auth,
                            timeout=5,
                        )
                    # Refused before any handler ran: UNAVAILABLE once the port is closed,
                    # CANCELLED if its connection got in just before that (on a busy machine).
                    refused_code = e.value.code()
                    assert refused_code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
                assert not any(p.done() for p in pending)
                assert svc.process.poll() is None, "the process waits for the calls in flight"
            released = time.monotonic()  # the block's end rolled the lock holder back
            created = [p.result(timeout=grace) for p in pending]
        code = svc.process.wait(timeout=grace)
        exited = time.monotonic()
    finally:
        stop_service(svc)
    assert code == 0
    assert exited - signalled < grace, f"exit {exited - signalled:.1f} s after SIGTERM"
    print(
        f"sigterm {service.engine}: lock released {released - signalled:.3f} s after SIGTERM, "
        f"exit {exited - released:.3f} s after the release"
    )
    assert all(r.idempotency_status == pb.IDEMPOTENCY_STATUS_CREATED for r in created)
    # Read back through the session's own service on the same database.
    for r in created:
        got = tenant.notes.GetNote(pb.GetNoteRequest(id=r.note.id), metadata=tenant.auth).note
        assert got == r.note
    listed = tenant.notes.ListNotes(pb.ListNotesRequest(subject=CUS_1), metadata=tenant.auth)
    assert sorted(n.body for n in listed.notes) == [f"in flight {i}" for i in range(in_flight)]
    log = svc.wait_for_log(lambda log: any('"stopped"' in x for x in log))
    events = lifecycle(log)
    assert events[-3:] == ["not_serving", "draining", "stopped"]
    # One access line per call that reached a handler: the refused one never did.
    calls = [x for x in rpc_lines(log) if x["method"].startswith("/notes.v1.NotesService/")]
    ids = [f"sigterm-{i}" for i in range(in_flight)]
    assert sorted((x["request_id"], x["code"]) for x in calls) == sorted(
        [(i, "OK") for i in ids] + [(i, "ABORTED") for i in ids]
    )


def test_a_shutdown_delay_answers_calls_as_not_serving_until_a_second_signal(tmp_path):
    """NOTES_SHUTDOWN_DELAY_SECONDS: after SIGTERM health says NOT_SERVING but calls are still
    answered, so clients move away before the port closes; a second SIGTERM ends the delay."""
    url, drop = make_database("sqlite", tmp_path)
    svc = start_service(
        url, tmp_path, "--no-http", env_extra={"NOTES_SHUTDOWN_DELAY_SECONDS": "600"}
    )
    try:
        with grpc.insecure_channel(svc.grpc_target) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            svc.process.send_signal(signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
        with grpc.insecure_channel(svc.grpc_target) as fresh:  # a new connection, still taken
            answer = health_pb2_grpc.HealthStub(fresh).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert svc.process.poll() is None
        second = time.monotonic()
        svc.process.send_signal(signal.SIGTERM)
        assert svc.process.wait(timeout=15) == 0
        assert time.monotonic() - second < 10, "the second signal ends the delay"
    finally:
        stop_service(svc)
        drop()
    log = svc.wait_for_log(lambda log: any('"stopped"' in x for x in log))
    events = lifecycle(log)
    assert events[-3:] == ["not_serving", "draining", "stopped"]
    assert events.count("not_serving") == 1


def test_purge_requests_forgets_old_request_ids_but_never_within_a_day(service, tenant):
    tenant.create("kept", request_id="purge-check")
    too_soon = service.cli("purge-requests", "--older-than", "60", check=False)
    assert too_soon.returncode == 2 and "24 hours" in too_soon.stderr
    assert json.loads(service.cli("purge-requests").stdout)["purged"] >= 0
    replay = tenant.create("kept", request_id="purge-check")
    assert replay.idempotency_status == pb.IDEMPOTENCY_STATUS_REPLAYED


UPGRADE_PROBE = """
import json, sys
from server.domain.model import *
from server.service import events, notes, subjects
from server.store import db, migrations
engine = db.open_database(sys.argv[1], pool_size=2)
events.record = lambda *args, **kwargs: None  # version 1 had no change feed
migrations.migrate(engine, target=1)
before = migrations.current_version(engine)
p = Principal("o", Author(AuthorType.USER, "u"), frozenset(["notes:write", "subjects:write"]))
subjects.upsert_subject(p, Subject(SubjectType.CUSTOMER, "c"))
# A note as version 1 stored it (today's code writes columns a version-1 schema lacks).
ph = ", ".join([engine.database.param] * 24)
engine.database.execute_sql(
    "INSERT INTO notes (id, org, subject_type, subject_id, note_type, title, body, visibility,"
    " tags, links, metadata, source, source_type, author_type, author_id, author_name,"
    " created_via, api_key_id, purpose, happened_at, create_time, update_time, delete_time,"
    f" version) VALUES ({ph})",
    ("note_01JAAAAAAAAAAAAAAAAAAAAAAA", "o", "customer", "c", "NOTE", "", "kept",
     "internal", "[]", "[]", "{}", "", "", "user", "u", "", "grpc", "", "", None, 1, 1,
     None, 1),
)
migrations.migrate(engine)
body = notes.get_note(p, note_id="note_01JAAAAAAAAAAAAAAAAAAAAAAA").body
from server.store import search, uow
with uow.reading():  # found through the search index the migrations built
    found = [n.body for n in search.list_notes("o", ListQuery(query="kept"), before=0, limit=2,
                                              offset=0)]
print(json.dumps({"before": before, "after": migrations.current_version(engine), "body": body,
                  "found": found}))
"""


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_an_older_database_upgrades_in_place_without_loss(engine, tmp_path):
    assert run_on_fresh_database(engine, tmp_path, UPGRADE_PROBE) == {
        "before": 1,
        "after": migrations.LATEST,
        "body": "kept",
        "found": ["kept"],
    }
