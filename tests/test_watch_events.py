"""WatchEvents (through a Python stub and grpcurl), its limits and shutdown, the periodic
purge, and NATS JetStream publishing. They run against a second `notes serve` on the same
database (heartbeats every 0.5 s, 3 watchers, NATS on), so the events written through the
session's service reach it only through the store, as they would reach another replica."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import queue
import secrets
import socket
import subprocess
import threading
import time
from urllib.parse import urlparse

import grpc
import pytest
from notes.v1 import notes_pb2 as pb

from server.domain.cursors import Cursor
from server.service.clock import now_us

from .conftest import BIN, error_info, start_service, stop_service
from .events_helpers import Watch, drain

NATS_URL = os.environ.get("NOTES_TEST_NATS_URL", "nats://127.0.0.1:4222")
MAX_WATCHERS = 3


def _nats_up() -> bool:
    u = urlparse(NATS_URL)
    try:
        socket.create_connection((u.hostname or "127.0.0.1", u.port or 4222), timeout=2).close()
        return True
    except OSError:
        return False


NATS_UP = _nats_up()


@pytest.fixture(scope="module")
def feed(service, tmp_path_factory):
    prefix = "notes_t" + secrets.token_hex(4)
    env = {
        "NOTES_EVENT_HEARTBEAT_SECONDS": "0.5",
        "NOTES_MAX_WATCHERS": str(MAX_WATCHERS),
        "NOTES_EVENT_PURGE_INTERVAL_SECONDS": "0.5",
        "NOTES_EVENTS_NATS_URL": NATS_URL if NATS_UP else "",
        "NOTES_EVENTS_NATS_STREAM": prefix.upper(),
        "NOTES_EVENTS_NATS_SUBJECT_PREFIX": prefix,
    }
    svc = start_service(
        service.database_url, tmp_path_factory.mktemp("feed"), "--no-http", env_extra=env
    )
    svc.engine = service.engine
    yield svc
    stop_service(svc)
    if NATS_UP:
        asyncio.run(_delete_stream(prefix.upper()))


async def _delete_stream(name: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(name)
    except Exception:  # noqa: BLE001 - never created
        pass
    finally:
        await nc.close()


@pytest.fixture(scope="module")
def feed_channel(feed):
    with grpc.insecure_channel(feed.grpc_target) as ch:
        yield ch


@pytest.fixture
def watched(tenant, feed_channel):
    """The tenant, calling the second server."""
    return dataclasses.replace(tenant, channel=feed_channel)


def open_watch(channel, metadata, deadline: float = 20.0, **kw) -> Watch:
    """A watch that has caught up (its first heartbeat came); retries while the server is
    still releasing the watcher slots of earlier tests."""
    end = time.monotonic() + deadline
    while True:
        w = Watch(channel, metadata, **kw)
        try:
            w.heartbeat()
            return w
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > end:
                raise
            time.sleep(0.2)


def test_watch_sends_the_backlog_then_each_commit_and_resumes_from_a_cursor(tenant, watched):
    before = [tenant.create(f"before {i}").note.id for i in range(2)]
    w = Watch(watched.channel, watched.auth)
    try:
        assert [e.note.id for e in w.events(2)] == before
        w.heartbeat()  # caught up
        live = tenant.create("live").note  # through the other server: seen via the store
        (event,) = w.events(1)
        assert (event.type, event.note.id, event.organization) == (
            "note.created",
            live.id,
            tenant.org,
        )
    finally:
        w.cancel()
    missed = [tenant.create(f"missed {i}").note.id for i in range(3)]
    w = Watch(watched.channel, watched.auth, after=event.cursor)
    try:
        assert [e.note.id for e in w.events(3)] == missed
        beat = w.heartbeat()
        later = tenant.create("later").note
        assert [e.note.id for e in w.events(1)] == [later.id]  # nothing repeated before it
    finally:
        w.cancel()
    # A heartbeat's cursor is a position too.
    after_beat, _ = drain(watched, after=beat.cursor)
    assert [e.note.id for e in after_beat] == [later.id]


def test_watch_filters_by_type(tenant, watched):
    w = open_watch(watched.channel, watched.auth, types=["note.customer_visible"])
    try:
        tenant.create("internal")
        visible = tenant.create("for the customer", visibility=pb.VISIBILITY_CUSTOMER).note
        (event,) = w.events(1)
        assert (event.type, event.note.id) == ("note.customer_visible", visible.id)
    finally:
        w.cancel()


def test_watch_through_grpcurl_sees_an_event_created_after_it_started(feed, tenant):
    process = subprocess.Popen(
        [
            str(BIN / "grpcurl"),
            "-plaintext",
            "-max-time",
            "60",
            "-H",
            f"authorization: Bearer {tenant.secret}",
            "-d",
            "{}",
            feed.grpc_target,
            "notes.v1.EventsService/WatchEvents",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()

    def until(text: str) -> str:
        seen = []
        while True:
            line = lines.get(timeout=20)
            seen.append(line)
            if text in line:
                return "".join(seen)

    try:
        until('"heartbeat"')  # the stream is open and caught up
        note = tenant.create("hello grpcurl").note
        out = until(note.id)
        out += until("}")
        assert '"type": "note.created"' in out or '"note.created"' in out
    finally:
        process.terminate()
        process.wait(10)


def test_credentials_are_checked_on_the_stream(tenant, feed_channel):
    for metadata in ((), (("authorization", "Bearer sk_not_a_key"),)):
        with pytest.raises(grpc.RpcError) as err:
            Watch(feed_channel, metadata).next()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    no_read = (("authorization", f"Bearer {tenant.key(['subjects:write'])}"),)
    with pytest.raises(grpc.RpcError) as err:
        Watch(feed_channel, no_read).next()
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    old = Cursor(0, 0, now_us() - 31 * 86_400 * 1_000_000).encode()
    with pytest.raises(grpc.RpcError) as err:
        Watch(feed_channel, tenant.auth, after=old).next()
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(err.value).reason == "EVENT_CURSOR_EXPIRED"


def test_watchers_are_capped_and_a_cancelled_one_frees_its_slot(watched):
    watches = [open_watch(watched.channel, watched.auth) for _ in range(MAX_WATCHERS)]
    try:
        with pytest.raises(grpc.RpcError) as err:
            Watch(watched.channel, watched.auth).next()
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(err.value).reason == "TOO_MANY_WATCHERS"
        watches.pop().cancel()
        watches.append(open_watch(watched.channel, watched.auth))
    finally:
        for w in watches:
            w.cancel()


def test_expired_events_are_purged_by_the_running_server(feed, tenant, watched):
    from server.store import db, uow

    old = tenant.create("old").note
    new = tenant.create("new").note
    with uow.writing():
        db.current().database.execute_sql(
            'UPDATE "events" SET "event_time" = 1 WHERE "note_id" = ' + db.current().database.param,
            (old.id,),
        )
    deadline = time.monotonic() + 20
    while True:
        events, _ = drain(watched)
        if [e.note.id for e in events] == [new.id]:
            break
        assert time.monotonic() < deadline, "the purge did not run"
        time.sleep(0.2)
    feed.wait_for_log(lambda lines: any('"events_purged"' in x for x in lines))


def test_sigterm_ends_open_streams_and_the_server_within_its_grace(service, tmp_path, tenant):
    """Without ending the streams at shutdown, stop() would wait out the whole grace."""
    svc = start_service(
        service.database_url,
        tmp_path,
        env_extra={"NOTES_GRACE_SECONDS": "60", "NOTES_EVENT_HEARTBEAT_SECONDS": "0.5"},
    )
    try:
        with grpc.insecure_channel(svc.grpc_target) as ch:
            w = open_watch(ch, tenant.auth)
            started = time.monotonic()
            svc.process.terminate()
            assert svc.process.wait(timeout=40) == 0
            assert time.monotonic() - started < 40
            assert w.ended.wait(10)
    finally:
        stop_service(svc)


def test_watchers_and_reflection_streams_leave_the_unary_threads_free(service, tmp_path, tenant):
    """Streams run on threads of their own: with as many watchers and reflection streams open
    as there are unary threads, unary calls are still answered at once."""
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    svc = start_service(
        service.database_url,
        tmp_path,
        "--no-http",
        env_extra={"NOTES_THREADS": "1", "NOTES_MAX_WATCHERS": "1"},
    )
    ends: list[queue.Queue] = []
    try:
        with grpc.insecure_channel(svc.grpc_target) as ch:
            note = tenant.create("still answered").note
            w = open_watch(ch, tenant.auth)
            end: queue.Queue = queue.Queue()
            ends.append(end)

            def requests():
                yield reflection_pb2.ServerReflectionRequest(list_services="")
                end.get()  # the stream stays open until the test ends it

            reflection = reflection_pb2_grpc.ServerReflectionStub(ch)
            info = reflection.ServerReflectionInfo(requests(), timeout=10)
            assert next(info).list_services_response.service
            notes = tenant.notes.__class__(ch)
            got = notes.GetNote(pb.GetNoteRequest(id=note.id), metadata=tenant.auth, timeout=5)
            assert got.note.id == note.id
            w.cancel()
    finally:
        for end in ends:
            end.put(None)
        stop_service(svc)


# --- NATS JetStream --------------------------------------------------------------------------


async def _consume(prefix: str, org: str, count: int, timeout: float = 30.0) -> list:
    import nats

    from server.events.nats_publisher import subject_token

    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while True:  # the publisher creates the stream on its first connection
            try:
                await js.stream_info(prefix.upper())
                break
            except Exception:  # noqa: BLE001
                assert time.monotonic() < deadline, "the stream was never created"
                await asyncio.sleep(0.2)
        sub = await js.subscribe(f"{prefix}.{subject_token(org)}.>", ordered_consumer=True)
        msgs = []
        while len(msgs) < count:
            msgs.append(await sub.next_msg(timeout=max(0.1, deadline - time.monotonic())))
        with pytest.raises(nats.errors.TimeoutError):  # and nothing more
            await sub.next_msg(timeout=1.0)
        # A re-publish (after a crash) is dropped by JetStream's de-duplication.
        first = msgs[0]
        ack = await js.publish(first.subject, first.data, headers=dict(first.headers))
        assert ack.duplicate
        return msgs
    finally:
        await nc.close()


@pytest.mark.skipif(not NATS_UP, reason=f"no NATS server listens at {NATS_URL}")
def test_events_are_published_to_nats_jetstream_once_each(feed, tenant):
    prefix = feed.env["NOTES_EVENTS_NATS_SUBJECT_PREFIX"]
    created = tenant.create("one").note
    tenant.create("two", visibility=pb.VISIBILITY_CUSTOMER)
    events, _ = drain(tenant)
    msgs = asyncio.run(_consume(prefix, tenant.org, len(events)))
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [e.id for e in events]
    bodies = [json.loads(m.data) for m in msgs]
    assert [b["id"] for b in bodies] == [e.id for e in events]
    assert bodies[0]["note"]["id"] == created.id and bodies[0]["organization"] == tenant.org
    assert [m.subject for m in msgs] == [
        f"{prefix}.{tenant.org}.note.created",
        f"{prefix}.{tenant.org}.note.created",
        f"{prefix}.{tenant.org}.note.customer_visible",
    ]


def test_subject_tokens_keep_organizations_apart():
    from server.events.nats_publisher import subject_of, subject_token

    assert subject_token("org_1-A") == "org_1-A"
    assert subject_token("a.b") != subject_token("a_b") != subject_token("a~2Eb")
    assert subject_of("notes", "a.*>", "note.created") == "notes.a~2E~2A~3E.note.created"


@pytest.mark.skipif(not NATS_UP, reason=f"no NATS server listens at {NATS_URL}")
def test_a_publisher_killed_and_restarted_resumes_and_holds_the_lock(service, tmp_path, tenant):
    from server.events.nats_publisher import _Leadership

    prefix = "notes_r" + secrets.token_hex(4)
    env = {
        "NOTES_EVENTS_NATS_URL": NATS_URL,
        "NOTES_EVENTS_NATS_STREAM": prefix.upper(),
        "NOTES_EVENTS_NATS_SUBJECT_PREFIX": prefix,
    }

    def publisher():
        svc = start_service(service.database_url, tmp_path, "--no-http", env_extra=env)
        svc.wait_for_log(lambda lines: any('"nats_publishing"' in x for x in lines))
        return svc

    first = publisher()
    try:
        tenant.create("before the crash")
        # While it publishes, no other publisher of the stream may.
        rival = _Leadership(f"nats:{prefix.upper()}")
        assert not rival.try_acquire()
        rival.release()
        events, _ = drain(tenant)
        assert len(asyncio.run(_consume(prefix, tenant.org, len(events)))) == len(events)
        first.process.kill()
        first.process.wait(10)
        tenant.create("while it was down", visibility=pb.VISIBILITY_CUSTOMER)
        second = publisher()
        try:
            events, _ = drain(tenant)
            msgs = asyncio.run(_consume(prefix, tenant.org, len(events)))
            assert [m.headers["Nats-Msg-Id"] for m in msgs] == [e.id for e in events]
        finally:
            stop_service(second)
    finally:
        stop_service(first)
        asyncio.run(_delete_stream(prefix.upper()))
