"""The gateway's CPU per request, in process: A/B of source trees against one real service.

Loads a SQLite store (scripts/bench.py's dataset), starts one `notes serve` on it, then, round
after round, runs a child process per source tree (and one for scripts/floor_app.py's
transcoding route) that builds the ASGI app with a real grpc.aio channel to that service and
drives it directly, without sockets or uvicorn (which the gateway and the floor app share):
`--concurrency` requests at a time, `--requests` of them, counting the child's CPU
(time.process_time: the event loop and gRPC's own threads) per request. Interleaved rounds,
medians. What the service spends is not counted: it is the same for every tree.

  flock /work/wt/bench.lock .venv/bin/python scripts/bench_gateway_cpu.py --trees .,/tmp/base
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# name -> (path, authorization kind); paths are filled in from the store's targets.
SCENARIOS = ("floor", "ShelfCycle GET", "WooCommerce GET", "NewStore GET", "customer notes GET")


def requests_for(targets: dict, creds: dict) -> dict[str, tuple[str, str, str]]:
    """scenario -> (path, query string, authorization), as scripts/bench.py's."""
    import base64

    basic = base64.b64encode(f"{creds['key_id']}:{creds['secret']}".encode()).decode()
    return {
        "floor": ("/transcoding", "", ""),
        "ShelfCycle GET": (
            f"/api/v1/notes/{targets['shelf_note_id']}",
            "",
            f"Bearer {creds['secret']}",
        ),
        "WooCommerce GET": (
            f"/wp-json/wc/v3/orders/{targets['woo_order']}/notes",
            "",
            f"Basic {basic}",
        ),
        "NewStore GET": (
            f"/orders/{targets['newstore_order']}/notes",
            "",
            f"Bearer {creds['secret']}",
        ),
        "customer notes GET": (
            f"/admin/customers/{targets['hot']}/notes",
            "limit=50",
            f"Bearer {creds['jwt']}",
        ),
    }


# --- the child: one tree, every scenario ----------------------------------------------------


async def _lifespan(app):
    """Starts the app's lifespan; returns a function that ends it."""
    queue: asyncio.Queue = asyncio.Queue()
    started = asyncio.Event()
    await queue.put({"type": "lifespan.startup"})

    async def receive():
        return await queue.get()

    async def send(message):
        if message["type"].startswith("lifespan.startup"):
            if message["type"] != "lifespan.startup.complete":
                raise RuntimeError(message)
            started.set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    await started.wait()

    async def stop():
        await queue.put({"type": "lifespan.shutdown"})
        await task

    return stop


async def _request(app, path: str, query: str, authorization: str) -> tuple[int, int]:
    headers = [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]
    if authorization:
        headers.append((b"authorization", authorization.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    status = 0
    size = 0

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))

    await app(scope, receive, send)
    return status, size


async def _measure(app, req, count: int, concurrency: int) -> float:
    """CPU microseconds per request over count requests, concurrency at a time."""
    left = [count]

    async def worker():
        while left[0] > 0:
            left[0] -= 1
            status, _ = await _request(app, *req)
            if status != 200:
                raise RuntimeError(f"{req[0]}: {status}")

    await asyncio.gather(*(worker() for _ in range(min(concurrency, 4))))  # warm
    left[0] = count
    t0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - t0) / count * 1e6


async def child(args) -> None:
    spec = json.loads(Path(args.spec).read_text())
    requests = requests_for(spec["targets"], spec["creds"])
    if args.floor:
        sys.path.insert(0, str(HERE))
        import floor_app

        app = floor_app.create_app(spec["target"])
        names = ["floor"]
    else:
        from server.config import Settings
        from server.gateway.app import create_app

        app = create_app(spec["target"], Settings())
        names = [n for n in args.names.split(",") if n and n != "floor"]
    # Logging as `notes serve` has it: JSON lines, written by a thread of their own.
    from server import runtime
    from server.telemetry import logs

    logs.configure()
    with getattr(runtime, "_log_off_the_request_path", contextlib.nullcontext)():
        stop = await _lifespan(app)
        out = {}
        for name in names:
            out[name] = await _measure(app, requests[name], args.requests, args.concurrency)
        await stop()
    print(json.dumps(out), file=sys.__stdout__, flush=True)


