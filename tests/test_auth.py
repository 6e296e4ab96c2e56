"""Credentials, scopes and tenancy."""

from __future__ import annotations

import base64
import time

import grpc
import jwt
import pytest
from notes.v1 import notes_pb2 as pb
from notes.v1 import notes_pb2_grpc as pb_grpc

from server.domain.model import SubjectType
from server.service import credentials
from server.service.clock import now_us
from server.store import uow
from server.store.models import ApiKeyRow

from .conftest import JWT_SECRET, error_info

CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")


def call(tenant, authorization: str | None, request=None):
    md = (("authorization", authorization),) if authorization is not None else ()
    return tenant.notes.ListNotes(request or pb.ListNotesRequest(subject=CUS_1), metadata=md)


def refused(tenant, authorization, code=grpc.StatusCode.UNAUTHENTICATED) -> str:
    with pytest.raises(grpc.RpcError) as e:
        call(tenant, authorization)
    assert e.value.code() == code
    return error_info(e.value).reason


def test_no_credentials_is_unauthenticated(tenant):
    assert refused(tenant, None) == "CREDENTIALS_MISSING"
    assert refused(tenant, "Digest abc") == "CREDENTIALS_MALFORMED"
    assert refused(tenant, "Basic !!!") == "CREDENTIALS_MALFORMED"


def test_a_key_works_as_bearer_and_as_basic(tenant):
    call(tenant, f"Bearer {tenant.secret}")
    basic = base64.b64encode(f"{tenant.key_id}:{tenant.secret}".encode()).decode()
    call(tenant, f"Basic {basic}")
    secret_only = base64.b64encode(f"{tenant.secret}:".encode()).decode()
    call(tenant, f"Basic {secret_only}")


def test_wrong_secrets_are_refused(tenant):
    assert refused(tenant, "Bearer sk_wrong") == "API_KEY_INVALID"
    basic = base64.b64encode(f"{tenant.key_id}:sk_wrong".encode()).decode()
    assert refused(tenant, f"Basic {basic}") == "API_KEY_INVALID"


def test_a_revoked_key_stops_working_within_the_cache_period(tenant):
    key = credentials.create_key(tenant.org, "user_2", "Other", ["notes:read"], "tests")
    bearer = f"Bearer {key.secret}"
    access = pb_grpc.AccessServiceStub(tenant.channel)
    check = pb.CheckAccessRequest(scopes=["notes:read"])
    access.CheckAccess(check, metadata=(("authorization", bearer),))  # now in the cache
    assert credentials.revoke_key(key.key_id)
    revoked = time.monotonic()
    # A look-up the server has not cached (by key id) sees the revocation at once.
    basic = base64.b64encode(f"{key.key_id}:{key.secret}".encode()).decode()
    assert refused(tenant, f"Basic {basic}") == "API_KEY_REVOKED"
    # The cached one within CACHE_SECONDS: polled back to back, each call the next probe, so
    # the first refusal is seen within one call of the cache entry's expiry.
    while True:
        try:
            access.CheckAccess(check, metadata=(("authorization", bearer),), timeout=5)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAUTHENTICATED
            assert error_info(e).reason == "API_KEY_REVOKED"
            break
        # The entry was loaded before the revocation, so it expires less than CACHE_SECONDS
        # after it; the extra second is for scheduling on a busy machine.
        elapsed = time.monotonic() - revoked
        assert elapsed < credentials.CACHE_SECONDS + 1, "a revoked key still works"


