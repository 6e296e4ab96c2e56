"""The store's bulk path: many notes written straight into the tables, for benchmarks and imports.

Rows are exactly what notes.py and audit.py write one at a time (times in microseconds since
the epoch, tags and links as JSON, ids "note_" + ULID, number the autoincrement key), with their
note_tags and note_links index rows and a CREATE audit event each. The subjects they attach to are
registered first. Notes go in by batches, one transaction per batch:

- SQLite: executemany with explicit numbers; the full-text rows are written per batch by one
  INSERT ... SELECT while the insert trigger is dropped inside that same transaction (DDL is
  transactional in SQLite, so no other connection ever sees the table without its trigger).
- PostgreSQL: numbers reserved from the sequence, then COPY; the tsvector column is generated.

Afterwards the planner statistics are refreshed (ANALYZE) and SQLite's FTS index is merged into
one segment, as a maintenance job would after an import.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..domain.model import SubjectRef, SubjectType
from . import db

NOTE_COLUMNS = (
    "number",
    "org_number",
    "id",
    "org",
    "subject_type",
    "subject_id",
    "subject_parent_id",
    "note_type",
    "title",
    "body",
    "visibility",
    "tags",
    "links",
    "metadata",
    "source",
    "source_type",
    "author_type",
    "author_id",
    "author_name",
    "created_via",
    "api_key_id",
    "purpose",
    "happened_at",
    "create_time",
    "update_time",
    "delete_time",
    "version",
)
EVENT_COLUMNS = (
    "org",
    "note_id",
    "action",
    "actor_type",
    "actor_id",
    "actor_name",
    "surface",
    "api_key_id",
    "purpose",
    "request_id",
    "old_version",
    "new_version",
    "event_time",
)
SUBJECT_COLUMNS = ("org", "type", "external_id", "parent_id", "display_name")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# The words of the generated notes; see Dataset.search_word and search_phrase.
MATERIALS = _words("oak walnut birch teak maple pine ash cherry bamboo steel brass marble")
ITEMS = _words(
    "armchair bookcase sideboard credenza dresser ottoman bench stool sofa loveseat "
    "recliner chaise daybed futon bed headboard nightstand wardrobe armoire cabinet "
    "hutch buffet console desk table counter shelf rack cart trolley mirror lamp "
    "sconce chandelier pendant rug runner cushion pillow throw blanket curtain blind "
    "screen partition planter vase tray basket hamper crate chest trunk locker coatstand"
)
PEOPLE = _words(
    "Alice Bruno Chiara Dmitri Elena Farid Greta Hiro Ines Jonas Keiko Liam Marta Nils "
    "Olga Pavel Quinn Rosa Sanjay Tomas Ursula Viktor Wanda Xavier Yara Zoltan"
)
PLACES = _words(
    "Rotterdam Lyon Porto Gdansk Leipzig Bilbao Turin Graz Malmo Ghent Brno Aarhus Cork"
)
DAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday")
TAGS = _words(
    "vip follow-up billing complaint quote sample delivery returns wholesale retail "
    "urgent callback warranty trade-show reorder"
)
_SENTENCES = (
    "Called {person} about the {product}.",
    "{person} asked for a quote on {qty} units of the {product}.",
    "The delivery window moved to {day}; the loading dock in {place} closes early.",
    "Sent a sample of the {product} and the {product} to {person}.",
    "Invoice {num} was paid late, follow up with {person} next week.",
    "The {product} arrived damaged; photos attached and a replacement requested.",
    "Meeting with {person} in {place} went well, they want the {product} in stock by {day}.",
    "Customer prefers email over phone calls and asks us not to call before ten.",
    "Reminder: the {product} is discontinued, offer the {product} instead.",
    "{person} confirmed the order {num} and paid the deposit.",
    "Warehouse in {place} reports {qty} units of the {product} left.",
    "Discussed trade terms with {person}: net thirty days, free shipping above {qty} units.",
    "Returned {qty} units of the {product}, credit note {num} issued.",
    "Left a voicemail for {person} about the missing pallet.",
    "The showroom in {place} wants the {product} for the spring display.",
    "Price list sent to {person}; they compare us with a supplier in {place}.",
)
_TITLES = (
    "Call with {person}",
    "Quote {num}",
    "Follow-up: {product}",
    "Visit in {place}",
    "Order {num}",
    "Complaint about the {product}",
)
_NOTE_TYPES = ("NOTE",) * 12 + ("EMAIL", "PHONE_MEETING", "QUOTE", "SAMPLE_REQUEST")
_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)
YEAR_US = 365 * 24 * 3600 * 1_000_000


def ulid_string(ms: int, randomness: int) -> str:
    """The 26-character ULID of a millisecond time and 80 random bits."""
    value = ((ms & (2**48 - 1)) << 80) | (randomness & (2**80 - 1))
    # 130 bits of base32 are 2 zero bits and the 128-bit value: pad it to 136 bits (17 bytes).
    return base64.b32encode((value << 6).to_bytes(17, "big"))[:26].translate(_CROCKFORD).decode()


def hot_subjects(count: int) -> list[SubjectRef]:
    """The subjects holding the most notes: a customer, a numeric order (WooCommerce style)
    and a UUID order (NewStore style), then more customers."""
    base = [
        SubjectRef(SubjectType.CUSTOMER, "cus_hot_1"),
        SubjectRef(SubjectType.ORDER, "900001"),
        SubjectRef(SubjectType.ORDER, str(uuid.uuid5(uuid.NAMESPACE_URL, "notes-bench-order"))),
    ]
    extra = [SubjectRef(SubjectType.CUSTOMER, f"cus_hot_{i}") for i in range(2, count)]
    return (base + extra)[:count]


@dataclass
class Dataset:
    """What was loaded, for the caller to aim requests at."""

    org: str
    notes: int
    subjects: int
    hot: list[SubjectRef]
    hot_size: int
    first_number: int = 0
    last_number: int = 0
    seconds: float = 0.0
    search_word: str = "sideboard"  # in about 2% of notes
    search_phrase: str = "walnut sideboard"  # in about 0.2% of notes
    phases: dict[str, float] = field(default_factory=dict)


def _subject_plan(n: int, hot: list[SubjectRef], rng: random.Random) -> list[tuple[str, str, str]]:
    """(type, id, parent_id) of n subjects: the hot ones first, then a mix of every kind."""
    plan = [(s.type.value, s.id, s.parent_id) for s in hot]
    orders: list[str] = [s.id for s in hot if s.type is SubjectType.ORDER]
    i = 0
    while len(plan) < n:
        i += 1
        roll = i % 20
        if roll < 8:
            plan.append(("customer", f"cus_{i:07d}", ""))
        elif roll < 13:
            order = str(100000 + i) if roll % 2 else str(uuid.UUID(int=rng.getrandbits(128)))
            orders.append(order)
            plan.append(("order", order, ""))
        elif roll < 16 and orders:
            plan.append(("order_item", f"item_{i:07d}", rng.choice(orders)))
        elif roll < 18:
            plan.append(("supplier", f"sup_{i:07d}", ""))
        elif roll < 19:
            plan.append(("product", f"prod_{i:07d}", ""))
        else:
            plan.append(("contact" if i % 40 == 19 else "location", f"rec_{i:07d}", ""))
    return plan[:n]


class _Generator:
    def __init__(self, org: str, plan: list[tuple[str, str, str]], seed: int) -> None:
        self.org = org
        self.plan = plan
        self.rng = random.Random(seed)
        self.authors = [(f"user_{k}", name) for k, name in enumerate(PEOPLE[:12], 1)]

    def _fill(self, template: str) -> str:
        rng = self.rng
        out = template
        while "{product}" in out:
            out = out.replace("{product}", rng.choice(MATERIALS) + " " + rng.choice(ITEMS), 1)
        return out.format(
            person=rng.choice(PEOPLE),
            qty=rng.randint(2, 400),
            day=rng.choice(DAYS),
            place=rng.choice(PLACES),
            num=rng.randint(10000, 99999),
        )

    def note(self, subject: tuple[str, str, str], create_time: int) -> tuple:
        """One notes row without its number, plus its tags and links."""
        rng = self.rng
        stype, sid, parent = subject
        body = " ".join(self._fill(rng.choice(_SENTENCES)) for _ in range(rng.randint(1, 3)))
        title = self._fill(rng.choice(_TITLES)) if rng.random() < 0.5 else ""
        tags = rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2, 3)))
        links: list[list[str]] = []
        if rng.random() < 0.3:
            for _ in range(rng.randint(1, 2)):
                ltype, lid, _parent = rng.choice(self.plan)
                if (ltype, lid) != (stype, sid) and [ltype, lid] not in links:
                    links.append([ltype, lid])
        author_id, author_name = rng.choice(self.authors)
        note_id = "note_" + ulid_string(create_time // 1000, rng.getrandbits(80))
        deleted = rng.random() < 0.005
        row = (
            note_id,
            self.org,
            stype,
            sid,
            parent,
            rng.choice(_NOTE_TYPES),
            title,
            body,
            "customer" if rng.random() < 0.1 else "internal",
            json.dumps(tags, ensure_ascii=False),
            json.dumps(links, ensure_ascii=False),
            "{}" if rng.random() < 0.8 else '{"channel":"phone"}',
            "",
            "",
            "user",
            author_id,
            author_name,
            "grpc",
            "",
            "",
            None,
            create_time,
            create_time + 1000 if deleted else create_time,
            create_time + 1000 if deleted else None,
            2 if deleted else 1,
        )
        return row, tags, links


def _assignments(
    count: int, n_subjects: int, n_hot: int, hot_size: int, rng: random.Random
) -> list[int]:
    """The subject index of each note, in time order: hot subjects hold hot_size notes each,
    the rest spread evenly at random, all interleaved."""
    hot_total = min(n_hot * hot_size, count)
    picks = [i % n_hot for i in range(hot_total)] if n_hot else []
    cold = max(n_subjects - n_hot, 1)
    picks += [n_hot + rng.randrange(cold) for _ in range(count - hot_total)]
    rng.shuffle(picks)
    return picks


def load(
    org: str,
    count: int,
    *,
    subjects: int = 10_000,
    hot: int = 3,
    hot_size: int = 10_000,
    seed: int = 1,
    batch_size: int = 20_000,
    maintain: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Registers the subjects and writes count notes of org into the open store.

    Notes are spread over a year before now, numbered in time order; hot_size is capped so that
    the hot subjects hold at most half of the notes. maintain runs ANALYZE (and the FTS merge
    on SQLite) afterwards.
    """
    engine = db.current()
    started = time.perf_counter()
    rng = random.Random(seed)
    hot_refs = hot_subjects(hot)
    subjects = max(subjects, len(hot_refs) + 1)
    if hot_refs:
        hot_size = max(1, min(hot_size, count // (2 * len(hot_refs))))
    plan = _subject_plan(subjects, hot_refs, rng)
    data = Dataset(org, count, subjects, hot_refs, hot_size)
    picks = _assignments(count, len(plan), len(hot_refs), hot_size, rng)
    gen = _Generator(org, plan, seed + 1)
    now = time.time_ns() // 1000
    step = max(1, YEAR_US // max(count, 1))
    start_time = now - step * count

    writer = _PostgresWriter(engine) if engine.is_postgres else _SqliteWriter(engine)
    with engine.database.connection_context():
        writer.begin_load()
        try:
            t = time.perf_counter()
            writer.subjects(org, plan, now)
            data.phases["subjects"] = time.perf_counter() - t
            t = time.perf_counter()
            done = 0
            for lo in range(0, count, batch_size):
                rows = []
                for i in range(lo, min(lo + batch_size, count)):
                    rows.append(gen.note(plan[picks[i]], start_time + i * step))
                first, last = writer.notes(org, rows)
                data.first_number = data.first_number or first
                data.last_number = last
                done += len(rows)
                if progress:
                    progress(done, count)
            data.phases["notes"] = time.perf_counter() - t
            if maintain:
                t = time.perf_counter()
                writer.maintain()
                data.phases["maintain"] = time.perf_counter() - t
        finally:
            writer.end_load()
    data.seconds = time.perf_counter() - started
    return data


def _index_rows(org: str, numbered: Iterator[tuple[int, tuple, list, list]]):
    tags, links, events = [], [], []
    for number, row, row_tags, row_links in numbered:
        tags.extend((number, org, t) for t in row_tags)
        links.extend((number, org, t, i) for t, i in row_links)
        # note id, actor type/id/name, surface, event time: as service.notes._event writes them
        actor = (row[14], row[15], row[16], row[17], "", "", "")
        events.append((org, row[0], "CREATE", *actor, 0, 1, row[21]))
        if row[23] is not None:  # deleted: its DELETE event too
            events.append((org, row[0], "DELETE", *actor, 1, 2, row[23]))
    return tags, links, events


class _SqliteWriter:
    def __init__(self, engine: db.Engine) -> None:
        self.database = engine.database
        self.saved: dict[str, object] = {}

    def _pragma(self, name: str, value: object | None = None):
        sql = f"PRAGMA {name}" + ("" if value is None else f" = {value}")
        row = self.database.execute_sql(sql).fetchone()
        return row[0] if row else None

    def begin_load(self) -> None:
        # Connection-scoped settings for the load only; restored before the connection is
        # returned to the pool. Each batch still commits; a crash loses at most the last batch.
        for name, value in (("synchronous", 1), ("cache_size", -262_144)):
            self.saved[name] = self._pragma(name)
            self._pragma(name, value)

    def end_load(self) -> None:
        for name, value in self.saved.items():
            self._pragma(name, value)

    def subjects(self, org: str, plan, now: int) -> None:
        rows = [(org, t, i, p, "", now, now) for t, i, p in plan]
        with self.database.atomic():
            self.database.cursor().executemany(
                "INSERT INTO subjects (org, type, external_id, parent_id, display_name, "
                "create_time, update_time) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (org, type, external_id) DO NOTHING",
                rows,
            )

    def notes(self, org: str, rows: list[tuple]) -> tuple[int, int]:
        database = self.database
        cursor = database.cursor()
        with database.atomic():  # BEGIN IMMEDIATE: the numbers below stay ours
            seq = cursor.execute(
                "SELECT max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'notes'), 0),"
                " COALESCE((SELECT max(number) FROM notes), 0))"
            ).fetchone()[0]
            first = seq + 1
            numbered = [(first + k, r[0], r[1], r[2]) for k, r in enumerate(rows)]
            org_first = _reserve_org_numbers(database, org, len(rows))
            last = first + len(rows) - 1
            placeholders = ", ".join("?" * len(NOTE_COLUMNS))
            with fts_in_one_go(cursor, "number BETWEEN ? AND ?", (first, last)):
                cursor.executemany(
                    f"INSERT INTO notes ({', '.join(NOTE_COLUMNS)}) VALUES ({placeholders})",
                    [(n, org_first + k, *row) for k, (n, row, _, _) in enumerate(numbered)],
                )
            tags, links, events = _index_rows(org, iter(numbered))
            cursor.executemany(
                "INSERT INTO note_tags (note_number, org, tag) VALUES (?, ?, ?)", tags
            )
            cursor.executemany(
                "INSERT INTO note_links (note_number, org, type, record_id) VALUES (?, ?, ?, ?)",
                links,
            )
            cursor.executemany(
                f"INSERT INTO note_events ({', '.join(EVENT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
                events,
            )
        return first, last

    def maintain(self) -> None:
        has_fts = self.database.execute_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'notes_fts'"
        ).fetchone()
        if has_fts:
            with self.database.atomic():
                self.database.execute_sql("INSERT INTO notes_fts (notes_fts) VALUES ('optimize')")
        self.database.execute_sql("ANALYZE")
        self.database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")


# The full-text tables a trigger fills on every insert into notes (migrations 1 and 6).
_FTS_INSERT_TRIGGERS = (("notes_fts_insert", "notes_fts"), ("notes_trgm_insert", "notes_trgm"))


@contextlib.contextmanager
def fts_in_one_go(cursor, rows_where: str, params: tuple) -> Iterator[None]:
    """SQLite, inside a transaction: the full-text tables' insert triggers are dropped while
    the block inserts notes; then each table gets the rows rows_where selects by one
    INSERT ... SELECT and its trigger is back (one statement per table, not one per note:
    the trigram trigger alone made a 1M-note load 3.5 times slower)."""
    dropped = []
    for trigger, table in _FTS_INSERT_TRIGGERS:
        found = cursor.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (trigger,)
        ).fetchone()
        if found:
            cursor.execute(f"DROP TRIGGER {trigger}")
            dropped.append((table, found[0]))
    yield
    for table, create in dropped:
        cursor.execute(
            f"INSERT INTO {table} (rowid, title, body) SELECT number, title, body FROM notes"
            f" WHERE {rows_where}",
            params,
        )
        cursor.execute(create)


def _reserve_org_numbers(database, org: str, count: int) -> int:
    """The first of count consecutive note numbers of org, taken from its counter."""
    param = database.param
    last = database.execute_sql(
        f"INSERT INTO org_counters (org, last) VALUES ({param}, {param}) "
        "ON CONFLICT (org) DO UPDATE SET last = org_counters.last + excluded.last "
        "RETURNING last",
        (org, count),
    ).fetchone()[0]
    return int(last) - count + 1


class _PostgresWriter:
    def __init__(self, engine: db.Engine) -> None:
        self.database = engine.database

    def begin_load(self) -> None:
        self.database.execute_sql("SET maintenance_work_mem = '256MB'")

    def end_load(self) -> None:
        self.database.execute_sql("RESET maintenance_work_mem")

    def subjects(self, org: str, plan, now: int) -> None:
        rows = [(org, t, i, p, "", now, now) for t, i, p in plan]
        with self.database.atomic():
            self.database.cursor().executemany(
                "INSERT INTO subjects (org, type, external_id, parent_id, display_name, "
                "create_time, update_time) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (org, type, external_id) DO NOTHING",
                rows,
            )

    def notes(self, org: str, rows: list[tuple]) -> tuple[int, int]:
        cursor = self.database.cursor()
        with self.database.atomic():
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('notes', 'number')) "
                "FROM generate_series(1, %s)",
                (len(rows),),
            )
            numbers = sorted(n for (n,) in cursor.fetchall())
            numbered = [(n, r[0], r[1], r[2]) for n, r in zip(numbers, rows, strict=True)]
            org_first = _reserve_org_numbers(self.database, org, len(rows))
            with cursor.copy(f"COPY notes ({', '.join(NOTE_COLUMNS)}) FROM STDIN") as copy:
                for k, (number, row, _, _) in enumerate(numbered):
                    copy.write_row((number, org_first + k, *row))
            tags, links, events = _index_rows(org, iter(numbered))
            with cursor.copy("COPY note_tags (note_number, org, tag) FROM STDIN") as copy:
                for r in tags:
                    copy.write_row(r)
            with cursor.copy("COPY note_links (note_number, org, type, record_id) FROM STDIN") as c:
                for r in links:
                    c.write_row(r)
            with cursor.copy(f"COPY note_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as c:
                for r in events:
                    c.write_row(r)
        return numbers[0], numbers[-1]

    def maintain(self) -> None:
        # VACUUM sets the visibility map (index-only scans); it cannot run in a transaction,
        # and the pooled connection is in autocommit between transactions.
        for table in ("notes", "note_tags", "note_links", "note_events", "subjects"):
            self.database.execute_sql(f"VACUUM (ANALYZE) {table}")
