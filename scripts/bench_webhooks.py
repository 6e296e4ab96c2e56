"""`make bench BENCH_ARGS=--webhooks`: the cost and speed of webhooks, the costs separated.

On a fresh store (SQLite, or a fresh schema of --database-url) with two organizations, one
without any webhook and one with a webhook to a local receiver answering 200 at once, the
closed-loop CreateNote throughput (--threads callers, --seconds a run) of four variants, run
in interleaved rounds (--rounds, the order rotating) and reported as medians and ratios to (a):

  (a) no webhook            a server with NOTES_WEBHOOK_DELIVERY=0, the organization without;
  (b) outbox only           the same server, the organization with the webhook: the event and
                            its pending delivery row written, nothing delivered meanwhile;
  (c) delivered in-process  a server with delivery on (started for the run);
  (d) delivered apart       server (a)/(b) plus a `notes deliver` process (started for the run).

Before each run the backlog is drained, so every variant starts from an empty queue; the drain
after (b) (a backlog, no writes) gives the events delivered per second to one webhook, by the
serving process or by `notes deliver` (alternating). Then the commit -> delivery p50/p99 at
--rate notes/s of writes, once with each way of delivering.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
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
ORG_PLAIN = bench.ORG
ORG_HOOK = bench.ORG + "_hooked"
VARIANTS = {
    "a": "(a) no webhook",
    "b": "(b) webhook, delivery off (outbox + delivery rows)",
    "c": "(c) webhook, delivered by the serving process",
    "d": "(d) webhook, delivered by a `notes deliver` process",
}


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

    def wait_for(self, target: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.count() < target:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


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


class Deliver:
    """A `notes deliver` process on the store."""

    def __init__(self, store: bench.Store, jwt_secret: str, workdir: Path) -> None:
        env = {
            **os.environ,
            "NOTES_DATABASE_URL": store.url,
            "NOTES_JWT_SECRET": jwt_secret,
            "NOTES_METRICS_ADDR": "",
            "OTEL_TRACES_EXPORTER": "none",
            "PYTHONUNBUFFERED": "1",
        }
        self.log = workdir / "deliver.log"
        start = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(bench.BIN / "notes"), "deliver"],
                env=env,
                cwd=workdir,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("notes deliver exited:\n" + self.log.read_text()[-3000:])
            with self.log.open("rb") as f:
                f.seek(start)
                if b'"event": "delivering"' in f.read():
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("notes deliver did not start:\n" + self.log.read_text()[-3000:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url", default="")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds a throughput run")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians)")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--latency-seconds", type=float, default=15.0)
    p.add_argument("--variants", default="abcd", help="which of a, b, c, d to run")
    p.add_argument(
        "--profile",
        default="",
        help="py-spy: raw profiles (--idle) of the server in (a) and (b), round 1, here",
    )
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
    off = bench.start_server(store, 1, jwt_secret, workdir, {"NOTES_WEBHOOK_DELIVERY": "0"}, "-off")
    receiver = Receiver()
    results: dict[str, list[float]] = {v: [] for v in args.variants}
    drains: dict[str, list[float]] = {"serving process": [], "notes deliver process": []}
    latency: dict[str, tuple[float, float, int]] = {}
    written = 0  # notes written to the organization with the webhook
    started = time.monotonic()

    def auth_of(org: str):
        token = credentials.mint_token(jwt_secret, org, "user_1", SCOPES, 24 * 3600)
        return (("authorization", f"Bearer {token}"),)

    def drain(label: str) -> None:
        """Waits for every event written so far; a rate when the backlog was large."""
        backlog = written - receiver.count()
        t0, c0 = time.monotonic(), receiver.count()
        if not receiver.wait_for(written, 600):
            raise RuntimeError(f"{written - receiver.count()} events never delivered")
        if backlog >= 500:
            rate = (receiver.count() - c0) / (time.monotonic() - t0)
            drains[label].append(rate)
            print(f"    drained {backlog} events by the {label}: {rate:.0f}/s", flush=True)

    try:
        auth = {org: auth_of(org) for org in (ORG_PLAIN, ORG_HOOK)}
        with grpc.insecure_channel(f"127.0.0.1:{off.grpc_port}") as ch:
            subjects = pb_grpc.SubjectsServiceStub(ch)
            for org in (ORG_PLAIN, ORG_HOOK):
                subjects.UpsertSubject(
                    pb.UpsertSubjectRequest(
                        subject=pb.Subject(type=pb.SUBJECT_TYPE_CUSTOMER, id="cus_1")
                    ),
                    metadata=auth[org],
                )
            wpb_grpc.WebhooksServiceStub(ch).CreateWebhook(
                wpb.CreateWebhookRequest(
                    webhook=wpb.Webhook(url=receiver.url, enabled=True, event_types=[])
                ),
                metadata=auth[ORG_HOOK],
            )
            off_notes = pb_grpc.NotesServiceStub(ch)
            creates(off_notes, auth[ORG_PLAIN], 2, args.threads)  # warm-up
            for r in range(args.rounds):
                # a b c d, then b a d c: each pair's order alternates, and the backlog of (b)
                # is drained by the serving process and by `notes deliver` in turn.
                order = [v for v in ("abcd" if r % 2 == 0 else "badc") if v in args.variants]
                for v in order:
                    on = deliver = spy = None
                    try:
                        if v == "c":
                            on = bench.start_server(store, 1, jwt_secret, workdir, {}, "-on")
                            drain("serving process")
                        elif v == "d":
                            deliver = Deliver(store, jwt_secret, workdir)
                            drain("notes deliver process")
                        if v in "ab" and args.profile and r == 0:
                            Path(args.profile).mkdir(parents=True, exist_ok=True)
                            spy = subprocess.Popen(
                                [
                                    str(bench.BIN / "py-spy"),
                                    "record",
                                    "--rate",
                                    "200",
                                    "--nonblocking",
                                    "--idle",
                                    "--format",
                                    "raw",
                                    "-d",
                                    str(int(args.seconds)),
                                    "-o",
                                    str(Path(args.profile) / f"webhooks-{v}-{store.kind}.txt"),
                                    "--pid",
                                    str(off.pids[-1]),
                                ],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                            )
                        org = ORG_PLAIN if v == "a" else ORG_HOOK
                        if on is not None:
                            with grpc.insecure_channel(f"127.0.0.1:{on.grpc_port}") as ch_on:
                                stub = pb_grpc.NotesServiceStub(ch_on)
                                written += creates(stub, auth[org], 1, args.threads)  # warm-up
                                n = creates(stub, auth[org], args.seconds, args.threads)
                        else:
                            n = creates(off_notes, auth[org], args.seconds, args.threads)
                        if v != "a":
                            written += n
                        rate = n / args.seconds
                        results[v].append(rate)
                        print(
                            f"  [{r + 1}/{args.rounds}] {VARIANTS[v]:<55} {rate:6.0f}/s", flush=True
                        )
                        if v in "cd":
                            drain("serving process" if v == "c" else "notes deliver process")
                    finally:
                        if on is not None:
                            on.stop()
                        if deliver is not None:
                            deliver.stop()
                        if spy is not None:
                            spy.wait(timeout=120)

            # commit -> delivery at --rate notes/s, with each way of delivering
            for how in ("serving process", "notes deliver process"):
                if ("c" if how == "serving process" else "d") not in args.variants:
                    continue
                on = deliver = None
                try:
                    if how == "serving process":
                        on = bench.start_server(store, 1, jwt_secret, workdir, {}, "-on")
                    else:
                        deliver = Deliver(store, jwt_secret, workdir)
                    drain(how)
                    before = receiver.count()
                    if on is not None:
                        with grpc.insecure_channel(f"127.0.0.1:{on.grpc_port}") as ch_on:
                            stub = pb_grpc.NotesServiceStub(ch_on)
                            n = creates(stub, auth[ORG_HOOK], args.latency_seconds, 4, args.rate)
                    else:
                        n = creates(off_notes, auth[ORG_HOOK], args.latency_seconds, 4, args.rate)
                    written += n
                    drain(how)
                    lat = [(a - e) * 1000 for a, e in receiver.arrivals[before:written]]
                    latency[how] = (statistics.median(lat), _pct(lat, 99), len(lat))
                    print(
                        f"  commit -> delivery at {args.rate:g}/s by the {how}: p50 "
                        f"{latency[how][0]:.0f} ms, p99 {latency[how][1]:.0f} ms",
                        flush=True,
                    )
                finally:
                    if on is not None:
                        on.stop()
                    if deliver is not None:
                        deliver.stop()
    finally:
        off.stop()
        receiver.server.shutdown()
        store.drop()
        shutil.rmtree(workdir, ignore_errors=True)

    med = {v: statistics.median(x) for v, x in results.items() if x}
    base = med.get("a")
    lines = [
        f"webhooks on {store.kind}: CreateNote closed loop, {args.threads} callers, "
        f"{args.seconds:g} s a run, {args.rounds} interleaved rounds, medians; "
        f"{time.monotonic() - started:.0f} s in all",
        "",
        f"| webhooks ({store.kind}) | CreateNote/s (median) | runs | vs (a) | goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for v, m in med.items():
        runs = ", ".join(f"{x:.0f}" for x in results[v])
        ratio = f"{(m / base - 1) * 100:+.1f} %" if base else ""
        goal = "within 10 %" if v == "b" else ""
        lines.append(f"| {VARIANTS[v]} | {m:.0f} | {runs} | {ratio} | {goal} |")
    for how, (p50, p99, n) in latency.items():
        lines.append(
            f"| commit → delivery at {args.rate:g} notes/s, by the {how}, p50 / p99 "
            f"({n} events) | {p50:.0f} ms / {p99:.0f} ms | | | p99 ≤ 1000 ms |"
        )
    for how, rates in drains.items():
        if rates:
            runs = ", ".join(f"{x:.0f}" for x in rates)
            lines.append(
                f"| events delivered per second to one webhook, by the {how} (backlog, no "
                f"writes) | {statistics.median(rates):.0f}/s | {runs} | | |"
            )
    report = "\n".join(lines) + "\n"
    print()
    print(report)
    Path(args.output).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
