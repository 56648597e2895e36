"""Intake of goal commands: validate against the tool schemas, accept or reject. Pure.

``accept_goal`` turns a parsed intake command into ``goal_accepted``, or a ``goal_rejected``
whose reason says what to fix (every problem at once, up to a limit). Everything after the
acceptance is decided by ``services.planner.decide``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from events.approvals import ApprovalPolicy, goal_policy
from events.catalog import ContextRequested, GoalAccepted, GoalRejected
from events.commands import ParsedGoal, RejectedGoal, StepCommand
from events.model import Budget, Event, ForkPoint, Stamp, TaskSpec
from events.tools import ToolSpec, argument_problems
from events.trace_context import parse_traceparent
from services.planner.fork import fork_of
from services.planner.references import contains_reference_marker, referenced_step_ids
from services.planner.state import PlannerState

__all__ = [
    "CONTEXT_K",
    "DEFAULT_MAX_ATTEMPTS",
    "Tools",
    "accept_goal",
    "context_request",
    "plan_steps",
]

CONTEXT_K = 5
DEFAULT_MAX_ATTEMPTS = 3
_REJECTED_TEXT_LIMIT = 500
_DESCRIPTION_LIMIT = 200
_MAX_PROBLEMS_REPORTED = 10

Tools = Mapping[str, ToolSpec]


def accept_goal(
    parsed: ParsedGoal | RejectedGoal,
    existing: PlannerState | None,
    *,
    tools: Tools,
    now: datetime,
    producer: str,
    origin: Sequence[Event] = (),
    policy: ApprovalPolicy | None = None,
    traceparent: str | None = None,
) -> list[Event]:
    """Admit a goal command into the log, or reject it with a reason saying what to fix.

    A command for a goal id that already exists changes nothing: it is a resend, and a goal
    that exists must never be disturbed by a later command. A fork's ``origin`` is the old
    goal's events up to the fork's sequence (see ``services.planner.fork``). ``policy`` is
    the platform's approval policy; the goal's own ``approval`` adds to it, and the result is
    recorded on ``goal_accepted`` (``events.approvals.goal_policy``). ``traceparent``: the
    command's W3C trace context header, kept (normalized) on the decision when valid.
    """
    if existing is not None:
        return []
    decided = _decide(parsed, tools=tools, now=now, producer=producer, origin=origin, policy=policy)
    trace = parse_traceparent(traceparent)
    if trace is None:
        return decided
    return [
        msgspec.structs.replace(event, traceparent=trace.header())
        if isinstance(event, GoalAccepted | GoalRejected)
        else event
        for event in decided
    ]


def _decide(
    parsed: ParsedGoal | RejectedGoal,
    *,
    tools: Tools,
    now: datetime,
    producer: str,
    origin: Sequence[Event],
    policy: ApprovalPolicy | None,
) -> list[Event]:
    stamp = Stamp(
        producer=producer,
        goal_id=parsed.goal_id,
        occurred_at=now,
        causation_id=None,
        correlation_id=parsed.goal_id,
    )
    if isinstance(parsed, RejectedGoal):
        return [_rejection(stamp, parsed.command_id, parsed.reason, parsed.text)]
    command = parsed.command
    merged = goal_policy(policy, command.approval)
    problems = [merged] if isinstance(merged, str) else []
    approval = None if isinstance(merged, str) else merged
    if command.forked_from is not None and not problems:
        return _accept_fork(parsed, origin, stamp, approval)
    problems += _grant_problems(command.allowed_tools, tools)
    if problems:
        return [_rejection(stamp, parsed.command_id, "; ".join(problems), command.text)]
    steps = None
    if command.steps:
        planned = plan_steps(command.steps, tools, granted=command.allowed_tools)
        if isinstance(planned, list):
            reason = "invalid steps: " + "; ".join(planned[:_MAX_PROBLEMS_REPORTED])
            if len(planned) > _MAX_PROBLEMS_REPORTED:
                reason += f"; and {len(planned) - _MAX_PROBLEMS_REPORTED} more"
            return [_rejection(stamp, parsed.command_id, reason, command.text)]
        steps = planned
    accepted = GoalAccepted(
        **stamp.envelope("goal_accepted", "accepted"),
        command_id=parsed.command_id,
        text=command.text,
        steps=steps,
        expect=command.expect,
        max_iterations=command.max_iterations,
        metadata=command.metadata,
        budget=_budget(command.max_tokens, command.max_cost_usd),
        allowed_tools=tuple(dict.fromkeys(command.allowed_tools)),
        approval=approval,
        priority=command.priority,
        on_message=command.on_message,
    )
    return [accepted]


def _grant_problems(granted: tuple[str, ...], tools: Tools) -> list[str]:
    unknown = [name for name in granted if name not in tools]
    if not unknown:
        return []
    known = ", ".join(sorted(tools))
    return [f"allowed_tools names unknown tool {name!r}; known tools: {known}" for name in unknown]


def _accept_fork(
    parsed: ParsedGoal, origin: Sequence[Event], stamp: Stamp, approval: ApprovalPolicy | None
) -> list[Event]:
    command = parsed.command
    assert command.forked_from is not None
    if command.steps:
        reason = "a fork takes its plan from the goal it forks: drop steps, or submit a new goal"
        return [_rejection(stamp, parsed.command_id, reason, command.text)]
    fork = fork_of(command.forked_from, origin)
    if isinstance(fork, str):
        return [_rejection(stamp, parsed.command_id, fork, command.text)]
    old = fork.origin
    accepted = GoalAccepted(
        **stamp.envelope("goal_accepted", "accepted"),
        command_id=parsed.command_id,
        text=command.text,
        steps=fork.steps,
        expect=command.expect or old.expect,
        max_iterations=command.max_iterations,
        metadata={**old.metadata, **command.metadata},
        budget=_budget(command.max_tokens, command.max_cost_usd) or old.budget,
        forked_from=ForkPoint(
            goal_id=command.forked_from.goal_id, at_seq=command.forked_from.at_seq
        ),
        carried=fork.carried,
        approval=approval,
        priority=command.priority,
        on_message=command.on_message,
    )
    return [accepted]


def _budget(max_tokens: int | None, max_cost_usd: float | None) -> Budget | None:
    if max_tokens is None and max_cost_usd is None:
        return None
    return Budget(max_tokens=max_tokens, max_cost_usd=max_cost_usd)


def _rejection(stamp: Stamp, command_id: str, reason: str, text: str) -> GoalRejected:
    return GoalRejected(
        **stamp.envelope("goal_rejected", "goal_rejected", command_id),
        command_id=command_id,
        reason=reason,
        text=text[:_REJECTED_TEXT_LIMIT],
    )


def context_request(stamp: Stamp, goal: GoalAccepted) -> ContextRequested:
    # Context is gathered once, for the first plan; a revision keeps the plan's tasks.
    return ContextRequested(
        **stamp.envelope("context_requested", "context", 1),
        iteration=1,
        query=goal.text,
        k=CONTEXT_K,
    )


@dataclass(frozen=True, slots=True)
class _Layout:
    """Explicit steps' ids and dependencies, worked out once for validation and the plan.

    ``ordered``: no step names an id or dependencies, so each runs after the one before.
    Such a chain needs none of the graph checks: its ids ``s1``… are unique, each depends on
    the step before it, and it cannot form a cycle.
    """

    ids: list[str]
    dependencies: list[tuple[str, ...]]
    ordered: bool


def _layout(steps: tuple[StepCommand, ...]) -> _Layout:
    # A step without an id is named after its position, so "{{steps.s2.output}}" works
    # for plain ordered steps too.
    ids = [step.id or f"s{position}" for position, step in enumerate(steps, start=1)]
    if not any(step.id is not None or step.depends_on is not None for step in steps):
        return _Layout(ids, [(ids[index - 1],) if index else () for index in range(len(ids))], True)
    return _Layout(ids, [tuple(dict.fromkeys(step.depends_on or ())) for step in steps], False)


def plan_steps(
    steps: tuple[StepCommand, ...], tools: Tools, *, granted: tuple[str, ...] = ()
) -> tuple[TaskSpec, ...] | list[str]:
    """Explicit steps as the plan's tasks, or everything wrong with them, each phrased as
    what to fix (see ``_step_problems`` and ``_tasks``).

    ``granted``: the untrusted tools the whole goal may use, beside each step's own grants.
    """
    layout = _layout(steps)
    problems = _step_problems(steps, layout, tools, granted)
    return problems if problems else _tasks(steps, layout, tools, granted)


def _step_problems(
    steps: tuple[StepCommand, ...], layout: _Layout, tools: Tools, granted: tuple[str, ...]
) -> list[str]:
    ids, dependencies = layout.ids, layout.dependencies
    # Which steps refer to earlier outputs: only those are checked for references, and their
    # arguments are checked by name only (the values are known at scheduling time).
    marked = [contains_reference_marker(step.args) for step in steps]
    problems: list[str] = []
    for step_id, step, refers in zip(ids, steps, marked, strict=True):
        problems += _tool_problems(step_id, step, tools, granted, refers=refers)
    if not layout.ordered:
        problems = _duplicate_id_problems(steps, ids) + problems
        known = set(ids)
        for step_id, deps in zip(ids, dependencies, strict=True):
            problems += [
                f"step {step_id} depends on unknown step {dep!r}; known steps: {', '.join(ids)}"
                for dep in deps
                if dep not in known
            ]
    if problems:
        return problems
    graph = dict(zip(ids, dependencies, strict=True))
    cycle = [] if layout.ordered else _cycle_in(graph)
    if cycle:
        return [f"steps form a cycle ({' -> '.join(cycle)}); remove one of these depends_on"]
    for step_id, step, refers in zip(ids, steps, marked, strict=True):
        if refers:
            problems += _reference_problems(step_id, step, graph)
    return problems


def _duplicate_id_problems(steps: tuple[StepCommand, ...], ids: list[str]) -> list[str]:
    problems: list[str] = []
    seen: dict[str, int] = {}
    for position, (step_id, step) in enumerate(zip(ids, steps, strict=True), start=1):
        if step_id in seen:
            named = "" if step.id is not None else " (the name given to a step without an id)"
            problems.append(
                f"step {position} uses id {step_id!r}{named}, already used by step "
                f"{seen[step_id]}; give every step a unique id"
            )
        seen.setdefault(step_id, position)
    return problems


def _tool_problems(
    step_id: str, step: StepCommand, tools: Tools, granted: tuple[str, ...], *, refers: bool
) -> list[str]:
    spec = tools.get(step.tool)
    if spec is None:
        known = ", ".join(sorted(tools))
        return [f"step {step_id} uses unknown tool {step.tool!r}; known tools: {known}"]
    prefix = f"step {step_id} ({step.tool})"
    if not spec.trusted and step.tool not in (*step.allowed_tools, *granted):
        return [
            f"{prefix}: {step.tool} is untrusted ({spec.origin}); grant it to the step with "
            f'"allowed_tools": ["{step.tool}"]'
        ]
    if refers:
        # Values become known only at scheduling time; the names must already be right.
        names = spec.argument_names()
        unknown = sorted(set(step.args) - set(names))
        missing = sorted(name for name in spec.required_arguments() if name not in step.args)
        problems = [f"{prefix}: unknown argument {name!r}" for name in unknown]
        problems += [f"{prefix}: missing argument {name!r}" for name in missing]
        if problems:
            problems[-1] += f"; expected arguments: {', '.join(names)}"
        return problems
    return [
        f"{prefix}: argument {where or '(all)'}: {what}"
        for where, what in argument_problems(spec, step.args)
    ]


def _cycle_in(graph: Mapping[str, tuple[str, ...]]) -> list[str]:
    """One dependency cycle as a path that returns to its start, or [] when there is none."""
    finished: set[str] = set()
    for start in graph:
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, next_dep = stack.pop()
            if next_dep == 0:
                if node in finished:
                    continue
                if node in on_path:
                    return [*path[path.index(node) :], node]
                path.append(node)
                on_path.add(node)
            deps = graph[node]
            if next_dep < len(deps):
                stack.append((node, next_dep + 1))
                stack.append((deps[next_dep], 0))
            else:
                path.pop()
                on_path.discard(node)
                finished.add(node)
    return []


def _ancestors(step_id: str, graph: Mapping[str, tuple[str, ...]]) -> set[str]:
    seen: set[str] = set()
    pending = list(graph[step_id])
    while pending:
        dep = pending.pop()
        if dep not in seen:
            seen.add(dep)
            pending.extend(graph[dep])
    return seen


def _reference_problems(
    step_id: str, step: StepCommand, graph: Mapping[str, tuple[str, ...]]
) -> list[str]:
    problems: list[str] = []
    ancestors = _ancestors(step_id, graph)
    for ref in referenced_step_ids(step.args):
        if ref not in graph:
            problems.append(
                f"step {step_id} refers to the output of unknown step {ref!r}; "
                f"known steps: {', '.join(graph)}"
            )
        elif ref not in ancestors:
            problems.append(
                f"step {step_id} refers to the output of step {ref!r} but does not depend "
                f"on it; add {ref!r} to its depends_on"
            )
    return problems


def _tasks(
    steps: tuple[StepCommand, ...], layout: _Layout, tools: Tools, granted: tuple[str, ...]
) -> tuple[TaskSpec, ...]:
    """Valid explicit steps as the plan's tasks. A task's ``allowed_tools`` are its step's
    grants, and its own tool when the goal granted it."""
    return tuple(
        TaskSpec(
            task_id=step_id,
            description=step.description or _describe(step.tool, step.args),
            tool=step.tool,
            args=dict(step.args),
            depends_on=deps,
            timeout_s=step.timeout_s or tools[step.tool].default_timeout_s,
            max_attempts=DEFAULT_MAX_ATTEMPTS,
            allowed_tools=_task_grants(step, granted),
        )
        for step_id, step, deps in zip(layout.ids, steps, layout.dependencies, strict=True)
    )


def _task_grants(step: StepCommand, granted: tuple[str, ...]) -> tuple[str, ...]:
    own = (step.tool,) if step.tool in granted else ()
    if not own and not step.allowed_tools:
        return ()  # the common case, without building a dict
    return tuple(dict.fromkeys((*step.allowed_tools, *own)))


def _describe(tool: str, args: Mapping[str, Any]) -> str:
    text = " ".join([tool, *(str(value) for value in args.values())])
    text = " ".join(text.split())
    return text if len(text) <= _DESCRIPTION_LIMIT else text[: _DESCRIPTION_LIMIT - 1] + "…"
