"""The bulk path: notes it writes read back through the service like notes created one by one."""

from __future__ import annotations

import json
import re

from notes.v1 import notes_pb2 as pb

from scripts import bench_dataset
from server.rpc.convert import ref_out
from server.store import uow
from server.store.models import NoteRow, SubjectRow


def _stored(org: str) -> list[NoteRow]:
    with uow.reading():
        return list(NoteRow.select().where(NoteRow.org == org).order_by(NoteRow.number.desc()))


def _matches(row: NoteRow, *words: str) -> bool:
    """Whether the words occur in this order, adjacent, in the title or the body."""
    pattern = r"\b" + r"\W+".join(map(re.escape, words)) + r"\b"
    return any(re.search(pattern, text, re.IGNORECASE) for text in (row.title, row.body))


def _list_all(tenant, **kwargs) -> tuple[list[pb.Note], int]:
    notes, token, total = [], "", 0
    while True:
        req = pb.ListNotesRequest(page_size=1000, page_token=token, **kwargs)
        if not token:
            req.include_total_size = True
        resp = tenant.notes.ListNotes(req, metadata=tenant.auth)
        total = total or resp.total_size
        notes.extend(resp.notes)
        token = resp.next_page_token
        if not token:
            return notes, total


def test_bulk_loaded_notes_read_through_the_service(service, tenant):
    data = bench_dataset.load(tenant.org, 2_000, subjects=200, hot=3, hot_size=300, batch_size=700)
    rows = _stored(tenant.org)
    assert len(rows) == 2_000
    assert data.last_number >= data.first_number + 1_999
    assert all(r.id.startswith("note_") and len(r.id) == 31 for r in rows)
    with uow.reading():
        assert SubjectRow.select().where(SubjectRow.org == tenant.org).count() >= 200
    live = [r for r in rows if r.delete_time is None]

    # A hot subject's list: every live note, newest first, counted by total_size.
    hot = data.hot[0]
    listed, total = _list_all(tenant, subject=ref_out(hot))
    expected = [r.org_number for r in live if (r.subject_type, r.subject_id) == hot.key]
    assert len(expected) >= 250
    assert [n.number for n in listed] == expected
    assert total == len(expected)

    # Tags and links as stored, and their index rows serve the list filters.
    tagged = next(r for r in live if len(json.loads(r.tags)) >= 2)
    linked = next(r for r in live if json.loads(r.links))
    for row in (tagged, linked):
        got = tenant.notes.GetNote(pb.GetNoteRequest(id=row.id), metadata=tenant.auth).note
        assert got.number == row.org_number
        assert list(got.tags) == json.loads(row.tags)
        assert [[ref.id] for ref in got.linked_records] == [[i] for _, i in json.loads(row.links)]
        assert got.body == row.body and got.version == 1
        assert got.create_time.ToMicroseconds() == row.create_time
    tag = json.loads(tagged.tags)[1]
    by_tag, _ = _list_all(tenant, tags=[tag])
    assert [n.number for n in by_tag] == [r.org_number for r in live if tag in json.loads(r.tags)]
    link_type, link_id = json.loads(linked.links)[0]
    by_link, _ = _list_all(tenant, linked_record=pb.SubjectRef(type=_type(link_type), id=link_id))
    assert [n.number for n in by_link] == [
        r.org_number for r in live if [link_type, link_id] in json.loads(r.links)
    ]

    # Full-text search finds exactly the notes holding the word, and the phrase.
    for query, words in (
        (data.search_word, (data.search_word,)),
        (f'"{data.search_phrase}"', tuple(data.search_phrase.split())),
    ):
        found, total = _list_all(tenant, query=query)
        expected = [r.org_number for r in live if _matches(r, *words)]
        assert expected, query
        assert [n.number for n in found] == expected
        assert total == len(expected)

    # Containment over every note (the trigram index, which the load fills in one go): a
    # part of the search word, in any case.
    part = data.search_word[1:-1].upper()
    found, total = _list_all(tenant, contains=part)
    expected = [r.org_number for r in live if part.lower() in f"{r.title} {r.body}".lower()]
    assert expected and [n.number for n in found] == expected and total == len(expected)

    # Within a subject, containment reads the subject's own texts (migration 12), which
    # the load fills too: the same notes, in the same order.
    hot_rows = [r for r in live if (r.subject_type, r.subject_id) == hot.key]
    for text in (part, data.search_word.upper(), "the", "zq-nowhere"):
        found, total = _list_all(tenant, subject=ref_out(hot), contains=text)
        expected = [r.org_number for r in hot_rows if text.lower() in f"{r.title} {r.body}".lower()]
        assert [n.number for n in found] == expected and total == len(expected), text

    # The audit trail has the CREATE event, and notes created afterwards number on and are
    # searchable (the full-text trigger is back in place).
    history = tenant.notes.GetNoteHistory(
        pb.GetNoteHistoryRequest(id=rows[0].id), metadata=tenant.auth
    )
    assert [e.action for e in history.events][:1] == ["CREATE"]
    created = tenant.create("zyxwvut after the bulk load", subject=ref_out(hot)).note
    assert created.number == 2_001  # the organization numbers on after its bulk-loaded notes
    found, total = _list_all(tenant, query="zyxwvut")
    assert [n.id for n in found] == [created.id]


def _type(value: str) -> int:
    return getattr(pb, "SUBJECT_TYPE_" + value.upper())