def test_an_expired_key_is_refused(tenant):
    live = credentials.create_key(tenant.org, "u", "U", ["notes:read"], "t", 3600)
    stored = {k["key_id"]: k for k in credentials.list_keys(tenant.org)}[live.key_id]
    assert stored["expire_time"] == stored["create_time"] + 3600 * 1_000_000
    call(tenant, f"Bearer {live.secret}")
    # create_key takes only a lifetime in the future, so the store is told the key has
    # expired: its expiry is moved to now, before the server ever looked it up.
    ended = credentials.create_key(tenant.org, "u", "U", ["notes:read"], "t", 3600)
    with uow.writing():
        ApiKeyRow.update(expire_time=now_us()).where(ApiKeyRow.key_id == ended.key_id).execute()
    assert refused(tenant, f"Bearer {ended.secret}") == "API_KEY_EXPIRED"
    call(tenant, f"Bearer {live.secret}")  # the other key of the same organization still works


def test_jwts_signed_with_the_secret_work(tenant):
    token = credentials.mint_token(JWT_SECRET, tenant.org, "user_7", ["notes:read"])
    call(tenant, f"Bearer {token}")


def test_tampered_unsigned_and_expired_jwts_are_refused(tenant):
    good = credentials.mint_token(JWT_SECRET, tenant.org, "user_7", ["notes:read"])
    head, payload, sig = good.split(".")
    forged_payload = (
        base64.urlsafe_b64encode(
            b'{"actor_id":"user_7","org":"' + tenant.org.encode() + b'","scopes":["notes:write"],'
            b'"exp":9999999999}'
        )
        .rstrip(b"=")
        .decode()
    )
    assert refused(tenant, f"Bearer {head}.{forged_payload}.{sig}") == "TOKEN_INVALID"
    unsigned = jwt.encode(
        {"actor_id": "u", "org": tenant.org, "scopes": ["notes:read"], "exp": 9999999999},
        key=None,
        algorithm="none",
    )
    assert refused(tenant, f"Bearer {unsigned}") == "TOKEN_INVALID"
    other_key = jwt.encode(
        {"actor_id": "u", "org": tenant.org, "scopes": ["notes:read"], "exp": 9999999999},
        "another-secret-of-enough-length-32b",
        algorithm="HS256",
    )
    assert refused(tenant, f"Bearer {other_key}") == "TOKEN_INVALID"
    expired = jwt.encode(
        {"actor_id": "u", "org": tenant.org, "scopes": ["notes:read"], "exp": 1},
        JWT_SECRET,
        algorithm="HS256",
    )
    assert refused(tenant, f"Bearer {expired}") == "TOKEN_EXPIRED"
    no_exp = jwt.encode({"actor_id": "u", "org": tenant.org}, JWT_SECRET, algorithm="HS256")
    assert refused(tenant, f"Bearer {no_exp}") == "TOKEN_INVALID"


def test_a_jwt_without_org_acts_in_the_default_organization(tenant):
    token = jwt.encode(
        {"actor_id": "u", "scopes": ["notes:read"], "exp": int(time.time()) + 60},
        JWT_SECRET,
        algorithm="HS256",
    )
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.GetNote(
            pb.GetNoteRequest(id=tenant.create().note.id),
            metadata=(("authorization", f"Bearer {token}"),),
        )
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_scopes_gate_each_method(tenant):
    reader = (("authorization", f"Bearer {tenant.key(['notes:read'])}"),)
    registrar = (("authorization", f"Bearer {tenant.key(['subjects:write'])}"),)
    note = tenant.create().note
    tenant.notes.GetNote(pb.GetNoteRequest(id=note.id), metadata=reader)
    tenant.notes.ListNotes(pb.ListNotesRequest(subject=CUS_1), metadata=reader)
    for method, request in [
        (tenant.notes.CreateNote, pb.CreateNoteRequest(note=pb.Note(subject=CUS_1, body="x"))),
        (tenant.notes.UpdateNote, pb.UpdateNoteRequest(note=pb.Note(id=note.id, body="x"))),
        (tenant.notes.DeleteNote, pb.DeleteNoteRequest(id=note.id)),
        (tenant.notes.UndeleteNote, pb.UndeleteNoteRequest(id=note.id)),
        (
            tenant.subjects.UpsertSubject,
            pb.UpsertSubjectRequest(subject=pb.Subject(type=pb.SUBJECT_TYPE_CUSTOMER, id="c9")),
        ),
    ]:
        with pytest.raises(grpc.RpcError) as e:
            method(request, metadata=reader)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(e.value).reason == "MISSING_SCOPE"
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.GetNote(pb.GetNoteRequest(id=note.id), metadata=registrar)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    tenant.subjects.UpsertSubject(
        pb.UpsertSubjectRequest(subject=pb.Subject(type=pb.SUBJECT_TYPE_CUSTOMER, id="c9")),
        metadata=registrar,
    )


