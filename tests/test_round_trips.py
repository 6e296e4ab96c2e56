"""PostgreSQL: what a read costs in round trips, counted on the wire, and pooled connections
the server has closed being replaced before a read uses them."""

from __future__ import annotations

import collections
import struct
import subprocess
import sys
import threading
import uuid
from urllib.parse import urlparse

import pytest

from .conftest import PG_URL, make_database
from .proxy import Proxy

pytestmark = pytest.mark.slow
STARTUP = 196608  # protocol 3.0: the last packet before typed messages


class Frontend:
    """The messages one PostgreSQL client connection sends: untyped start-up packets (an
    SSL or GSS request, the start-up message), then a type byte and a length each. A Sync
    ends an extended query and a Query is a simple one: each is one round trip."""

    def __init__(self, counts: collections.Counter, lock: threading.Lock) -> None:
        self.counts = counts
        self.lock = lock
        self.buffer = b""
        self.started = False

    def __call__(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return
                length, code = struct.unpack("!ii", self.buffer[:8])
                kind, size = None, length
                self.started = code == STARTUP
            else:
                if len(self.buffer) < 5:
                    return
                kind, size = self.buffer[:1], 1 + struct.unpack("!i", self.buffer[1:5])[0]
            if len(self.buffer) < size:
                return
            self.buffer = self.buffer[size:]
            if kind is not None:
                with self.lock:
                    self.counts[kind] += 1


READS = """
import sys
from server.domain.model import *
from server.domain.paging import PageTokens
from server.service import notes, subjects
from server.store import db, migrations

engine = db.open_database(sys.argv[1], pool_size=1)
migrations.migrate(engine)
p = Principal("acme", Author(AuthorType.USER, "u"), frozenset(["notes:write", "subjects:write"]))
ref = SubjectRef(SubjectType.CUSTOMER, "c")
subjects.upsert_subject(p, Subject(ref.type, ref.id))
note = notes.create_note(p, NoteFields(subject=ref, body="hello")).note
tokens = PageTokens(b"k" * 32)
reads = {
    "GetNote": lambda: notes.get_note(p, note_id=note.id),
    "ListNotes": lambda: notes.list_notes(p, ListQuery(subject=ref), tokens),
}
for read in reads.values():
    for _ in range(10):  # past psycopg's threshold for preparing a statement
        read()
for name, read in reads.items():
    print(name, flush=True)
    sys.stdin.readline()
    read()
print("done", flush=True)
"""


def test_a_note_or_a_page_is_one_round_trip_to_postgres(tmp_path):
    if not PG_URL:
        pytest.skip("NOTES_TEST_POSTGRES_URL is not set")
    url, drop = make_database("postgres", tmp_path)
    parsed = urlparse(url)
    counts: collections.Counter = collections.Counter()
    lock = threading.Lock()
    proxy = Proxy(
        (parsed.hostname or "127.0.0.1", parsed.port or 5432), lambda: Frontend(counts, lock)
    )
    proxy.start()
    netloc = parsed.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    through = parsed._replace(
        netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host,
        query=parsed.query + "&sslmode=disable",  # a stream the test can read
    ).geturl()
    reader = subprocess.Popen(
        [sys.executable, "-c", READS, through],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        trips = {}
        name = reader.stdout.readline().strip()
        while name in ("GetNote", "ListNotes"):
            with lock:
                before = counts[b"S"] + counts[b"Q"]
            reader.stdin.write("\n")
            reader.stdin.flush()
            following = reader.stdout.readline().strip()  # printed once the read returned
            with lock:
                trips[name] = counts[b"S"] + counts[b"Q"] - before
            name = following
        assert name == "done", reader.communicate(timeout=30)
        assert reader.wait(timeout=30) == 0
        assert trips == {"GetNote": 1, "ListNotes": 1}
    finally:
        if reader.poll() is None:
            reader.kill()
        proxy.stop()
        drop()


CLOSED = """
import sys, time
import psycopg
from server.domain.model import *
from server.service import notes, subjects
from server.store import db, migrations

url, name, plain = sys.argv[1:]
engine = db.open_database(f"{url}&application_name={name}", pool_size=4)
migrations.migrate(engine)
p = Principal("acme", Author(AuthorType.USER, "u"), frozenset(["notes:write", "subjects:write"]))
ref = SubjectRef(SubjectType.CUSTOMER, "c")
subjects.upsert_subject(p, Subject(ref.type, ref.id))
note = notes.create_note(p, NoteFields(subject=ref, body="kept")).note
db.warm(4)
with psycopg.connect(plain, autocommit=True) as admin:
    ours = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
    pids = [row[0] for row in admin.execute(ours, (name,))]
    assert len(pids) == 4, pids
    for pid in pids:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)"
    while admin.execute(gone, (pids,)).fetchone()[0]:
        time.sleep(0.01)  # backends exit on their own time; nothing to wait on but this
for _ in range(5):
    assert notes.get_note(p, note_id=note.id).body == "kept"
print("read", flush=True)
"""


def test_pooled_connections_the_server_closed_are_replaced_before_a_read_uses_them(tmp_path):
    if not PG_URL:
        pytest.skip("NOTES_TEST_POSTGRES_URL is not set")
    url, drop = make_database("postgres", tmp_path)
    name = "notes_test_" + uuid.uuid4().hex[:8]
    plain = urlparse(url)._replace(query="").geturl()
    try:
        reader = subprocess.run(
            [sys.executable, "-c", CLOSED, url, name, plain],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert reader.returncode == 0, reader.stderr
        assert reader.stdout == "read\n"
    finally:
        drop()
