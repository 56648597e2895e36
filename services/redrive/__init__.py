"""Re-drive: feed a recorded goal's inputs through the current decision code, compare.

``agora redrive GOAL_ID [--service S]`` is how a team checks a planner, evaluator or prompt
change against yesterday's traffic. Each service has a driver (``REDRIVERS``): it folds the
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
from services.redrive.common import Difference, RedriveOptions, RedriveReport, compare
from services.redrive.evaluator import evaluator_used_llm, redrive_evaluator
from services.redrive.executor import redrive_executor
from services.redrive.planner import PLANNER_INPUTS, planner_used_llm, redrive_planner

__all__ = [
    "PLANNER_INPUTS",
    "REDRIVERS",
    "Difference",
    "RedriveOptions",
    "RedriveReport",
    "Redriver",
    "compare",
    "evaluator_used_llm",
    "planner_used_llm",
    "redrive_evaluator",
    "redrive_executor",
    "redrive_planner",
]

Redriver = Callable[[Sequence[Event], RedriveOptions, datetime], Awaitable[RedriveReport]]
# Service name -> its re-drive.
REDRIVERS: dict[str, Redriver] = {
    "planner": redrive_planner,
    "executor": redrive_executor,
    "evaluator": redrive_evaluator,
}
