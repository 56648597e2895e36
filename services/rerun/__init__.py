"""Re-run: feed a recorded goal's inputs through the current decision code, compare.

``agora rerun GOAL_ID [--service S]`` is how a team checks a planner, evaluator or prompt
change against yesterday's traffic. Each service has a driver (``RERUNNERS``): it folds the
inputs the service consumed, in stream order, through the *current* code as the live adapter
does, answering model requests from the goal's recorded ``llm_responded`` events by request
hash (no network), and compares the new decisions with the recorded ones (``common.compare``).
Nothing is published, and no tool runs: the executor's driver answers tool calls from the
recorded outcomes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from events.model import Event
from services.rerun.common import Difference, RerunOptions, RerunReport, compare
from services.rerun.evaluator import evaluator_used_llm, rerun_evaluator
from services.rerun.executor import rerun_executor
from services.rerun.planner import PLANNER_INPUTS, planner_used_llm, rerun_planner

__all__ = [
    "PLANNER_INPUTS",
    "RERUNNERS",
    "Difference",
    "RerunOptions",
    "RerunReport",
    "Rerunner",
    "compare",
    "evaluator_used_llm",
    "planner_used_llm",
    "rerun_evaluator",
    "rerun_executor",
    "rerun_planner",
]

Rerunner = Callable[[Sequence[Event], RerunOptions, datetime], Awaitable[RerunReport]]
# Service name -> its re-run.
RERUNNERS: dict[str, Rerunner] = {
    "planner": rerun_planner,
    "executor": rerun_executor,
    "evaluator": rerun_evaluator,
}
