"""The LLM planning strategy: free text -> a validated plan, through structured output. Pure.

The planner never calls a model here. :func:`llm_plan` walks the conversation it would have
with the model, answering each request from the goal's recorded ``llm_responded`` events
(by request hash): the first request without a recorded answer is returned as
:class:`NeedAnswer`, and the adapter asks the model (recording the answer) and decides again.
So a redelivered event, a replay and ``agora rerun`` all rebuild the same conversation.

The conversation: a system prompt (``plan`` or ``revise`` template, listing every tool with
its arguments' JSON Schema) and the goal (``goal`` / ``revision`` template, with memory's
context and, on revision, the plan that ran, how each task ended, and the evaluator's
feedback). The answer must follow :func:`plan_schema`; it is then validated against the
tool registry exactly like explicit intake steps are (unknown tool, bad arguments, unknown
dependency, cycle, reference to a step not depended on) plus ``react`` tasks' allowed tools.
An invalid answer goes back to the model with the problems (``fix`` template), at most
``attempts`` requests in all; then the goal fails with the last problems as its reason.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec.structs import replace as replace_struct

from events.catalog import EvaluationCompleted
from events.commands import StepCommand
from events.model import TaskSpec
from events.tools import REACT_TOOL, ReactArgs, ToolSpec
from events.untrusted_json import decode_json, strip_code_fence
from services.llm.messages import ChatMessage, LlmRequest, request_hash
from services.planner.intake import Tools, plan_steps
from services.planner.state import PlannerState, iteration_outcomes
from services.planner.templates import PromptTemplates

__all__ = [
    "REACT_TOOL",
    "LlmPlanning",
    "NeedAnswer",
    "PlanFailed",
    "Planned",
    "llm_plan",
    "parse_plan",
    "plan_schema",
    "visible_tools",
]

MAX_PLAN_TASKS = 50
_MAX_PROBLEMS = 10


REACT_SPEC = ToolSpec(
    REACT_TOOL,
    "open-ended: think, call one of allowed_tools, observe, repeat until done",
    ReactArgs,
    default_timeout_s=300.0,
)


@dataclass(frozen=True, slots=True)
class LlmPlanning:
    """The LLM planner's configuration (None in the planner = rule-based strategies)."""

    prompts: PromptTemplates
    attempts: int = 3  # requests per plan, the first included
    max_tokens: int = 4096  # per request, lowered to what the goal's budget has left


@dataclass(frozen=True, slots=True)
class Planned:
    tasks: tuple[TaskSpec, ...]


@dataclass(frozen=True, slots=True)
class NeedAnswer:
    request: LlmRequest


@dataclass(frozen=True, slots=True)
class PlanFailed:
    reason: str


class _PlannedTask(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tool: str
    description: str = ""
    args: dict[str, Any] = {}
    depends_on: tuple[str, ...] = ()
    allowed_tools: tuple[str, ...] = ()


class _Plan(msgspec.Struct, frozen=True, kw_only=True):
    tasks: tuple[_PlannedTask, ...]


def _with_react(tools: Tools) -> dict[str, ToolSpec]:
    return {**tools, REACT_TOOL: REACT_SPEC}


def plan_schema(tools: Tools) -> dict[str, Any]:
    """The JSON Schema a plan answer must follow, built from the tool registry."""
    return _plan_schema(tuple(sorted(tools.items())))


@functools.cache
def _plan_schema(registry: tuple[tuple[str, ToolSpec], ...]) -> dict[str, Any]:
    # Built once per registry: pydantic's schema generation costs milliseconds per tool.
    tools = dict(registry)
    names = sorted(tools)
    branches = [
        {
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
                "description": {"type": "string"},
                "tool": {"const": name},
                "args": spec.json_schema(),
                "depends_on": {"type": "array", "items": {"type": "string"}},
                "allowed_tools": (
                    {"type": "array", "items": {"enum": names}, "minItems": 1}
                    if name == REACT_TOOL
                    else {"type": "array", "maxItems": 0}
                ),
            },
            "required": ["id", "description", "tool", "args", "depends_on"],
            "additionalProperties": False,
        }
        for name, spec in sorted(_with_react(tools).items())
    ]
    return {
        "type": "object",
        "properties": {
            "tasks": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_PLAN_TASKS,
                "items": {"anyOf": branches},
            }
        },
        "required": ["tasks"],
        "additionalProperties": False,
    }


