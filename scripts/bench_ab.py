"""A/B of two or more source trees on one store, for a machine other work shares.

Each tree (a directory holding a checkout, e.g. `git archive <commit> | tar -x -C DIR`) gets
its own `notes serve` on the same freshly loaded store, side by side; each round runs every
scenario on every server in turn, so drift in what else the machine does hits them alike.
Prints, per tree and scenario, the medians, the median of the per-round ratios to the same
server's floor, and the server's CPU per request (which the load of others blurs least).

  flock /work/wt/bench.lock .venv/bin/python scripts/bench_ab.py --trees /tmp/a,/tmp/b \\
      --database-url postgresql://postgres@127.0.0.1:5432/test --notes 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

SCENARIOS = ("floor: Health/Check", "GetNote", bench.LIST_PAGE_1_20, bench.LIST_PAGE_1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--trees",
        required=True,
        help="comma separated source directories (DIR+NAME=VALUE: with env)",
    )
    p.add_argument("--notes", type=int, default=20_000)
    p.add_argument("--subjects", type=int, default=10_000)
    p.add_argument("--database-url", default="")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--duration", type=int, default=3, help="seconds (h2load takes whole ones)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--scenarios", default="", help="names separated by ; (the floor is added)")
    p.add_argument(
        "--contains",
        action="store_true",
        help="the floor and bench.py's contains scenarios (substring search, customer notes' q)",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the store (for EXPLAIN); prints where it is"
    )
    p.add_argument("--store", default="", help="a store an earlier --keep kept: not loaded again")
    args = p.parse_args()
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    args.profile = ""
    workdir = Path(tempfile.mkdtemp(prefix="notes-bench-ab-"))
    jwt = secrets.token_urlsafe(32)
    if args.store:
        store = bench.reuse_store(args.store, args.database_url)
    else:
        store = bench.make_store(args.database_url, workdir, "big")
    servers: dict[str, bench.Server] = {}
    try:
        bench.load_store(store, args.notes, args.subjects)
        print(f"loaded {args.notes:,} notes in {store.load_seconds:.1f} s", flush=True)
        creds = bench.credentials_for(store, jwt)
        for i, spec in enumerate(args.trees.split(",")):
            # DIR, or DIR+NAME=VALUE+...: the same tree served with other settings
            tree, *settings = spec.split("+")
            env = {
                "PYTHONPATH": f"{tree}:{tree}/generated",
                **dict(s.split("=", 1) for s in settings),
            }
            servers[spec] = bench.start_server(store, args.workers, jwt, workdir, env, f"-ab{i}")
        names = (SCENARIOS[0], *args.scenarios.split(";")) if args.scenarios else SCENARIOS
        scenarios = [s for s in bench.grpc_scenarios(store, creds, "") if s.name in names]
        if args.contains:
            first = next(iter(servers.values()))
            scenarios = scenarios[:1] + bench.contains_scenarios(first, store, creds)
        for tree, server in servers.items():
            for sc in scenarios:
                problem = bench.verify(server, sc)
                if problem:
                    raise SystemExit(f"{tree}: {sc.name}: {problem}")
        results: dict[tuple[str, str], list] = {(t, s.name): [] for t in servers for s in scenarios}
        for round_ in range(args.repeat):
            for sc in scenarios:
                for tree, server in servers.items():
                    r = bench.run_scenario(server, sc, args, workdir, None)
                    results[(tree, sc.name)].append(r)
                    print(
                        f"  [{round_ + 1}/{args.repeat}] {tree} {sc.name:<32} {r.rps:8.1f} rps "
                        f"server {r.cpu['server']:.2f} other {r.cpu['other']:.2f} "
                        f"{r.grpc_errors or ''}",
                        flush=True,
                    )
        print(f"\n{args.notes:,} notes, {args.workers} worker(s), medians of {args.repeat}\n")
        print("| tree | scenario | rps | x floor | p50 ms | p99 ms | server CPU us/request |")
        print("|---|---|---|---|---|---|---|")
        for tree in servers:
            floor = results[(tree, SCENARIOS[0])]
            for sc in scenarios:
                rs = results[(tree, sc.name)]
                ratio = statistics.median(r.rps / f.rps for r, f in zip(rs, floor, strict=True))
                cpu = statistics.median(r.cpu["server"] / r.rps * 1e6 for r in rs if r.rps)
                print(
                    f"| {tree} | {sc.name} | {statistics.median(r.rps for r in rs):,.0f} | "
                    f"{ratio:.2f} | {statistics.median(r.p50_ms for r in rs):.2f} | "
                    f"{statistics.median(r.p99_ms for r in rs):.2f} | {cpu:,.0f} |"
                )
    finally:
        for server in servers.values():
            server.stop()
        if args.keep:
            print(f"kept the store: {store.url}")
        else:
            store.drop()
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
