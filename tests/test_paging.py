"""Keyset pages: opaque, bound to their filter, and stable while notes are inserted."""

from __future__ import annotations

import base64
import hashlib
import threading

import grpc
import pytest
from notes.v1 import notes_pb2 as pb

from server.domain.errors import ValidationFailed
from server.domain.paging import PageTokens

from .conftest import bad_fields, page_through

CUS_1 = pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")


def test_paging_while_notes_are_inserted_returns_each_note_once(tenant):
    before = [tenant.create(f"n{i}").note.id for i in range(25)]
    stop = threading.Event()
    inserted: list[str] = []

    def writer() -> None:
        while not stop.is_set() and len(inserted) < 200:
            inserted.append(tenant.create("during").note.id)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = page_through(tenant.notes, tenant.auth, CUS_1, page_size=4)
    finally:
        stop.set()
        thread.join()
    assert len(seen) == len(set(seen)), "no note twice"
    assert set(before) <= set(seen), "none of the notes present at the start skipped"
    assert seen[-25:] == list(reversed(before))


def test_a_token_reused_with_other_filters_is_refused(tenant):
    for i in range(3):
        tenant.create(f"n{i}")
    page = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, page_size=1), metadata=tenant.auth
    )
    assert page.next_page_token
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.ListNotes(
            pb.ListNotesRequest(
                subject=CUS_1, page_size=1, page_token=page.next_page_token, tags=["x"]
            ),
            metadata=tenant.auth,
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(e.value) == {"page_token"}
    # A different page size with the same filter is fine (AIP-158).
    tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, page_size=2, page_token=page.next_page_token),
        metadata=tenant.auth,
    )


def test_a_forged_token_is_refused(tenant):
    for i in range(3):
        tenant.create(f"n{i}")
    token = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, page_size=1), metadata=tenant.auth
    ).next_page_token
    forged = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(grpc.RpcError) as e:
        tenant.notes.ListNotes(
            pb.ListNotesRequest(subject=CUS_1, page_size=1, page_token=forged),
            metadata=tenant.auth,
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_an_empty_next_page_token_is_the_end(tenant):
    for i in range(4):
        tenant.create(f"n{i}")
    resp = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, page_size=4), metadata=tenant.auth
    )
    assert len(resp.notes) == 4 and resp.next_page_token == ""


def test_a_token_reveals_neither_its_position_nor_its_filter():
    """Opaque, not merely base64 of readable state: the position is sealed, and the token
    still reads back only with the secret that issued it."""
    tokens = PageTokens(b"secret")
    fingerprint = hashlib.sha256(b"a filter").hexdigest()
    token = tokens.issue(fingerprint, 4242)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"4242" not in raw and (4242).to_bytes(8, "big") not in raw
    assert bytes.fromhex(fingerprint[:16]) not in raw
    assert tokens.read(token, fingerprint) == 4242
    assert tokens.issue(fingerprint, 4243) != token
    with pytest.raises(ValidationFailed):
        PageTokens(b"another secret").read(token, fingerprint)


@pytest.mark.parametrize("contains", ["", "zqcount"])
def test_the_total_is_the_same_whether_the_first_page_holds_every_note_or_not(tenant, contains):
    """A first page that holds every match is its own count; any other page is counted."""
    for i in range(5):
        tenant.create(f"zqcount {i}")
    tenant.create("other")  # matches only without contains
    expected = 5 if contains else 6

    def page(**fields) -> pb.ListNotesResponse:
        request = pb.ListNotesRequest(
            subject=CUS_1, contains=contains, include_total_size=True, **fields
        )
        return tenant.notes.ListNotes(request, metadata=tenant.auth)

    whole = page(page_size=expected)
    assert (len(whole.notes), whole.total_size, whole.next_page_token) == (expected, expected, "")
    assert page(page_size=expected + 10).total_size == expected
    short = page(page_size=expected - 1)
    assert (len(short.notes), short.total_size) == (expected - 1, expected)
    rest = page(page_size=expected - 1, page_token=short.next_page_token)
    assert (len(rest.notes), rest.total_size) == (1, expected)
    skipped = page(page_size=expected, offset=2)
    assert (len(skipped.notes), skipped.total_size) == (expected - 2, expected)
    without = tenant.notes.ListNotes(
        pb.ListNotesRequest(subject=CUS_1, contains=contains, page_size=expected),
        metadata=tenant.auth,
    )
    assert without.total_size == 0
