"""What operators touch: grpcurl by reflection, health, the CLI, logs, shutdown, migrations."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from notes.v1 import notes_pb2 as pb

from server.store import migrations

from .conftest import PG_URL, make_database, start_service

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
        lines = [json.loads(x) for x in log if x.startswith('{"method"')]
        return [x for x in lines if x["org"] == tenant.org]

    mine = access(service.wait_for_log(lambda log: len(access(log)) >= 2))
    assert {"method", "code", "ms", "org", "request_id"} <= set(mine[0])
    assert any(x["request_id"] == "log-check" and x["code"] == "OK" for x in mine)
    assert any(x["code"] == "NOT_FOUND" for x in mine)
    text = "".join(service.log)
    assert marker not in text and tenant.secret not in text


def test_sigterm_turns_health_to_not_serving_and_exits_cleanly(tmp_path):
    url, drop = make_database("sqlite", tmp_path)
    svc = start_service(url, tmp_path, "--no-http")
    try:
        with grpc.insecure_channel(svc.grpc_target) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            svc.process.send_signal(signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
        assert svc.process.wait(timeout=15) == 0
    finally:
        if svc.process.poll() is None:
            svc.process.kill()
        drop()
    log = svc.wait_for_log(lambda log: any('"stopped"' in x for x in log))
    events = [json.loads(x)["event"] for x in log if x.startswith('{"event"')]
    assert events[-3:] == ["not_serving", "draining", "stopped"]


def test_sigterm_lets_in_flight_calls_finish_and_refuses_new_ones(tmp_path):
    import queue

    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    url, drop = make_database("sqlite", tmp_path)
    svc = start_service(url, tmp_path, "--no-http", env_extra={"NOTES_GRACE_SECONDS": "20"})
    try:
        with grpc.insecure_channel(svc.grpc_target) as ch:
            asks: queue.Queue = queue.Queue()

            def requests():
                while (item := asks.get()) is not None:
                    yield item

            stream = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(requests())
            asks.put(reflection_pb2.ServerReflectionRequest(list_services=""))
            assert next(stream).list_services_response.service  # in flight
            svc.process.send_signal(signal.SIGTERM)
            svc.wait_for_log(lambda log: any('"draining"' in x for x in log))
            with grpc.insecure_channel(svc.grpc_target) as fresh:
                with pytest.raises(grpc.RpcError) as e:
                    health_pb2_grpc.HealthStub(fresh).Check(
                        health_pb2.HealthCheckRequest(), timeout=5
                    )
                assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
            # The call that was in flight still gets its answers, then ends cleanly.
            asks.put(reflection_pb2.ServerReflectionRequest(list_services=""))
            assert next(stream).list_services_response.service
            assert svc.process.poll() is None, "the process waits for the in-flight call"
            asks.put(None)
            assert list(stream) == []
        assert svc.process.wait(timeout=15) == 0
    finally:
        if svc.process.poll() is None:
            svc.process.kill()
        drop()


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
from server.service import notes, subjects
from server.store import db, migrations
engine = db.open_database(sys.argv[1], pool_size=2)
migrations.migrate(engine, target=1)
before = migrations.current_version(engine)
p = Principal("o", Author(AuthorType.USER, "u"), frozenset(["notes:write", "subjects:write"]))
subjects.upsert_subject(p, Subject(SubjectType.CUSTOMER, "c"))
ref = SubjectRef(SubjectType.CUSTOMER, "c")
note = notes.create_note(p, NoteFields(subject=ref, body="kept")).note
migrations.migrate(engine)
body = notes.get_note(p, note_id=note.id).body
print(json.dumps({"before": before, "after": migrations.current_version(engine), "body": body}))
"""


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_an_older_database_upgrades_in_place_without_loss(engine, tmp_path):
    if engine == "postgres" and not PG_URL:
        pytest.skip("NOTES_TEST_POSTGRES_URL is not set")
    url, drop = make_database(engine, tmp_path)
    try:
        probe = subprocess.run(
            [sys.executable, "-c", UPGRADE_PROBE, url],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            cwd=tmp_path,
        )
        assert json.loads(probe.stdout) == {
            "before": 1,
            "after": migrations.LATEST,
            "body": "kept",
        }
    finally:
        drop()
