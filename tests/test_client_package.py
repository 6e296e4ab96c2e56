"""clients/python (`notes-client`) installed into fresh venvs, with the oldest and the newest
protobuf/grpcio it supports, and used against the live service. Needs PyPI (pip's cache
makes repeats quick)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import ROOT

CLIENT = ROOT / "clients" / "python"
PINS = {
    "oldest": ["protobuf==5.26.1", "grpcio==1.62.*"],
    "newest": ["--upgrade", "protobuf", "grpcio"],
}
SERVER_ONLY = {"peewee", "starlette", "uvicorn", "psycopg", "psycopg-binary", "notes-service"}

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import grpc
    import google.protobuf
    from notes_client import NotesClient, NotesError, pb

    target, secret = sys.argv[1], sys.argv[2]
    out = {"protobuf": google.protobuf.__version__, "grpcio": grpc.__version__}
    order = pb.SubjectRef(type=pb.SUBJECT_TYPE_ORDER, id="723")
    with NotesClient(target, api_key=secret) as notes:
        first = notes.create_note(pb.Note(subject=order, body="from the client"))
        again = notes.create_note(pb.Note(subject=order, body="a replay"), request_id="rq-1")
        replay = notes.create_note(pb.Note(subject=order, body="a replay"), request_id="rq-1")
        out["replayed_same_note"] = again.id == replay.id
        for i in range(5):
            notes.create_note(pb.Note(subject=order, body=f"page {i}"))
        out["listed"] = len(list(notes.list_notes(order, page_size=2)))
        updated = notes.update_note(first.id, expected_version=first.version, body="changed")
        out["updated_body"] = notes.get_note(first.id).body
        try:
            notes.update_note(first.id, expected_version=first.version, body="stale")
        except NotesError as e:
            out["stale"] = [e.code.name, e.reason]
        deleted = notes.delete_note(first.id, expected_version=updated.version)
        out["deleted"] = deleted.HasField("delete_time")
        back = notes.undelete_note(first.id)
        out["undeleted"] = not back.HasField("delete_time")
        try:
            notes.create_note(pb.Note(subject=order, body=""))
        except NotesError as e:
            out["invalid"] = [e.code.name, e.reason, [f for f, _ in e.field_violations]]
        try:
            notes.get_note("note_absent")
        except NotesError as e:
            out["missing"] = [e.code.name, e.reason]
    with NotesClient(target, api_key="sk_wrong") as wrong:
        try:
            wrong.get_note(first.id)
        except NotesError as e:
            out["unauthenticated"] = e.code.name
    print(json.dumps(out))
    """
)


def _venv(tmp: Path, pins: list[str]) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", str(CLIENT), *pins],
        check=True,
        timeout=600,
    )
    return py


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("runtime", sorted(PINS))
def test_the_client_package_works_with_the_oldest_and_newest_runtimes(
    runtime, service, tenant, tmp_path
):
    py = _venv(tmp_path, PINS[runtime])
    installed = json.loads(
        subprocess.run(
            [str(py), "-m", "pip", "list", "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    names = {p["name"].lower() for p in installed}
    assert "notes-client" in names
    assert not names & SERVER_ONLY, "the client must not install the server"
    script = tmp_path / "use.py"
    script.write_text(SCRIPT)
    run = subprocess.run(
        [
            str(py),
            "-W",
            "error::DeprecationWarning",
            str(script),
            service.grpc_target,
            tenant.secret,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the checkout: nothing of the server on the path
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    if runtime == "oldest":
        assert out["protobuf"] == "5.26.1" and out["grpcio"].startswith("1.62.")
    else:
        assert int(out["protobuf"].split(".")[0]) >= 6
    assert out["replayed_same_note"] is True
    assert out["listed"] == 7  # every page
    assert out["updated_body"] == "changed"
    assert out["stale"] == ["ABORTED", "VERSION_MISMATCH"]
    assert out["deleted"] is True and out["undeleted"] is True
    assert out["invalid"][0] == "INVALID_ARGUMENT" and "note.body" in out["invalid"][2]
    assert out["missing"] == ["NOT_FOUND", "NOTE_NOT_FOUND"]
    assert out["unauthenticated"] == "UNAUTHENTICATED"


def _serialized(pb2_file: Path) -> bytes:
    """The FileDescriptorProto a generated _pb2 module registers, read without importing it."""
    import ast

    for node in ast.walk(ast.parse(pb2_file.read_text())):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "AddSerializedFile"
            and node.args
        ):
            return ast.literal_eval(node.args[0])
    raise AssertionError(f"no descriptor in {pb2_file}")


def test_the_client_stubs_are_generated_from_the_current_contract():
    server = sorted((ROOT / "generated" / "notes" / "v1").glob("*_pb2.py"))
    client_dir = CLIENT / "src" / "notes_client" / "_gen" / "notes" / "v1"
    client = sorted(client_dir.glob("*_pb2.py"))
    assert [p.name for p in client] == [p.name for p in server], "run `make generate-client`"
    for s, c in zip(server, client, strict=True):
        assert _serialized(c) == _serialized(s), f"{c.name} is stale: run `make generate-client`"
