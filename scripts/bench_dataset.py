"""The bench's synthetic data set: an organization's subjects and a year of notes made of
furniture, names and places ("Called Greta about the walnut sideboard."), written through the
store's bulk path (server/store/bulk.py). Seeded, so two loads of the same size are the same.

Not part of the service: scripts/bench.py and tests/test_bulk.py use it.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from server.domain.ids import note_id_at
from server.domain.model import SubjectRef, SubjectType
from server.store import bulk, db


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
YEAR_US = 365 * 24 * 3600 * 1_000_000


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
        note_id = note_id_at(create_time // 1000, rng.getrandbits(80))
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

    writer = bulk.writer(engine)
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