def _tool_catalogue(tools: Tools) -> str:
    return _catalogue(tuple(sorted(tools.items())))


@functools.cache
def _catalogue(registry: tuple[tuple[str, ToolSpec], ...]) -> str:
    tools = dict(registry)
    return "\n".join(
        f"- {name}: {spec.description}; {json.dumps(spec.json_schema(), sort_keys=True)}"
        for name, spec in sorted(_with_react(tools).items())
    )


_plan_decoder = msgspec.json.Decoder(_Plan)


def visible_tools(tools: Tools, granted: tuple[str, ...]) -> dict[str, ToolSpec]:
    """The tools the model is shown and may plan with: every trusted tool, and the untrusted
    ones (MCP tools) the goal's submitter granted. The model can never grant a tool itself."""
    return {name: spec for name, spec in tools.items() if spec.trusted or name in granted}


def parse_plan(
    content: str, tools: Tools, *, granted: tuple[str, ...] = ()
) -> tuple[TaskSpec, ...] | list[str]:
    """The plan in a model's answer, or every problem with it (phrased as what to fix).

    ``granted``: the untrusted tools the goal may use; a task using one gets it in its
    ``allowed_tools``.
    """
    body = strip_code_fence(content)
    try:
        plan = decode_json(_plan_decoder, body)
    except msgspec.DecodeError as exc:
        return [f"the answer is not a plan as the response schema describes: {exc}"]
    if not plan.tasks:
        return ["the plan has no tasks; give at least one"]
    if len(plan.tasks) > MAX_PLAN_TASKS:
        return [f"the plan has {len(plan.tasks)} tasks; at most {MAX_PLAN_TASKS} are allowed"]
    with_react = _with_react(tools)
    steps: list[StepCommand] = []
    problems: list[str] = []
    for position, task in enumerate(plan.tasks, start=1):
        raw = {"id": task.id, "tool": task.tool, "args": task.args, "depends_on": task.depends_on}
        if task.description:
            raw["description"] = task.description
        try:
            steps.append(msgspec.convert(raw, StepCommand))
        except msgspec.ValidationError as exc:
            problems.append(f"task {position} ({task.id!r}): {exc}")
        problems += _allowed_tools_problems(task, tools)
    if problems:
        return problems[:_MAX_PROBLEMS]
    specs = plan_steps(tuple(steps), with_react, granted=granted)
    if isinstance(specs, list):
        return specs[:_MAX_PROBLEMS]
    return tuple(
        replace_struct(spec, allowed_tools=tuple(dict.fromkeys(task.allowed_tools)))
        if task.tool == REACT_TOOL
        else spec
        for spec, task in zip(specs, plan.tasks, strict=True)
    )


def _allowed_tools_problems(task: _PlannedTask, tools: Tools) -> list[str]:
    if task.tool != REACT_TOOL:
        if task.allowed_tools:
            return [f"task {task.id}: only {REACT_TOOL} tasks take allowed_tools"]
        return []
    if not task.allowed_tools:
        return [f"task {task.id}: a {REACT_TOOL} task needs allowed_tools (at least one tool)"]
    known = ", ".join(sorted(tools))
    return [
        f"task {task.id}: allowed tool {name!r} is not a tool; known tools: {known}"
        for name in task.allowed_tools
        if name not in tools
    ]


def _context_text(state: PlannerState) -> str:
    """What memory recalled, as JSON data: recalled text may come from any tool's output (a
    web page, an MCP server), so it reaches the model quoted, like task outputs do."""
    return json.dumps([item.text for item in state.context], ensure_ascii=False)


def _plan_text(tasks: tuple[TaskSpec, ...]) -> str:
    return json.dumps(
        [
            {
                "id": task.task_id,
                "description": task.description,
                "tool": task.tool,
                "args": task.args,
                "depends_on": list(task.depends_on),
                **({"allowed_tools": list(task.allowed_tools)} if task.allowed_tools else {}),
            }
            for task in tasks
        ],
        sort_keys=True,
        ensure_ascii=False,
    )


