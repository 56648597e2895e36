"""The benchmark's standard goal in LangGraph: the same work, so the figures compare.

A goal is a ``StateGraph``: ``plan`` (the explicit steps of the command), ``run_step`` once per
step (one super-step each, running the step's tool: ``echo`` returns its text, ``sleep``
awaits), ``evaluate`` (the rule checks agora's evaluator makes: every step completed, and the
``expect`` checks), then ``finish``, or back to ``plan`` while iterations remain if the verdict
is ``revise``. It is run the way LangGraph's documentation runs graphs concurrently: one
compiled graph, ``ainvoke`` per goal on its own ``thread_id``, many goals as asyncio tasks.

Two persistence modes: ``sqlite`` (``AsyncSqliteSaver`` on a file, a checkpoint after every
super-step, which is LangGraph's durable execution) and ``none`` (no checkpointer: nothing
survives a crash). Installed with the ``bench`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

from bench.harness import Row

__all__ = ["LABELS", "LangGraphRun", "langgraph_rows", "run_langgraph"]

Persistence = Literal["sqlite", "none"]


class Step(TypedDict):
    tool: str
    args: dict[str, Any]


class GoalState(TypedDict, total=False):
    goal_id: str
    text: str
    steps: list[Step]
    expect: dict[str, Any]
    max_iterations: int
    iteration: int
    next: int
    outputs: list[str]
    verdict: str
    result: str


async def _plan(state: GoalState) -> GoalState:
    return {"iteration": state.get("iteration", 0) + 1, "next": 0, "outputs": []}


async def _run_step(state: GoalState) -> GoalState:
    step = state["steps"][state["next"]]
    if step["tool"] == "sleep":
        seconds = float(step["args"]["seconds"])
        await asyncio.sleep(seconds)
        output = f"slept {seconds:g}s"
    else:
        output = str(step["args"]["text"])
    return {"next": state["next"] + 1, "outputs": [*state["outputs"], output]}


def _after_step(state: GoalState) -> str:
    return "run_step" if state["next"] < len(state["steps"]) else "evaluate"


async def _evaluate(state: GoalState) -> GoalState:
    result = state["outputs"][-1] if state["outputs"] else ""
    expect = state.get("expect") or {}
    passed = len(state["outputs"]) == len(state["steps"])
    if "contains" in expect:
        passed = passed and str(expect["contains"]) in result
    if "equals" in expect:
        passed = passed and result.strip() == str(expect["equals"]).strip()
    return {"verdict": "accept" if passed else "revise", "result": result}


def _after_evaluation(state: GoalState) -> str:
    if state["verdict"] == "accept" or state["iteration"] >= state.get("max_iterations", 3):
        return "finish"
    return "plan"


async def _finish(state: GoalState) -> GoalState:
    return {"result": state["result"]}


def build_graph(checkpointer: Any = None) -> Any:
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(GoalState)
    builder.add_node("plan", _plan)
    builder.add_node("run_step", _run_step)
    builder.add_node("evaluate", _evaluate)
    builder.add_node("finish", _finish)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "run_step")
    builder.add_conditional_edges("run_step", _after_step, ["run_step", "evaluate"])
    builder.add_conditional_edges("evaluate", _after_evaluation, ["plan", "finish"])
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer)


@contextlib.asynccontextmanager
async def _graph(persistence: Persistence) -> AsyncIterator[Any]:
    if persistence == "none":
        yield build_graph()
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    with tempfile.TemporaryDirectory(prefix="agora-bench-langgraph-") as tmp:
        async with AsyncSqliteSaver.from_conn_string(
            str(Path(tmp) / "checkpoints.sqlite")
        ) as saver:
            yield build_graph(saver)


@dataclass(frozen=True, slots=True)
class LangGraphRun:
    persistence: Persistence
    goals: int
    in_flight: int
    seconds: float
    cpu_ms_per_goal: float
    latencies_ms: list[float]
    peak_rss_mb: float

    @property
    def goals_per_s(self) -> float:
        return self.goals / self.seconds if self.seconds else 0.0

    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def run_langgraph(
    commands: list[dict[str, Any]], *, in_flight: int, persistence: Persistence
) -> LangGraphRun:
    """Run ``commands`` (agora intake commands with explicit steps), ``in_flight`` at a time."""
    async with _graph(persistence) as graph:
        room = asyncio.Semaphore(in_flight)
        latencies: list[float] = []
        peak = _rss_mb()

        async def one(command: dict[str, Any]) -> None:
            nonlocal peak
            async with room:
                started = time.perf_counter()
                state: GoalState = {
                    "goal_id": command["goal_id"],
                    "text": command["text"],
                    "steps": command["steps"],
                    "expect": command.get("expect") or {},
                    "max_iterations": command.get("max_iterations", 3),
                }
                config = {
                    "configurable": {"thread_id": command["goal_id"]},
                    "recursion_limit": 10 * len(command["steps"]) + 50,
                }
                final = await graph.ainvoke(state, config=config)
                assert final["verdict"] == "accept", final
                latencies.append((time.perf_counter() - started) * 1000)
            if len(latencies) % 500 == 0:
                peak = max(peak, _rss_mb())

        cpu0, t0 = _cpu_s(), time.perf_counter()
        await asyncio.gather(*(one(c) for c in commands))
        seconds = time.perf_counter() - t0
        cpu_ms = (_cpu_s() - cpu0) * 1000 / max(1, len(commands))
    return LangGraphRun(
        persistence,
        len(commands),
        in_flight,
        seconds,
        round(cpu_ms, 3),
        latencies,
        round(max(peak, _rss_mb()), 1),
    )


# -- the rows `make bench` reports beside agora's ----------------------------------------------

LABELS: dict[Persistence, str] = {"sqlite": "LangGraph SQLite", "none": "LangGraph in memory"}


def _standard(
    n: int, steps: int = 3, tool: str = "echo", prefix: str = "lg", seconds: float = 0.0
) -> dict[str, Any]:
    from bench.platform import standard_goal

    return standard_goal(n, steps, tool, prefix=prefix, seconds=seconds)


async def langgraph_rows(*, goals: int, latency_goals: int, in_flight_goals: int) -> list[Row]:
    """The same scenarios as agora's, for both persistence modes."""
    rows: list[Row] = []
    for persistence in ("sqlite", "none"):
        label = LABELS[persistence]
        await run_langgraph(
            [_standard(n, prefix="warm") for n in range(100)],
            in_flight=100,
            persistence=persistence,
        )
        run = await run_langgraph(
            [_standard(n) for n in range(goals)], in_flight=100, persistence=persistence
        )
        details = {
            "goals": goals,
            "cpu_ms_per_goal": run.cpu_ms_per_goal,
            "p50_ms": round(run.p50_ms(), 2),
        }
        rows.append(
            Row(
                f"{label}: throughput, 100 in flight",
                "goals/s",
                round(run.goals_per_s, 1),
                "goals/s",
                "",
                details,
            )
        )
        rows.append(
            Row(
                f"{label}: throughput, 100 in flight",
                "CPU per goal",
                run.cpu_ms_per_goal,
                "ms",
                "",
                details,
            )
        )
        one = await run_langgraph(
            [_standard(n, prefix="lat") for n in range(latency_goals)],
            in_flight=1,
            persistence=persistence,
        )
        rows.append(
            Row(
                f"{label}: latency, one goal at a time",
                "p50 submit→completed",
                round(one.p50_ms(), 2),
                "ms",
                "",
                {"goals": latency_goals},
            )
        )
        single = await run_langgraph(
            [_standard(n, 1, "sleep", prefix="one") for n in range(latency_goals // 2)],
            in_flight=1,
            persistence=persistence,
        )
        chain = await run_langgraph(
            [_standard(n, 20, "sleep", prefix="chain") for n in range(latency_goals // 2)],
            in_flight=1,
            persistence=persistence,
        )
        per_step = (chain.p50_ms() - single.p50_ms()) / 19
        rows.append(
            Row(
                f"{label}: step overhead, 20-step chain of sleep 0",
                "orchestration per step (p50)",
                round(per_step, 3),
                "ms",
                "",
                {"p50_chain_ms": round(chain.p50_ms(), 2)},
            )
        )
        flight = await run_langgraph(
            [
                _standard(n, 3, "sleep", prefix="flight", seconds=0.2)
                for n in range(in_flight_goals)
            ],
            in_flight=in_flight_goals,
            persistence=persistence,
        )
        scenario = f"{label}: in flight, {in_flight_goals:,} goals at once, 3 steps wait 200 ms"
        flight_details = {"goals": in_flight_goals, "peak_rss_mb": flight.peak_rss_mb}
        rows.append(
            Row(scenario, "time to drain", round(flight.seconds, 2), "s", "", flight_details)
        )
        rows.append(Row(scenario, "peak RSS", flight.peak_rss_mb, "MB", "", flight_details))
    return rows
