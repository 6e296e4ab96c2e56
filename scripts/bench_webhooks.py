"""`make bench BENCH_ARGS=--webhooks`: the cost and speed of webhooks.

On a fresh store (SQLite, or a schema of --database-url) and one `notes serve`:
1. CreateNote throughput without any webhook (closed loop, --threads callers, --seconds);
2. with one webhook to a local receiver answering 200 at once: p50/p99 from commit (the
   event's event_time) to the receiver, at --rate notes/s of writes;
3. CreateNote throughput with that webhook, then how fast the backlog drains (events
   delivered per second to one webhook, one delivery in flight at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

SCOPES = ["notes:read", "notes:write", "webhooks:write", "subjects:write"]


class Receiver:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, float]] = []  # (arrival, event_time), wall seconds
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                now = time.time()
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
                at = datetime.fromisoformat(json.loads(body)["data"]["eventTime"]).timestamp()
                with outer.lock:
                    outer.arrivals.append((now, at))

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)


def creates(stub, auth, seconds: float, threads: int, rate: float = 0.0) -> int:
    """CreateNote calls completed in `seconds`: closed loop, or paced at `rate` per second."""
    from notes.v1 import notes_pb2 as pb

    note = pb.Note(subject=pb.SubjectRef(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1"), body="b")
    done = [0] * threads
    start = time.monotonic()
    end = start + seconds

    def run(i: int) -> None:
        n = 0
        while True:
            if rate:
                due = start + (n * threads + i) / rate
                if due >= end:
                    break
                time.sleep(max(0.0, due - time.monotonic()))
            elif time.monotonic() >= end:
                break
            stub.CreateNote(pb.CreateNoteRequest(note=note), metadata=auth, timeout=30)
            n += 1
        done[i] = n

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(done)


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--database-url", default="")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--output", default="bench-webhooks.md")
    args = p.parse_args(argv)

    import grpc
    from notes.v1 import notes_pb2 as pb
    from notes.v1 import notes_pb2_grpc as pb_grpc
    from notes.v1 import webhooks_pb2 as wpb
    from notes.v1 import webhooks_pb2_grpc as wpb_grpc

    from server.service import credentials

    os.environ["NOTES_WEBHOOK_ALLOW_PRIVATE"] = "1"  # the receiver listens on loopback
    workdir = Path(tempfile.mkdtemp(prefix="notes-bench-webhooks-"))
    store = bench.make_store(args.database_url, workdir, "webhooks")
    jwt_secret = "bench-" + os.urandom(16).hex()
    server = bench.start_server(store, 1, jwt_secret, workdir)
    receiver = Receiver()
    lines = []
    try:
        token = credentials.mint_token(jwt_secret, bench.ORG, "user_1", SCOPES, 3600)
        auth = (("authorization", f"Bearer {token}"),)
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            pb_grpc.SubjectsServiceStub(ch).UpsertSubject(
                pb.UpsertSubjectRequest(
                    subject=pb.Subject(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")
                ),
                metadata=auth,
            )
            notes = pb_grpc.NotesServiceStub(ch)
            creates(notes, auth, 2, args.threads)  # warm-up
            without = creates(notes, auth, args.seconds, args.threads) / args.seconds
            print(f"CreateNote without a webhook: {without:.0f}/s", flush=True)

            wpb_grpc.WebhooksServiceStub(ch).CreateWebhook(
                wpb.CreateWebhookRequest(
                    webhook=wpb.Webhook(url=receiver.url, enabled=True, event_types=[])
                ),
                metadata=auth,
            )
            paced = creates(notes, auth, args.seconds, 4, rate=args.rate)
            deadline = time.monotonic() + 120
            while receiver.count() < paced and time.monotonic() < deadline:
                time.sleep(0.05)
            lat = [(a - e) * 1000 for a, e in receiver.arrivals]
            p50, p99 = statistics.median(lat), _pct(lat, 99)
            print(f"commit to delivery at {args.rate:g}/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms")

            before = receiver.count()
            with_hook = creates(notes, auth, args.seconds, args.threads) / args.seconds
            target = paced + int(with_hook * args.seconds)
            print(f"CreateNote with a webhook: {with_hook:.0f}/s", flush=True)
            deadline = time.monotonic() + 300
            while receiver.count() < target and time.monotonic() < deadline:
                time.sleep(0.05)
            burst = receiver.arrivals[before:]
            drain = (len(burst) - 1) / (burst[-1][0] - burst[0][0]) if len(burst) > 1 else 0
            print(f"delivered to one webhook: {drain:.0f} events/s ({len(burst)} events)")
        cost = (without - with_hook) / without * 100
        lines = [
            f"| webhooks ({store.kind}) | figure | goal |",
            "| --- | --- | --- |",
            f"| CreateNote, no webhook ({args.threads} callers) | {without:.0f}/s | |",
            f"| CreateNote, one webhook | {with_hook:.0f}/s ({cost:+.1f} % cost) | ≤ 10 % |",
            f"| commit → delivery at {args.rate:g} notes/s, p50 / p99 | {p50:.0f} ms /"
            f" {p99:.0f} ms | p99 ≤ 1000 ms |",
            f"| events delivered per second, one webhook (backlog of {len(burst)}) |"
            f" {drain:.0f}/s | |",
        ]
    finally:
        server.stop()
        receiver.server.shutdown()
        store.drop()
        shutil.rmtree(workdir, ignore_errors=True)
    report = "\n".join(lines) + "\n"
    print()
    print(report)
    Path(args.output).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
