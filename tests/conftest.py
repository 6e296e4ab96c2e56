"""Fixtures: a real `notes serve` process per database engine, and tenants to call it as.

Every test that uses `service` runs once on SQLite and once on PostgreSQL when
NOTES_TEST_POSTGRES_URL is set. Each run works in a fresh schema (or file) and drops it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg
import pytest
from cryptography.fernet import Fernet
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from notes.v1 import notes_pb2 as pb
from notes.v1 import notes_pb2_grpc as pb_grpc

from server.domain.model import Subject, SubjectType
from server.service import credentials, subjects
from server.store import db, migrations

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_URL = os.environ.get("NOTES_TEST_POSTGRES_URL", "")
JWT_SECRET = "test-secret-" + secrets.token_hex(16)
# One server key for the services under test and this process, which makes keys directly.
os.environ.setdefault("NOTES_SECRET_KEYS", Fernet.generate_key().decode())
ENGINES = ["sqlite"] + (["postgres"] if PG_URL else [])


@dataclass
class Service:
    engine: str
    database_url: str
    grpc_port: int
    http_port: int
    process: subprocess.Popen
    env: dict[str, str]
    log: list[str] = field(default_factory=list)
    metrics_port: int = 0
    log_changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for_log(self, predicate, timeout: float = 10.0) -> list[str]:
        """The log once predicate(lines) holds; the drain thread notifies on every line."""
        with self.log_changed:
            assert self.log_changed.wait_for(lambda: predicate(self.log), timeout), "log timeout"
            return list(self.log)

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "notes"), *args],
            env=self.env,
            cwd=self.env["NOTES_TEST_CWD"],
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )


def make_database(engine: str, tmp: Path) -> tuple[str, callable]:
    """A fresh database URL and a function that drops it."""
    if engine == "sqlite":
        return f"sqlite:///{tmp}/notes.db", lambda: None
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}schema={schema}", drop


def run_on_fresh_database(engine: str, tmp: Path, script: str):
    """What script (Python, given the database URL as argv[1]) prints as JSON, run in a
    process of its own against a fresh database of the engine, dropped afterwards."""
    if engine == "postgres" and not PG_URL:
        pytest.skip("NOTES_TEST_POSTGRES_URL is not set")
    url, drop = make_database(engine, tmp)
    try:
        probe = subprocess.run(
            [sys.executable, "-c", script, url],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp,
        )
        assert probe.returncode == 0, probe.stderr
        return json.loads(probe.stdout)
    finally:
        drop()


def start_service(
    database_url: str,
    cwd: Path,
    *extra: str,
    env_extra=None,
    prefix: tuple[str, ...] = (),
    stdout=subprocess.DEVNULL,
) -> Service:
    """The service in a process of its own; prefix is a command that runs it (prlimit, say).
    No preexec_fn: Python code between fork and exec, in a process holding gRPC channels,
    once crashed the child before exec (gRPC's poller: epoll_wait EBADF)."""
    env = {
        **os.environ,
        "NOTES_DATABASE_URL": database_url,
        "NOTES_JWT_SECRET": JWT_SECRET,
        "NOTES_GRPC_ADDR": "127.0.0.1:0",
        "NOTES_HTTP_ADDR": "127.0.0.1:0",
        "NOTES_METRICS_ADDR": "127.0.0.1:0",
        "NOTES_PUBLIC_BASE_URL": "https://shop.example.com",
        "NOTES_APP_BASE_URL": "https://app.example.com",
        "NOTES_TEST_CWD": str(cwd),
        "PYTHONUNBUFFERED": "1",
        # Webhook receivers in tests listen on 127.0.0.1, and retry within a second.
        "NOTES_WEBHOOK_ALLOW_PRIVATE": "1",
        "NOTES_WEBHOOK_RETRY_SECONDS": "0.2,0.2,0.2",
        **(env_extra or {}),
    }
    process = subprocess.Popen(
        [*prefix, str(BIN / "notes"), "serve", *extra],
        env=env,
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ready: dict = {}
    for line in process.stderr:  # blocks until the server says it serves, or exits
        lines.append(line)
        if '"event": "serving"' in line:
            ready = json.loads(line)
            break
    if not ready:
        process.wait(timeout=10)
        raise RuntimeError("the service did not start:\n" + "".join(lines))
    service = Service(
        engine="",
        database_url=database_url,
        grpc_port=ready["grpc_port"],
        http_port=ready.get("http_port", 0),
        process=process,
        env=env,
        log=lines,
        metrics_port=ready.get("metrics_port", 0),
    )

    def drain() -> None:  # keep reading so the pipe never fills
        for line in process.stderr:
            with service.log_changed:
                lines.append(line)
                service.log_changed.notify_all()

    threading.Thread(target=drain, daemon=True).start()
    return service


def records(lines: list[str]) -> list[dict]:
    """Every log line, parsed (each is one JSON object)."""
    return [json.loads(x) for x in lines if x.strip()]


def lifecycle(lines: list[str]) -> list[str]:
    """The process's own events (serving, not_serving, draining, stopped), in order."""
    return [r["event"] for r in records(lines) if r["logger"] == "notes"]


def rpc_lines(lines: list[str]) -> list[dict]:
    """The gRPC access log lines."""
    return [r for r in records(lines) if r["logger"] == "notes.access" and r["event"] == "rpc"]


def http_lines(lines: list[str]) -> list[dict]:
    """The gateway's access log lines."""
    return [r for r in records(lines) if r["logger"] == "notes.http" and r["event"] == "http"]


def stop_service(service: Service) -> None:
    if service.process.poll() is None:
        service.process.terminate()
        try:
            service.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


@pytest.fixture(scope="session", params=ENGINES)
def service(request, tmp_path_factory):
    engine = request.param
    tmp = tmp_path_factory.mktemp(engine)
    url, drop = make_database(engine, tmp)
    svc = start_service(url, tmp)
    svc.engine = engine
    # The test process opens the same store to set up keys and subjects quickly.
    db.open_database(url, pool_size=4)
    migrations.migrate(db.current())
    yield svc
    stop_service(svc)
    db.close()
    drop()


@pytest.fixture(scope="session")
def channel(service):
    with grpc.insecure_channel(service.grpc_target) as ch:
        yield ch


ALL_SCOPES = ["notes:read", "notes:write", "subjects:write"]


@dataclass
class Tenant:
    """One organization with a key, and registered subjects of every kind."""

    org: str
    key_id: str
    secret: str
    channel: grpc.Channel
    actor_id: str = "user_1"

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.secret}"),)

    @property
    def notes(self) -> pb_grpc.NotesServiceStub:
        return pb_grpc.NotesServiceStub(self.channel)

    @property
    def subjects(self) -> pb_grpc.SubjectsServiceStub:
        return pb_grpc.SubjectsServiceStub(self.channel)

    @property
    def access(self) -> pb_grpc.AccessServiceStub:
        return pb_grpc.AccessServiceStub(self.channel)

    def register(self, subject_type: SubjectType, subject_id: str, parent_id: str = "") -> None:
        register(self.org, subject_type, subject_id, parent_id)

    def key(self, scopes: list[str] | None = None, **kwargs) -> str:
        """A further key of this organization; returns its secret."""
        return credentials.create_key(
            self.org,
            kwargs.get("actor_id", "user_2"),
            kwargs.get("name", "Other"),
            scopes or ALL_SCOPES,
            "tests",
            kwargs.get("expires_in"),
        ).secret

    def create(
        self, body: str = "hello", *, subject=None, request_id: str = "", timeout=None, **fields
    ):
        subject = subject or pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")
        note = pb.Note(subject=subject, body=body, **fields)
        return self.notes.CreateNote(
            pb.CreateNoteRequest(note=note, request_id=request_id),
            metadata=self.auth,
            timeout=timeout,
        )


def page_through(stub, auth, subject, page_size: int) -> list[str]:
    """The ids of every page of a subject's list, following next_page_token to the end."""
    seen: list[str] = []
    token = ""
    while True:
        resp = stub.ListNotes(
            pb.ListNotesRequest(subject=subject, page_size=page_size, page_token=token),
            metadata=auth,
        )
        seen.extend(n.id for n in resp.notes)
        token = resp.next_page_token
        if not token:
            return seen


def register(org: str, subject_type: SubjectType, subject_id: str, parent_id: str = "") -> None:
    from server.domain.model import Author, AuthorType, Principal

    principal = Principal(org, Author(AuthorType.SYSTEM, "tests"), frozenset(ALL_SCOPES))
    subjects.upsert_subject(principal, Subject(subject_type, subject_id, parent_id))


def new_tenant(channel, **key_kwargs) -> Tenant:
    org = "org_" + uuid.uuid4().hex[:10]
    key = credentials.create_key(org, "user_1", "Jordan Buyer", ALL_SCOPES, "tests")
    for t, i in [
        (SubjectType.CUSTOMER, "cus_1"),
        (SubjectType.CUSTOMER, "cus_2"),
        (SubjectType.ORDER, "723"),
        (SubjectType.SUPPLIER, "sup_1"),
        (SubjectType.PRODUCT, "prod_1"),
        (SubjectType.CONTACT, "con_1"),
        (SubjectType.LOCATION, "loc_1"),
    ]:
        register(org, t, i)
    register(org, SubjectType.ORDER_ITEM, "item_1", "723")
    return Tenant(org, key.key_id, key.secret, channel)


@pytest.fixture
def tenant(channel) -> Tenant:
    return new_tenant(channel)


@pytest.fixture
def other_tenant(channel) -> Tenant:
    return new_tenant(channel)


def error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert len(infos) == 1, "exactly one ErrorInfo"
    return infos[0]


def bad_fields(err: grpc.RpcError) -> set[str]:
    status = rpc_status.from_call(err)
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            return {v.field for v in br.field_violations}
    return set()
