"""Shared by every scenario: the machine it ran on, results.json, the printed table."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["RESULTS", "Row", "describe_machine", "print_table", "save"]

RESULTS = Path(__file__).with_name("results.json")


@dataclass(frozen=True, slots=True)
class Row:
    """One reported figure: what was measured, its value, and what it is held against."""

    scenario: str
    metric: str
    value: float
    unit: str
    target: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def describe_machine() -> dict[str, Any]:
    from infra.platform.embedded import find_nats_server

    server = subprocess.run(
        [str(find_nats_server()), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    import duckdb

    memory_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "nats_server": server,
        "duckdb": duckdb.__version__,
        "langgraph": _version("langgraph"),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def save(rows: list[Row], machine: dict[str, Any], *, merge: bool = True) -> None:
    """Write ``rows`` to results.json. ``merge``: keep earlier rows of other scenario + metric
    pairs (a partial run); otherwise the file holds exactly this run (a full ``make bench``).
    """
    try:
        existing = json.loads(RESULTS.read_text()) if merge else {}
    except (OSError, ValueError):
        existing = {}
    keyed = {(r["scenario"], r["metric"]): r for r in existing.get("rows", [])}
    for row in rows:
        keyed[(row.scenario, row.metric)] = asdict(row)
    RESULTS.write_text(
        json.dumps({"machine": machine, "rows": list(keyed.values())}, indent=2) + "\n"
    )


def print_table(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="agora benchmarks", title_justify="left")
    for column in ("scenario", "metric", "value", "target"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for row in rows:
        value = (
            f"{row.value:,.0f} {row.unit}" if row.value >= 100 else f"{row.value:.2f} {row.unit}"
        )
        table.add_row(row.scenario, row.metric, value, row.target)
    console = Console()
    console.width = max(console.width, 120)  # one line per row, even in a narrow terminal
    console.print(table)
