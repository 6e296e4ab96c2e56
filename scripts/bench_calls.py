"""CPU per call of the gRPC methods in-process, through the real concerns and servicers.

Builds the server `notes serve` builds (create_server: the same interceptor, servicers and
handlers, not started), finds each call's handler through grpc's own interceptor pipeline as
grpc._server does per call, deserializes the request, runs the behavior with a stand-in
context, and serializes the reply; the access log goes through the runtime's queue and its
writer thread. What load on the machine blurs least: thread CPU time per call, the scenarios
interleaved in each round, medians of the rounds.

  .venv/bin/python scripts/bench_calls.py --notes 20000 --rounds 7
  .venv/bin/python scripts/bench_calls.py --database-url postgresql://postgres@127.0.0.1:5432/test
  .venv/bin/python scripts/bench_calls.py --profile /tmp/calls   # cProfile of each scenario
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import logging
import os
import pstats
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench  # noqa: E402


class Context:
    """What the concerns ask of grpc's ServicerContext, for a call that always succeeds."""

    def __init__(self, metadata) -> None:
        self._metadata = metadata
        self._code = None

    def invocation_metadata(self):
        return self._metadata

    def time_remaining(self):
        return None

    def is_active(self) -> bool:
        return True

    def code(self):
        return self._code

    def send_initial_metadata(self, metadata) -> None:
        pass

    def abort_with_status(self, status):
        raise RuntimeError(f"aborted: {status.code} {status.details}")


class Details:
    def __init__(self, method: str, metadata) -> None:
        self.method, self.invocation_metadata = method, metadata


def handlers(running, scenarios):
    """Per scenario: (handler lookup, request bytes, metadata), found as grpc._server finds it."""
    from grpc import _server

    state = running.server._state
    generic = _server._GenericMethod(state.generic_handlers)
    out = {}
    for sc in scenarios:
        metadata = tuple(sc.headers.items())
        details = Details(sc.path, metadata)

        def lookup(details=details):
            return state.interceptor_pipeline.execute(generic.handler, details)

        out[sc.name] = (lookup, sc.payload[5:], metadata)
    return out


def one_call(lookup, data: bytes, metadata) -> None:
    handler = lookup()
    request = handler.request_deserializer(data)
    reply = handler.unary_unary(request, Context(metadata))
    handler.response_serializer(reply)


def measure(args, settings, store, scenarios) -> None:
    from server.rpc.server import create_server

    running = create_server(settings)
    calls = handlers(running, scenarios)
    for lookup, data, md in calls.values():
        for _ in range(200):
            one_call(lookup, data, md)
    results: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, (lookup, data, md) in calls.items():
            started = time.thread_time()
            for _ in range(args.calls):
                one_call(lookup, data, md)
            results[name].append((time.thread_time() - started) / args.calls * 1e6)
    floor = statistics.median(results[scenarios[0].name])
    print(
        f"\n{store.kind}, {args.notes:,} notes: thread CPU per call, us "
        f"(median of {args.rounds} x {args.calls}; min-max)"
    )
    for name, values in results.items():
        med = statistics.median(values)
        print(
            f"  {name:<40} {med:7.1f}  ({min(values):.1f}-{max(values):.1f})"
            f"  floor + {med - floor:6.1f}"
        )
    if args.profile:
        out = Path(args.profile)
        out.mkdir(parents=True, exist_ok=True)
        for name, (lookup, data, md) in calls.items():
            prof = cProfile.Profile(time.thread_time)  # CPU, not wall time
            prof.enable()
            for _ in range(args.calls):
                one_call(lookup, data, md)
            prof.disable()
            text = io.StringIO()
            stats = pstats.Stats(prof, stream=text)
            stats.sort_stats("tottime").print_stats(40)
            stats.sort_stats("cumulative").print_stats(60)
            slug = "".join(c if c.isalnum() else "-" for c in name.lower())
            (out / f"{store.kind}-{slug}.txt").write_text(text.getvalue())
        print(f"profiles in {out}")
    running.server.stop(None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--notes", type=int, default=20_000)
    p.add_argument("--subjects", type=int, default=10_000)
    p.add_argument("--database-url", default="")
    p.add_argument("--calls", type=int, default=2_000, help="calls per scenario per round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--scenarios", default="floor,GetNote,page 1", help="name parts")
    p.add_argument("--profile", default="", help="directory: a cProfile of each scenario")
    args = p.parse_args()

    from server.config import Settings
    from server.rpc import convert
    from server.runtime import _log_off_the_request_path
    from server.store import db, migrations
    from server.store import notes as note_store
    from server.telemetry import logs

    workdir = Path(tempfile.mkdtemp(prefix="notes-calls-"))
    store = bench.make_store(args.database_url, workdir, "calls")
    jwt_secret = secrets.token_urlsafe(32)
    logs.configure()
    try:
        print(f"loading {args.notes:,} notes into {store.kind}", flush=True)
        bench.load_store(store, args.notes, args.subjects)
        creds = bench.credentials_for(store, jwt_secret)
        os.environ["NOTES_JWT_SECRET"] = jwt_secret
        settings = Settings(database_url=store.url, grpc_addr="127.0.0.1:0")
        settings.metrics_addr = "127.0.0.1:0"  # on when the bench serves: counted here too
        engine = db.open_database(store.url, pool_size=settings.pool_size())
        migrations.migrate(engine)
        for memo in (note_store.DECODED, convert.RENDERED):
            memo.resize(settings.note_cache)
        names = [n for n in args.scenarios.split(",") if n]
        scenarios = [
            s
            for s in bench.grpc_scenarios(store, creds, "")
            if any(n in s.name for n in names) and "page 51" not in s.name
        ]
        with open(os.devnull, "w") as sink:
            for h in logging.getLogger().handlers:  # the access lines are formatted, not shown
                if isinstance(h, logging.StreamHandler):
                    h.setStream(sink)
            with _log_off_the_request_path():
                measure(args, settings, store, scenarios)
    finally:
        with contextlib.suppress(Exception):
            db.close()
        with contextlib.suppress(Exception):
            store.drop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