def _feedback(
    verdict: EvaluationCompleted | None, messages: tuple[str, ...], iteration: int
) -> str:
    """The evaluator's feedback and, when input came while the goal ran, that input: it is
    the user's, like the goal's text, so it reaches the model as what to do next."""
    if verdict is not None:
        feedback = verdict.feedback
    else:
        feedback = f"none: iteration {iteration} was interrupted by new input before it ended"
    if not messages:
        return feedback
    listed = json.dumps(list(messages), ensure_ascii=False)
    return f"{feedback}\n\nNew input from the user while the goal ran, oldest first: {listed}"


def _opening(
    state: PlannerState,
    tools: Tools,
    prompts: PromptTemplates,
    verdict: EvaluationCompleted | None,
    messages: tuple[str, ...] = (),
) -> tuple[str, tuple[ChatMessage, ...]]:
    catalogue = _tool_catalogue(tools)
    if verdict is None and not messages:
        system = prompts["plan"].render_system(tools=catalogue)
        user = prompts["goal"].render(text=state.text, context=_context_text(state))
        return "plan", (
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=user),
        )
    # Task outputs are untrusted (a web page, a file): they reach the model as JSON data.
    outcomes = json.dumps(
        [
            {
                "id": o.task_id,
                "tool": o.tool,
                "status": o.status,
                "output": o.output,
                "error": o.error,
            }
            for o in iteration_outcomes(state)
        ],
        ensure_ascii=False,
    )
    system = prompts["revise"].render_system(tools=catalogue)
    user = prompts["revision"].render(
        text=state.text,
        context=_context_text(state),
        iteration=str(state.iteration),
        next_iteration=str(state.iteration + 1),
        plan=_plan_text(state.plan or ()),
        outcomes=outcomes,
        feedback=_feedback(verdict, messages, state.iteration),
    )
    return "revise", (
        ChatMessage(role="system", content=system),
        ChatMessage(role="user", content=user),
    )


def llm_plan(
    state: PlannerState,
    *,
    tools: Tools,
    planning: LlmPlanning,
    verdict: EvaluationCompleted | None = None,
    messages: tuple[str, ...] = (),
) -> Planned | NeedAnswer | PlanFailed:
    """The next step of planning given recorded answers: the first plan, or (``verdict`` or
    ``messages`` set) the revision after that verdict, taking in the input that came."""
    granted = state.granted_tools
    tools = visible_tools(tools, granted)
    purpose, conversation = _opening(state, tools, planning.prompts, verdict, messages)
    schema = plan_schema(tools)
    # The tokens each request may use are what was left before it: what the goal had when
    # this planning phase began, minus this conversation's earlier answers. Fixed by the
    # record, so replaying the conversation rebuilds identical requests (identical hashes).
    budget = state.budget
    budget_tokens = (
        None
        if budget is None or budget.max_tokens is None
        else budget.max_tokens - state.planning_base_tokens
    )
    problems: list[str] = []
    for _attempt in range(planning.attempts):
        max_tokens = planning.max_tokens
        if budget_tokens is not None:
            max_tokens = min(max_tokens, budget_tokens)
        request = LlmRequest(
            purpose=purpose,
            messages=conversation,
            response_schema=schema,
            schema_name="plan",
            max_tokens=max_tokens,
        )
        answer = state.llm_answers.get(request_hash(request))
        if answer is None:
            return NeedAnswer(request)
        if budget_tokens is not None:
            budget_tokens -= answer.tokens_in + answer.tokens_out
        parsed = parse_plan(answer.content, tools, granted=granted)
        if isinstance(parsed, tuple):
            return Planned(parsed)
        problems = parsed
        fix = planning.prompts["fix"].render(problems="\n".join(f"- {p}" for p in problems))
        conversation = (
            *conversation,
            ChatMessage(role="assistant", content=answer.content),
            ChatMessage(role="user", content=fix),
        )
    return PlanFailed(
        f"the LLM planner gave no valid plan in {planning.attempts} attempts; "
        f"last problems: {'; '.join(problems)}"
    )
