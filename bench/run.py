"""`make bench`: agora and the same workload in LangGraph, side by side.

Runs the scenarios, prints every row and the side-by-side table of the targets, writes
bench/results.json and (a full run) the table into the README.

python -m bench.run                      # the default scenarios, default sizes (~6 minutes)
python -m bench.run throughput langgraph # some of them
python -m bench.run rebuild --events 200000
python -m bench.run query --query-goals 10000
python -m bench.run limits               # the NATS traffic alone: the physical limit
python -m bench.run observe --goals 500  # what traces, metrics and the dashboard cost
python -m bench.run startup              # how long `agora --help` and `agora query` take to start
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable

from bench import scenarios
from bench.cli_startup import run_cli_startup
from bench.compare import markdown
from bench.dashboard import run_dashboard
from bench.harness import RESULTS, Row, describe_machine, print_table, save
from bench.langgraph_workload import langgraph_rows
from bench.limits import run_limits
from bench.memory_search import run_memory_search
from bench.observe import observed_throughput
from bench.query import run_query
from bench.readme import main as readme_main
from bench.rebuild import run_rebuild
from infra.logging import configure_logging

SCENARIOS = (
    "throughput",
    "observe",
    "latency",
    "step",
    "inflight",
    "rebuild",
    "memory",
    "langgraph",
    "query",
    "limits",
    "dashboard",
    "startup",
)
# What `make bench` runs when no scenario is named: every row of the targets.
DEFAULT = tuple(name for name in SCENARIOS if name not in ("query", "limits", "dashboard"))


async def _throughput(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    for durability in ("os", "fsync"):
        rows += await scenarios.throughput(durability, 100, args.goals)
    return rows


async def _memory(args: argparse.Namespace) -> list[Row]:
    return run_memory_search(args.memories)


# Each scenario by name: what it runs, with the sizes the command line gave.
_RUNNERS: dict[str, Callable[[argparse.Namespace], Awaitable[list[Row]]]] = {
    "throughput": _throughput,
    "observe": lambda args: observed_throughput(args.goals),
    "latency": lambda args: scenarios.latency(args.latency_goals),
    "step": lambda args: scenarios.step_overhead(args.latency_goals // 2),
    "inflight": lambda args: scenarios.in_flight(args.in_flight),
    "rebuild": lambda args: run_rebuild(args.events),
    "query": lambda args: run_query(args.query_goals),
    "memory": _memory,
    "langgraph": lambda args: langgraph_rows(
        goals=args.goals, latency_goals=args.latency_goals, in_flight_goals=args.in_flight
    ),
    "limits": lambda _args: run_limits(),
    "dashboard": lambda _args: run_dashboard(),
    "startup": lambda args: asyncio.to_thread(run_cli_startup, args.startup_runs),
}


async def _run(names: list[str], args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        rows += await _RUNNERS[name](args)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "scenarios", nargs="*", help=f"some of {', '.join(SCENARIOS)} (default: all)"
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="rebuild: events replayed")
    parser.add_argument("--goals", type=int, default=2000, help="throughput: goals per run")
    parser.add_argument("--latency-goals", type=int, default=200, help="latency: goals")
    parser.add_argument(
        "--query-goals", type=int, default=100_000, help="query: goals on the blackboard"
    )
    parser.add_argument("--in-flight", type=int, default=10_000, help="inflight: goals at once")
    parser.add_argument("--memories", type=int, default=100_000, help="memory: items searched")
    parser.add_argument("--startup-runs", type=int, default=20, help="startup: runs per command")
    args = parser.parse_args()
    configure_logging("warning")  # the platform's info lines would drown the table
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}"
        )
    try:
        import uvloop

        rows = uvloop.run(_run(args.scenarios or list(DEFAULT), args))
    except ImportError:  # pragma: no cover
        rows = asyncio.run(_run(args.scenarios or list(DEFAULT), args))
    save(rows, describe_machine(), merge=bool(args.scenarios))
    print_table(rows)
    results = json.loads(RESULTS.read_text())
    print(markdown(results["rows"], results["machine"]))
    print("results written to bench/results.json")
    if not args.scenarios:
        readme_main()


if __name__ == "__main__":
    main()