def test_permission_is_checked_before_existence(tenant):
    reader = (("authorization", f"Bearer {tenant.key(['notes:read'])}"),)
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.DeleteNote(pb.DeleteNoteRequest(id="note_absent"), metadata=reader)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_another_organizations_notes_and_subjects_are_not_found(tenant, other_tenant):
    note = tenant.create("secret", tags=["t"]).note
    for method, request in [
        (other_tenant.notes.GetNote, pb.GetNoteRequest(id=note.id)),
        (other_tenant.notes.GetNote, pb.GetNoteRequest(number=note.number)),
        (other_tenant.notes.UpdateNote, pb.UpdateNoteRequest(note=pb.Note(id=note.id, body="x"))),
        (other_tenant.notes.DeleteNote, pb.DeleteNoteRequest(id=note.id)),
        (other_tenant.notes.UndeleteNote, pb.UndeleteNoteRequest(id=note.id)),
        (other_tenant.notes.GetNoteHistory, pb.GetNoteHistoryRequest(id=note.id)),
    ]:
        with pytest.raises(grpc.RpcError) as e:
            method(request, metadata=other_tenant.auth)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    listed = other_tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, query="secret"), metadata=other_tenant.auth
    )
    assert note.id not in [n.id for n in listed.notes]
    for request in (pb.ListNotesRequest(tags=["t"]), pb.ListNotesRequest(query="secret")):
        listed = other_tenant.notes.ListNotes(request, metadata=other_tenant.auth)
        assert not listed.notes
    unchanged = tenant.notes.GetNote(pb.GetNoteRequest(id=note.id), metadata=tenant.auth).note
    assert unchanged.version == 1 and unchanged.body == "secret"


def test_a_subject_of_another_organization_is_not_registered_here(tenant, other_tenant):
    tenant.register(SubjectType.CUSTOMER, "only_mine")
    with pytest.raises(grpc.RpcError) as e:
        other_tenant.create(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="only_mine"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(e.value).reason == "SUBJECT_NOT_FOUND"


def test_health_and_reflection_need_no_credentials(channel):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    assert stub.Check(health_pb2.HealthCheckRequest()).status == 1
    resp = stub.Check(health_pb2.HealthCheckRequest(service="notes.v1.NotesService"))
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as e:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_check_access_reports_the_caller_and_refuses_missing_scopes(tenant):
    from notes.v1 import notes_pb2_grpc

    access = notes_pb2_grpc.AccessServiceStub(tenant.channel)
    writer = access.CheckAccess(
        pb.CheckAccessRequest(scopes=["notes:read", "notes:write"]), metadata=tenant.auth
    )
    assert writer.organization == tenant.org and writer.actor.id == "user_1"
    assert writer.requested_via.api_key_id == tenant.key_id
    reader = (("authorization", f"Bearer {tenant.key(['notes:read'])}"),)
    access.CheckAccess(pb.CheckAccessRequest(scopes=["notes:read"]), metadata=reader)
    with pytest.raises(grpc.RpcError) as e:
        access.CheckAccess(pb.CheckAccessRequest(scopes=["notes:write"]), metadata=reader)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as e:
        access.CheckAccess(pb.CheckAccessRequest(scopes=["root"]), metadata=reader)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        access.CheckAccess(pb.CheckAccessRequest())
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
