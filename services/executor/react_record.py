"""The record of one ReAct task, folded from the goal's events, and its turns so far. Pure.

A *turn* is one think: the model's reply and the observations of the calls it asked for. The
record is what the log already holds about the task: whether it started or finished, which
calls were announced (``tool_called``), their outcomes, which calls' approvals were asked
for and granted, and which calls wait on a durable timer (``timer_started``).
``services.executor.react`` decides the next action from both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from events.catalog import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    TimerStarted,
    ToolCalled,
    ToolFailed,
    ToolRefused,
    ToolReturned,
)
from events.model import Event
from services.llm.messages import LlmReply

__all__ = ["Observation", "ReactRecord", "Spend", "Turn", "fold_react"]

# What the model is shown about one call: its outcome, its refusal, or a person's denial.
Observation = ToolReturned | ToolFailed | ToolRefused | ApprovalDenied


@dataclass(frozen=True, slots=True)
class Turn:
    """One think: the model's reply and the observations of the calls it asked for so far."""

    step: int
    reply: LlmReply
    observations: tuple[Observation, ...] = ()

    @property
    def pending(self) -> bool:
        return len(self.observations) < len(self.reply.tool_calls)

    def observed(self, observation: Observation) -> Turn:
        return replace(self, observations=(*self.observations, observation))


@dataclass(frozen=True, slots=True)
class Spend:
    tokens: int = 0
    cost_usd: float = 0.0

    @classmethod
    def of(cls, turns: Iterable[Turn]) -> Spend:
        replies = [turn.reply for turn in turns]
        return cls(
            tokens=sum(r.tokens_in + r.tokens_out for r in replies),
            cost_usd=sum(r.cost_usd for r in replies),
        )


# -- the record of one ReAct task --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReactRecord:
    started: bool = False
    finished: bool = False
    called: frozenset[tuple[int, int]] = frozenset()  # (step, call) announced by tool_called
    outcomes: Mapping[tuple[int, int], Observation] = field(default_factory=dict)
    asked: frozenset[tuple[int, int]] = frozenset()  # (step, call) whose approval was requested
    granted: Mapping[tuple[int, int], ApprovalGranted] = field(default_factory=dict)
    # (step, call) -> the durable timer the call waits on (a long sleep, a far wait_until).
    timers: Mapping[tuple[int, int], TimerStarted] = field(default_factory=dict)


def fold_react(events: Iterable[Event], iteration: int, task_id: str) -> ReactRecord:
    """What the log holds about ReAct task ``task_id`` of ``iteration``, in stream order."""
    started = finished = False
    called: set[tuple[int, int]] = set()
    outcomes: dict[tuple[int, int], Observation] = {}
    asked: set[tuple[int, int]] = set()
    granted: dict[tuple[int, int], ApprovalGranted] = {}
    timers: dict[tuple[int, int], TimerStarted] = {}
    for event in events:
        if getattr(event, "iteration", None) != iteration:
            continue
        if getattr(event, "task_id", None) != task_id:
            continue
        match event:
            case TaskStarted():
                started = True
            case TaskCompleted() | TaskFailed() | TaskCancelled():
                finished = True
            case ToolCalled(step=step, call=call) if step > 0:
                called.add((step, call))
            case ToolReturned() | ToolFailed() | ToolRefused() | ApprovalDenied() if event.step:
                outcomes.setdefault((event.step, event.call), event)
            case ApprovalRequested(step=step, call=call) if step > 0:
                asked.add((step, call))
            case ApprovalGranted(step=step, call=call) if step > 0:
                granted.setdefault((step, call), event)
            case TimerStarted(step=step, call=call) if step > 0:
                timers.setdefault((step, call), event)
    return ReactRecord(
        started=started,
        finished=finished,
        called=frozenset(called),
        outcomes=outcomes,
        asked=frozenset(asked),
        granted=granted,
        timers=timers,
    )
