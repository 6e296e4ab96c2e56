"""Optimistic concurrency: of several writers on one version, exactly one wins."""

from __future__ import annotations

import itertools
import threading

import grpc
from notes.v1 import notes_pb2 as pb


def race(tenant, note_id: str, writers: int, expected_version: int) -> list[object]:
    """Sends writers updates at once; each outcome is the written body or the status code."""
    barrier = threading.Barrier(writers)
    outcomes: list[object] = [None] * writers

    def update(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = tenant.notes.UpdateNote(
                pb.UpdateNoteRequest(
                    note=pb.Note(id=note_id, body=f"writer {i}"),
                    expected_version=expected_version,
                ),
                metadata=tenant.auth,
            ).note.body
        except grpc.RpcError as e:
            outcomes[i] = e.code()

    threads = [threading.Thread(target=update, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_concurrent_updates_to_one_version_let_exactly_one_win(tenant):
    for _ in range(5):
        note = tenant.create("v1").note
        outcomes = race(tenant, note.id, 4, expected_version=1)
        winners = [o for o in outcomes if isinstance(o, str)]
        assert len(winners) == 1
        assert outcomes.count(grpc.StatusCode.ABORTED) == 3
        final = tenant.notes.GetNote(pb.GetNoteRequest(id=note.id), metadata=tenant.auth).note
        assert final.version == 2 and final.body == winners[0]


def test_without_an_expected_version_the_last_write_wins_and_none_is_lost(tenant):
    note = tenant.create("v1").note
    outcomes = race(tenant, note.id, 4, expected_version=0)
    assert all(isinstance(o, str) for o in outcomes)
    final = tenant.notes.GetNote(pb.GetNoteRequest(id=note.id), metadata=tenant.auth).note
    assert final.version == 5
    history = tenant.notes.GetNoteHistory(
        pb.GetNoteHistoryRequest(id=note.id), metadata=tenant.auth
    ).events
    assert [e.new_version for e in history] == [1, 2, 3, 4, 5]


def test_no_two_versions_of_a_note_share_a_millisecond_of_update_time(tenant):
    """HTTP clients send update_time back to the millisecond as the version they saw
    (ShelfCycle's If-Match): versions written back to back must still differ in it."""
    note = tenant.create("v1").note
    seen = [(note.version, note.create_time.ToMicroseconds(), note.update_time.ToMicroseconds())]
    lock = threading.Lock()

    def update(i: int) -> None:
        for j in range(3):
            out = tenant.notes.UpdateNote(
                pb.UpdateNoteRequest(note=pb.Note(id=note.id, body=f"writer {i}.{j}")),
                metadata=tenant.auth,
            ).note
            with lock:
                seen.append((out.version, 0, out.update_time.ToMicroseconds()))

    threads = [threading.Thread(target=update, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen.sort()
    assert [v for v, _, _ in seen] == list(range(1, 14))
    times = [t for _, _, t in seen]
    assert all(later // 1000 > earlier // 1000 for earlier, later in itertools.pairwise(times))
