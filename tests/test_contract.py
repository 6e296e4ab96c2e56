"""buf breaking against proto-baseline/: additions pass, a renumbered or removed field fails."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .conftest import ROOT

BUF = ROOT / ".tools" / "node_modules" / ".bin" / "buf"


def _breaking(proto_dir) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BUF), "breaking", "--against", str(ROOT / "proto-baseline")],
        cwd=proto_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def proto(tmp_path):
    if not BUF.exists():
        pytest.skip("buf is installed by `make lint`")
    copy = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", copy)
    return copy


def test_the_current_contract_is_compatible_with_the_baseline(proto):
    assert _breaking(proto).returncode == 0


def test_additions_pass_and_a_renumbered_field_fails(proto):
    notes = proto / "notes" / "v1" / "notes.proto"
    (proto / "notes" / "v1" / "extra.proto").write_text(
        'syntax = "proto3";\npackage notes.v1;\nmessage ExtraThing {\n  string id = 1;\n}\n'
    )
    text = notes.read_text()
    notes.write_text(
        text.replace("  int64 version = 20;", "  int64 version = 20;\n  string x = 99;")
    )
    assert _breaking(proto).returncode == 0
    notes.write_text(text.replace("  int64 version = 20;", "  int64 version = 98;"))
    broken = _breaking(proto)
    assert broken.returncode != 0 and "version" in broken.stdout + broken.stderr
