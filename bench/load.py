"""Load tests against a real server: `python -m bench.load SCENARIO [options]`.

    crosscheck  the Python client vs h2load (C) on Health/Check and Recommend
    knee        each RPC alone at doubling open-loop rates until p99 blows up
    mix         the RPC mix: open loop at --rate, closed loop at --concurrency
    reload      open-loop load while --publishes new versions are published
    scale       synthetic 30k / 300k / 1M-book artifacts at a fixed low rate
    overload    one RPC (--rpcs, first) at 50% and 2x its capacity: admission control
    fleet       1, 2, 3 replicas (bench/fleet.py): throughput, rating visibility, publish
    cpu         server CPU per call with h2load at 30k / 300k / 1M books, batching on (a
                concurrency curve) and off, two pipelines (bench/cpu.py)
    hostile     server CPU of the worst call the limits allow, per RPC (bench/hostile.py)
    all         all of the above, in that order

Each scenario starts its own server (`python -m server`, --workers when it has
it) on the demo artifacts (bench/data/artifacts/<scale>/, trained once when
missing) or on --artifacts, prints a markdown report and writes
bench/results/load_<scenario>.{json,md,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from bench import cpu, hostile, scenarios
from bench.common import DATA, demo_data, trainer
from bench.runs import LoadSettings
from bench.scale_artifact import PIPELINES
from bench.scenarios import ServerSettings
from bench.workload import DEFAULT_MIX, KINDS, parse_mix
from bookrec.artifact import newest_valid

SCENARIOS = (
    "crosscheck",
    "knee",
    "mix",
    "reload",
    "scale",
    "overload",
    "fleet",
    "cpu",
    "hostile",
)
# One ALS point, as the Makefile's RUN_GRID, and a one-trial study: a demo model in minutes.
DEFAULT_GRID = "factors=256;alpha=10;regularization=1.0;scheme=log"


def demo_artifacts(scale: str, grid: str) -> Path:
    """The artifact root trained from the demo set of ``scale`` (built once, then reused)."""
    root = DATA / "artifacts" / scale
    if newest_valid(root, check_hashes=False) is None:
        data = demo_data(scale)
        print(f"training the {scale} demo artifact into {root} (once) ...", file=sys.stderr)
        trainer(
            "run",
            "--data",
            str(data),
            "--artifacts",
            str(root),
            "--store",
            f"sqlite:///{DATA / 'artifacts' / f'{scale}.sqlite'}",
            "--als-grid",
            grid,
            "--study-trials",
            "1",
        )
    return root


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", choices=(*SCENARIOS, "all"))
    g = p.add_argument_group("server and data")
    g.add_argument("--artifacts", type=Path, help="artifact root (default: the demo artifacts)")
    g.add_argument("--scale", default="bookcrossing", help="demo data scale (default %(default)s)")
    g.add_argument("--als-grid", default=DEFAULT_GRID, help="ALS grid for the demo model")
    g.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    g.add_argument("--cache-size", type=int, help="server's result cache (default: server default)")
    g = p.add_argument_group("client")
    g.add_argument("--channels", type=int, default=8, help="connections (default 8)")
    g.add_argument("--floor-share", type=float, default=0.1, help="health checks in the stream")
    g.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of ids (0 = uniform)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--duration", type=float, help="seconds per measured run")
    g = p.add_argument_group("scenarios")
    g.add_argument("--mix", default=DEFAULT_MIX, help=f"RPC shares; kinds: {', '.join(KINDS)}")
    g.add_argument("--rate", type=float, default=50.0, help="open-loop rate for mix and reload")
    g.add_argument("--concurrency", type=int, default=16, help="closed-loop concurrency")
    g.add_argument("--rpcs", nargs="+", default=["recommend", "similar", "cold_start"])
    g.add_argument("--rates", nargs="+", type=float, default=list(scenarios.DEFAULT_RATES))
    g.add_argument("--knee-factor", type=float, default=5.0)
    g.add_argument("--min-requests", type=int, default=200, help="per knee step (low rates)")
    g.add_argument("--publishes", type=int, default=5)
    g.add_argument("--publish-every", type=float, default=6.0, help="seconds between publishes")
    g.add_argument("--books", nargs="+", type=int, default=list(scenarios.DEFAULT_SIZES))
    g.add_argument("--users", type=int, default=100_000, help="users of the scale artifacts")
    g.add_argument("--factors", type=int, default=64, help="factors of the scale artifacts")
    g.add_argument("--scale-rate", type=float, default=20.0, help="open-loop rate for scale")
    g.add_argument("--cpu-books", nargs="+", type=int, default=list(cpu.DEFAULT_SIZES))
    g.add_argument("--cpu-repeats", type=int, default=3, help="measured runs per RPC for cpu")
    g.add_argument(
        "--cpu-big-users", type=int, default=20_000, help="users of cpu's 1M-book artifact"
    )
    g.add_argument(
        "--cpu-curve",
        nargs="+",
        type=int,
        default=list(cpu.CpuSettings().curve),
        help="cpu: calls in flight, batching on (1 = 1x1, 8 = 8x1, 32 = 8x4, 64 = 8x8)",
    )
    g.add_argument(
        "--cpu-off-curve",
        nargs="*",
        type=int,
        default=list(cpu.CpuSettings().off_curve),
        help="cpu: calls in flight with batching off (its own server; none: skipped)",
    )
    g.add_argument(
        "--cpu-baseline",
        metavar="REF",
        help="cpu: also measure the server of git commit REF (a worktree in the temp "
        "folder) on the same artifacts at 8x1, side by side (the 'before' of a change)",
    )
    g.add_argument(
        "--cpu-pipelines",
        nargs="+",
        choices=PIPELINES,
        default=list(cpu.PIPELINES),
        help="cpu: what Recommend serves, one artifact each (the first: every RPC)",
    )
    g.add_argument("--hostile-books", nargs="+", type=int, default=list(hostile.DEFAULT_SIZES))
    g.add_argument("--visibility-samples", type=int, default=200, help="ratings for fleet")
    g.add_argument(
        "--rating-gaps",
        type=float,
        default=0.0,
        metavar="S",
        help="fleet: a random 0..S s pause before each rating (the fleet idle; default none)",
    )
    g.add_argument(
        "--fleet-parts",
        nargs="+",
        choices=("throughput", "visibility", "propagation"),
        default=["throughput", "visibility", "propagation"],
        help="what fleet measures (default all three)",
    )
    g.add_argument(
        "--fleet-port-base", type=int, default=52610, help="fleet's first port (default 52610)"
    )
    return p


async def _run(name: str, args: argparse.Namespace) -> None:
    load = LoadSettings(
        channels=args.channels,
        floor_share=args.floor_share,
        zipf_s=args.zipf,
        seed=args.seed,
    )
    server = ServerSettings(workers=args.workers, cache_size=args.cache_size)
    shares = parse_mix(args.mix)
    d = args.duration
    rows: list[dict[str, Any]]
    if name == "cpu":
        settings = cpu.CpuSettings(
            curve=tuple(args.cpu_curve),
            off_curve=tuple(args.cpu_off_curve),
            pipelines=tuple(args.cpu_pipelines),
            repeats=args.cpu_repeats,
            duration=d or 5.0,
            baseline=cpu.baseline_tree(args.cpu_baseline) if args.cpu_baseline else None,
        )
        rows, md = await asyncio.to_thread(
            cpu.cpu_scenario,
            args.cpu_books,
            args.users,
            args.factors,
            args.seed,
            settings,
            args.cpu_big_users,
        )
        scenarios.save(name, rows, md)
        return
    if name == "hostile":
        rows, md = await asyncio.to_thread(
            hostile.hostile_scenario,
            args.hostile_books,
            args.users,
            args.factors,
            args.seed,
            hostile.HostileSettings(min_seconds=d or 1.0),
        )
        scenarios.save(name, rows, md)
        return
    if name == "scale":
        rows, md = await scenarios.scale(
            load,
            server,
            args.books,
            args.users,
            args.factors,
            args.rpcs,
            args.scale_rate,
            d or 10.0,
        )
        scenarios.save(name, rows, md)
        return
    artifacts = args.artifacts or demo_artifacts(args.scale, args.als_grid)
    if name == "crosscheck":
        rows, md = await scenarios.crosscheck(artifacts, load, server, args.concurrency, d or 5.0)
    elif name == "knee":
        rows, md = await scenarios.knee(
            artifacts,
            load,
            server,
            args.rpcs,
            args.rates,
            d or 5.0,
            args.knee_factor,
            args.min_requests,
        )
    elif name == "overload":
        rows, md = await scenarios.overload(
            artifacts, load, server, args.rpcs[0], d or 5.0, args.concurrency
        )
    elif name == "fleet":
        from bench.fleet import FleetPlan, fleet

        plan = FleetPlan(
            visibility_samples=args.visibility_samples,
            rating_gaps=args.rating_gaps,
            parts=tuple(args.fleet_parts),
            port_base=args.fleet_port_base,
        )
        rows, md = await fleet(artifacts, load, shares, args.concurrency, d or 10.0, plan)
    elif name == "mix":
        rows, md = await scenarios.mix(
            artifacts, load, server, shares, args.rate, args.concurrency, d or 10.0
        )
    else:
        first_at = 5.0
        duration = d or first_at + args.publishes * args.publish_every + 10.0
        rows, md = await scenarios.reload(
            artifacts,
            load,
            server,
            shares,
            args.rate,
            duration,
            args.publishes,
            first_at,
            args.publish_every,
        )
    scenarios.save(name, rows, md)


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    try:  # fail before starting anything
        parse_mix(args.mix)
        for rpc in args.rpcs:
            parse_mix(rpc)
    except ValueError as e:
        parser.error(str(e))
    for name in SCENARIOS if args.scenario == "all" else (args.scenario,):
        asyncio.run(_run(name, args))


if __name__ == "__main__":
    main()
