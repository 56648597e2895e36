"""Forks: a new goal that starts from the state of an old one as of a stream sequence. Pure.

``agora fork GOAL --at-seq N`` sends a goal command with ``forked_from: {goal_id, at_seq}``.
The planner reads the old goal's events up to sequence N from the log (never trusting the
command for them), folds them as it would have then, and accepts the new goal with:

- the plan of the iteration the old goal was in at N, as the new goal's steps (none if the old
  goal had no plan yet: the new goal is planned from its text, as any goal);
- the tasks of that plan that had completed by N, with their outputs (``carried``): they count
  as completed in the new goal and are not run again; every other task runs;
- the command's text (``agora fork`` sends the old text unless ``--text`` is given), its
  ``expect``, budget and metadata when given, else the old goal's.

The new goal starts at iteration 1 with its own id; nothing is ever written to the old goal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from events.catalog import GoalAccepted
from events.commands import ForkCommand
from events.model import Event, TaskOutcome, TaskSpec
from services.planner.state import evolve

__all__ = ["Fork", "fork_of"]


@dataclass(frozen=True, slots=True)
class Fork:
    origin: GoalAccepted
    steps: tuple[TaskSpec, ...] | None
    carried: tuple[TaskOutcome, ...]


def fork_of(fork: ForkCommand, origin: Sequence[Event]) -> Fork | str:
    """The state to start from, given the old goal's events up to ``fork.at_seq``; or why not."""
    state = None
    for event in origin:
        state = evolve(state, event)
    if state is None:
        return (
            f"cannot fork goal {fork.goal_id}: it has no accepted goal at or before stream "
            f"sequence {fork.at_seq}; pick a sequence from `agora trajectory {fork.goal_id}`"
        )
    if state.goal is None:
        return f"cannot fork goal {fork.goal_id}: it was rejected, there is no state to start from"
    carried = tuple(
        TaskOutcome(
            task_id=task.task_id, tool=task.tool, status="completed", output=progress.output
        )
        for task in state.plan or ()
        if (progress := state.progress.get(task.task_id)) is not None
        and progress.status == "completed"
    )
    return Fork(origin=state.goal, steps=state.plan, carried=carried)
