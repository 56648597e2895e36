"""Write the side-by-side table of bench/results.json into the README, between its markers.

python -m bench.readme
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.compare import markdown
from bench.harness import RESULTS

README = Path(__file__).parents[1] / "README.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def render(readme: str, table: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md has no {BEGIN} … {END} markers to write the table between")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main() -> None:
    results = json.loads(RESULTS.read_text())
    README.write_text(render(README.read_text(), markdown(results["rows"], results["machine"])))
    print(f"README.md: benchmark table from {RESULTS.name} ({results['machine']['measured_at']})")


if __name__ == "__main__":
    main()
