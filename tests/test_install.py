"""Lean, reproducible installs: the lock pins everything and moves the grpcio family together;
a PostgreSQL URL without the postgres extra says what to install."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import ROOT


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_the_lock_pins_every_dependency_and_the_grpcio_family_together():
    pins = _lock()
    for name in ("grpcio", "protobuf", "peewee", "psycopg", "pytest", "prometheus-client"):
        assert name in pins, name
    family = {k: v for k, v in pins.items() if k == "grpcio" or k.startswith("grpcio-")}
    assert len(family) >= 5
    minors = {".".join(v.split(".")[:2]) for v in family.values()}
    assert len(minors) == 1, family


def test_a_postgres_url_without_the_driver_names_the_extra():
    code = (
        "import sys; sys.modules['psycopg'] = None\n"  # as if the extra were not installed
        "from server.store import db\n"
        "try:\n"
        "    db.open_database('postgresql://postgres@127.0.0.1:1/x')\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert "notes-service[postgres]" in out.stdout, out.stderr


def test_serving_needs_none_of_the_test_tools_nor_the_postgres_driver():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"]).lower()
    # (httpx is the webhook sender's HTTP client, so serving needs it.)
    for tool in ("pytest", "ruff", "hypothesis", "grpcio-tools", "psycopg", "schemathesis"):
        assert tool not in runtime, tool
    assert any("psycopg" in d for d in project["optional-dependencies"]["postgres"])