def run_child(tree: str, spec: Path, args, floor: bool) -> dict[str, float]:
    tree_path = Path(tree).resolve()
    env = {
        **os.environ,
        **json.loads(spec.read_text())["env"],
        "PYTHONPATH": f"{tree_path}:{tree_path}/generated",
    }
    cmd = [
        sys.executable,
        str(HERE / "bench_gateway_cpu.py"),
        "--child",
        "--spec",
        str(spec),
        "--names",
        ",".join(args.names),
        "--requests",
        str(args.requests),
        "--concurrency",
        str(args.concurrency),
    ]
    if floor:
        cmd.append("--floor")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree_path)
    if out.returncode:
        raise SystemExit(f"{tree}: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the parent ----------------------------------------------------------------------------


def ab(spec: Path, args) -> None:
    """Interleaved rounds of every tree (and the floor app) on one service; medians."""
    trees = [t for t in args.trees.split(",") if t]
    samples: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        order = trees if r % 2 == 0 else trees[::-1]
        if "floor" in args.names:
            for name, us in run_child(trees[0], spec, args, floor=True).items():
                samples.setdefault(("floor app", name), []).append(us)
        for tree in order:
            for name, us in run_child(tree, spec, args, floor=False).items():
                samples.setdefault((tree, name), []).append(us)
        print(f"round {r + 1}/{args.rounds}", flush=True)
    print()
    print(
        f"CPU us per request in the gateway's process (median of {args.rounds}; min-max;"
        f" x: median per-round ratio to {trees[0]})"
    )
    print(f"| tree | {' | '.join(args.names)} |")
    print(f"|---|{'---|' * len(args.names)}")
    for tree in (["floor app"] if "floor" in args.names else []) + trees:
        cells = []
        for name in args.names:
            values = samples.get((tree, name))
            if not values:
                cells.append("")
                continue
            cell = f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"
            base = samples.get((trees[0], name))
            if tree != trees[0] and base:  # the median of the ratios within each round
                ratios = [v / b for v, b in zip(values, base, strict=True)]
                cell += f", x{statistics.median(ratios):.2f}"
            cells.append(cell)
        print(f"| {tree} | {' | '.join(cells)} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trees", default=".", help="comma separated source directories")
    p.add_argument("--notes", type=int, default=20_000)
    p.add_argument("--subjects", type=int, default=280, help="about 50 notes on an order")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument(
        "--hold",
        action="store_true",
        help="only start the service and write the children's spec; wait (for py-spy runs:"
        " bench_gateway_cpu.py --child --spec FILE --names ...)",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--spec", help="the spec a --hold run wrote: A/B on its service")
    p.add_argument("--names", default="ShelfCycle GET", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        asyncio.run(child(args))
        return 0
    sys.path.insert(0, str(HERE))
    import bench

    args.names = [n for n in args.scenarios.split(",") if n]
    if args.spec:  # a service another run holds (--hold)
        ab(Path(args.spec), args)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="notes-gw-cpu-"))
    jwt = secrets.token_urlsafe(32)
    env = {
        "NOTES_JWT_SECRET": jwt,
        "NOTES_PUBLIC_BASE_URL": "https://shop.example.com",
        "NOTES_APP_BASE_URL": "https://app.example.com",
        "NOTES_METRICS_ADDR": "",
        "OTEL_TRACES_EXPORTER": "none",
    }
    store = bench.make_store("", workdir, "big")
    server = None
    try:
        bench.load_store(store, args.notes, args.subjects)
        creds = bench.credentials_for(store, jwt)
        # The service alone: its own gateway (this script drives one per tree) stays idle in it.
        env_server = {"NOTES_METRICS_ADDR": "", "NOTES_GATEWAY_WORKERS": "0"}
        server = bench.start_server(store, 1, jwt, workdir, env_server)
        targets = {k: getattr(v, "id", v) for k, v in store.targets.items()}
        print(
            f"{args.notes:,} notes; WooCommerce order {targets['woo_notes']} notes, NewStore"
            f" {targets['newstore_notes']}, customer {targets['hot_size']:,}",
            flush=True,
        )
        spec = workdir / "spec.json"
        spec.write_text(
            json.dumps(
                {
                    "target": f"127.0.0.1:{server.grpc_port}",
                    "targets": targets,
                    "creds": creds,
                    "env": env,
                }
            )
        )
        if args.hold:
            print(f"spec: {spec}; Ctrl-C ends", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while server.process.poll() is None:
                    time.sleep(1)
            return 0
        ab(spec, args)
        return 0
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
