# ruff: noqa: RUF001  the table writes the multiplication sign for "times", as the docs do
"""The side-by-side table: each target of the hot path, agora's figure, LangGraph's, the ratio.

Read from the rows of one ``make bench`` run (bench/results.json); ``python -m bench.readme``
writes it into the README.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["COMPARED", "Comparison", "compare", "markdown"]

Better = Literal["higher", "lower"]


@dataclass(frozen=True, slots=True)
class Measure:
    label: str
    target: str
    agora: tuple[str, str]  # (scenario prefix, metric)
    langgraph: tuple[str, str] | None  # (scenario after "LangGraph …: ", metric)
    better: Better
    # The target as a number agora must reach, and as ratios against LangGraph.
    bound: float | None = None
    times_sqlite: float | None = None
    times_memory: float | None = None


COMPARED: tuple[Measure, ...] = (
    Measure(
        "throughput, `os`, 100 in flight",
        "≥ 1,000 goals/s; ≥ 5× SQLite, ≥ 2× in memory",
        ("throughput os, 100 in flight", "goals/s"),
        ("throughput, 100 in flight", "goals/s"),
        "higher",
        bound=1000,
        times_sqlite=5,
        times_memory=2,
    ),
    Measure(
        "throughput, `fsync`, 100 in flight",
        "≥ 300 goals/s",
        ("throughput fsync, 100 in flight", "goals/s"),
        None,
        "higher",
        bound=300,
    ),
    Measure(
        "CPU per standard goal, every process",
        "≤ 2.0 ms",
        ("throughput os, 100 in flight", "CPU per goal, all agora processes"),
        ("throughput, 100 in flight", "CPU per goal"),
        "lower",
        bound=2.0,
    ),
    Measure(
        "traces, metrics and dashboard at that load: their CPU",
        "< 10 % of the platform's",
        ("observed throughput", "observers' CPU share"),
        None,
        "lower",
        bound=10.0,
    ),
    Measure(
        "one goal at a time, submit → completed (p50)",
        "≤ 5 ms, below SQLite (stretch: ≤ in memory)",
        ("latency, one goal at a time", "p50 submit→goal_completed"),
        ("latency, one goal at a time", "p50 submit→completed"),
        "lower",
        bound=5.0,
        times_sqlite=1,
    ),
    Measure(
        "step overhead, 20-step chain of `sleep 0` (p50)",
        "≤ 1 ms per step",
        ("step overhead, 20-step chain of sleep 0", "orchestration per step (p50)"),
        ("step overhead, 20-step chain of sleep 0", "orchestration per step (p50)"),
        "lower",
        bound=1.0,
    ),
    Measure(
        "10,000 in flight, 3 × `sleep 0.2`: drain",
        "all complete; ≤ 15 s",
        ("in flight: 10,000 goals at once", "time to drain"),
        ("in flight, 10,000 goals at once", "time to drain"),
        "lower",
        bound=15.0,
    ),
    Measure(
        "10,000 in flight: total RSS",
        "≤ 1 GB",
        ("in flight: 10,000 goals at once", "peak RSS, all agora processes"),
        ("in flight, 10,000 goals at once", "peak RSS"),
        "lower",
        bound=1000.0,
    ),
    Measure(
        "rebuild 1,000,000 events",
        "≥ 150,000 events/s",
        ("rebuild", "events/s"),
        None,
        "higher",
        bound=150_000,
    ),
    Measure(
        "context search, 100,000 memories (p50)",
        "≤ 2 ms",
        ("context search, 100,000 memories", "p50 search"),
        None,
        "lower",
        bound=2.0,
    ),
    Measure(
        "`agora --help` start-up (median)",
        "≤ 150 ms",
        ("start-up of the agora command", "agora --help (median wall)"),
        None,
        "lower",
        bound=150.0,
    ),
    Measure(
        "`agora query` against `agora up`, start to exit (median)",
        "≤ 250 ms",
        ("start-up of the agora command", "agora query 'SELECT 1' against agora up (median wall)"),
        None,
        "lower",
        bound=250.0,
    ),
)
LANGGRAPH = ("LangGraph SQLite", "LangGraph in memory")


@dataclass(frozen=True, slots=True)
class Comparison:
    measure: Measure
    agora: float | None
    unit: str
    sqlite: float | None
    memory: float | None

    @property
    def met(self) -> bool | None:
        m, value = self.measure, self.agora
        if value is None:
            return None
        ok = m.bound is None or (value >= m.bound if m.better == "higher" else value <= m.bound)
        for factor, other in ((m.times_sqlite, self.sqlite), (m.times_memory, self.memory)):
            if factor is not None and other is not None:
                ok = ok and (
                    value >= factor * other if m.better == "higher" else value <= factor * other
                )
        return ok

    def ratio(self, other: float | None) -> str:
        if self.agora is None or other is None or not other or not self.agora:
            return ""
        times = self.agora / other if self.measure.better == "higher" else other / self.agora
        return f"{times:.1f}×"


def _find(
    rows: Sequence[Mapping[str, Any]], scenario: str, metric: str
) -> Mapping[str, Any] | None:
    for row in rows:
        if str(row["scenario"]).startswith(scenario) and row["metric"] == metric:
            return row
    return None


def compare(rows: Sequence[Mapping[str, Any]]) -> list[Comparison]:
    found: list[Comparison] = []
    for measure in COMPARED:
        mine = _find(rows, *measure.agora)
        theirs: list[float | None] = []
        for label in LANGGRAPH:
            row = (
                _find(rows, f"{label}: {measure.langgraph[0]}", measure.langgraph[1])
                if measure.langgraph
                else None
            )
            theirs.append(float(row["value"]) if row else None)
        found.append(
            Comparison(
                measure,
                float(mine["value"]) if mine else None,
                str(mine["unit"]) if mine else "",
                theirs[0],
                theirs[1],
            )
        )
    return found


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return f"{text} {unit}".strip()


def markdown(rows: Sequence[Mapping[str, Any]], machine: Mapping[str, Any]) -> str:
    lines = [
        "| measure | target | agora | LangGraph SQLite | LangGraph in memory "
        "| vs SQLite | vs in memory | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in compare(rows):
        verdict = {True: "yes", False: "**no**", None: "not run"}[c.met]
        lines.append(
            f"| {c.measure.label} | {c.measure.target} | {_figure(c.agora, c.unit)} | "
            f"{_figure(c.sqlite, c.unit)} | {_figure(c.memory, c.unit)} | {c.ratio(c.sqlite)} | "
            f"{c.ratio(c.memory)} | {verdict} |"
        )
    lines.append("")
    lines.append(
        f"Measured {machine.get('measured_at', '?')} on {machine.get('cpus', '?')} cores "
        f"({machine.get('cpu_model', '?')}, {machine.get('memory_gib', '?')} GiB), Python "
        f"{machine.get('python', '?')}, {machine.get('nats_server', '?')}, DuckDB "
        f"{machine.get('duckdb', '?')}, LangGraph {machine.get('langgraph', '?')}."
    )
    return "\n".join(lines)
