"""`make bench`: run the scenarios, print a table, write bench/results.json.

python -m bench.run                      # every scenario, default sizes
python -m bench.run rebuild --events 200000
"""

from __future__ import annotations

import argparse
import asyncio

from bench.harness import Row, describe_machine, print_table, save
from bench.rebuild import run_rebuild

SCENARIOS = ("rebuild",)


async def _run(names: list[str], events: int) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        if name == "rebuild":
            rows += await run_rebuild(events)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "scenarios", nargs="*", help=f"some of {', '.join(SCENARIOS)} (default: all)"
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="rebuild: events replayed")
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}"
        )
    try:
        import uvloop

        rows = uvloop.run(_run(args.scenarios or list(SCENARIOS), args.events))
    except ImportError:  # pragma: no cover
        rows = asyncio.run(_run(args.scenarios or list(SCENARIOS), args.events))
    save(rows, describe_machine())
    print_table(rows)
    print("results written to bench/results.json")


if __name__ == "__main__":
    main()
