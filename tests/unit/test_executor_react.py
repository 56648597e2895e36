"""ReAct tasks end to end in the executor, with the real tools and an in-memory deduplicating log.

Given a scripted model and the events already recorded -> when a react task_scheduled is
(re)delivered -> then the events recorded, what the model was shown, and what really ran.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from events.approvals import ApprovalPolicy, ApprovalRule
from events.catalog import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    LlmRequested,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    ToolCalled,
    ToolFailed,
    ToolRefused,
    ToolReturned,
)
from events.errors import LlmUnavailableError
from events.model import Budget, Event, Stamp, event_type
from services.executor import decide, react, react_events, react_record, react_request
from services.executor.react_handler import execute_react
from services.executor.registry import ToolRegistry
from services.executor.runner import ToolRunner
from services.executor.tools.context import ToolContext, ToolResult
from services.llm.messages import ChatMessage, LlmReply, LlmRequest, ToolCall
from services.llm.templates import load_prompt

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PRODUCER = "executor@0.1.0"
PROMPT = load_prompt("executor", "react", 1)


class PublishCrashedError(Exception):
    """The process dies while publishing."""


class Stream:
    """A goal's log that dedupes on event_id like JetStream, and can crash on a given event."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.crash_on: Callable[[Event], bool] | None = None

    async def load(self, goal_id: str) -> list[Event]:
        return [e for e in self.events if e.goal_id == goal_id]

    async def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            if self.crash_on is not None and self.crash_on(event):
                self.crash_on = None
                raise PublishCrashedError
            if all(e.event_id != event.event_id for e in self.events):
                self.events.append(event)

    def types(self) -> list[str]:
        return [event_type(e) for e in self.events]

    def of(self, cls: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


Script = Callable[[LlmRequest], LlmReply]


class ScriptedModel:
    """An LlmPort answering with ``script(request)``; remembers every request it was sent."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[LlmRequest] = []

    async def complete(self, request: LlmRequest, *, goal_id: str) -> LlmReply:  # noqa: ARG002
        self.requests.append(request)
        return self.script(request)


class DownModel:
    async def complete(self, request: LlmRequest, *, goal_id: str) -> LlmReply:  # noqa: ARG002
        raise LlmUnavailableError("every provider failed: openai: HTTP 503 after 3 attempts")


def reply(*calls: tuple[str, dict[str, Any]], content: str = "", tokens: int = 10) -> LlmReply:
    return LlmReply(
        provider="scripted",
        model="m-1",
        content=content,
        tool_calls=tuple(
            ToolCall(id=f"call-{i}", name=name, arguments=args)
            for i, (name, args) in enumerate(calls, 1)
        ),
        tokens_in=tokens,
        tokens_out=5,
        cost_usd=0.001,
        latency_ms=2.0,
    )


def tool_messages(request: LlmRequest) -> list[dict[str, Any]]:
    return [json.loads(m.content) for m in request.messages if m.role == "tool"]


def by_observations(*replies: LlmReply) -> Script:
    """Answer the n-th think (n = observations seen so far, as assistant turns) with replies[n]."""

    def script(request: LlmRequest) -> LlmReply:
        turns = sum(1 for m in request.messages if m.role == "assistant")
        return replies[min(turns, len(replies) - 1)]

    return script


def react_task(
    allowed: tuple[str, ...] = ("calculator", "echo"),
    *,
    budget: Budget | None = None,
    args: dict[str, Any] | None = None,
) -> TaskScheduled:
    return TaskScheduled(
        event_id="sched-r1",
        goal_id="g-1",
        occurred_at=NOW,
        causation_id="plan-1",
        correlation_id="g-1",
        producer="planner@0.1.0",
        iteration=1,
        task_id="r1",
        description="work out a product",
        tool="react",
        args={"instruction": "compute 17*23 and echo it"} if args is None else args,
        timeout_s=5.0,
        max_attempts=3,
        allowed_tools=allowed,
        llm_budget=budget,
    )


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[ToolRunner]:
    async with httpx.AsyncClient() as http:
        yield ToolRunner(ToolRegistry.builtin(), ToolContext(workspace=tmp_path, http=http))


def config(runner: ToolRunner, max_steps: int = 4) -> react_request.ReactConfig:
    return react_request.ReactConfig(
        tools=runner.registry.specs(), prompt=PROMPT, max_steps=max_steps
    )


async def run(
    task: TaskScheduled,
    stream: Stream,
    runner: ToolRunner,
    model: ScriptedModel | DownModel | None,
    *,
    redelivered: bool = False,
    max_steps: int = 4,
) -> None:
    await execute_react(
        task,
        redelivered=redelivered,
        config=config(runner, max_steps),
        runner=runner,
        llm=model,
        log=stream,
        publish=stream.publish,
        now=lambda: NOW,
        producer=PRODUCER,
    )


TWO_CALLS_THEN_ANSWER = (
    reply(("calculator", {"expression": "17*23"})),
    reply(("echo", {"text": "the product is 391"})),
    reply(content="17*23 = 391"),
)


async def test_two_tool_calls_then_an_answer_record_every_step(runner: ToolRunner) -> None:
    stream, model = Stream(), ScriptedModel(by_observations(*TWO_CALLS_THEN_ANSWER))

    await run(react_task(), stream, runner, model)

    think = ["llm_requested", "llm_responded"]
    assert stream.types() == [
        "task_started",
        *think,
        "tool_called",
        "tool_returned",
        *think,
        "tool_called",
        "tool_returned",
        *think,
        "task_completed",
    ]
    calls = stream.of(ToolCalled)
    assert [(c.tool, c.step, c.call, c.args) for c in calls] == [
        ("calculator", 1, 1, {"expression": "17*23"}),
        ("echo", 2, 1, {"text": "the product is 391"}),
    ]
    assert [r.output for r in stream.of(ToolReturned)] == ["391", "the product is 391"]
    (done,) = stream.of(TaskCompleted)
    assert (done.tool, done.output, done.attempts) == ("react", "17*23 = 391", 1)
    assert {e.purpose for e in stream.of(LlmRequested)} == {"react"}
    assert len(model.requests) == 3


async def test_the_model_sees_its_prompt_the_granted_tools_and_quoted_observations(
    runner: ToolRunner,
) -> None:
    model = ScriptedModel(by_observations(*TWO_CALLS_THEN_ANSWER))

    await run(react_task(), Stream(), runner, model)

    first, second, _ = model.requests
    assert first.messages[0].role == "system"
    assert first.messages[0].content.startswith("[prompt executor/react.v1]")
    assert "calculator, echo" in first.messages[0].content
    assert first.messages[1] == ChatMessage(
        role="user",
        content="Task r1 (iteration 1): work out a product\n\ncompute 17*23 and echo it",
    )
    assert [t.name for t in first.tools] == ["calculator", "echo"]
    assert first.tools[0].parameters["properties"]["expression"]["type"] == "string"
    assistant, observed = second.messages[2], second.messages[3]
    assert assistant.role == "assistant"
    assert assistant.tool_calls[0].name == "calculator"
    assert observed.role == "tool"
    assert observed.tool_call_id == assistant.tool_calls[0].id
    assert json.loads(observed.content) == {
        "tool": "calculator",
        "status": "returned",
        "output": "391",
    }


async def test_a_tool_not_granted_is_refused_and_never_runs(
    runner: ToolRunner, tmp_path: Path
) -> None:
    stream = Stream()
    model = ScriptedModel(
        by_observations(
            reply(("write_file", {"path": "pwned.txt", "content": "x"})),
            reply(content="could not write"),
        )
    )

    await run(react_task(("echo",)), stream, runner, model)

    assert stream.of(ToolCalled) == []
    (refused,) = stream.of(ToolRefused)
    assert (refused.tool, refused.step, refused.call) == ("write_file", 1, 1)
    assert refused.reason.startswith("tool 'write_file' not granted to this task (granted: echo)")
    assert not (tmp_path / "pwned.txt").exists()
    (observed,) = tool_messages(model.requests[1])
    assert observed["status"] == "refused"
    assert "not granted" in observed["error"]
    assert stream.of(TaskCompleted)[0].output == "could not write"


async def test_react_itself_and_unknown_tools_are_never_granted(runner: ToolRunner) -> None:
    stream = Stream()
    model = ScriptedModel(
        by_observations(
            reply(("react", {"instruction": "again"}), ("nats_publish", {"subject": "x"})),
            reply(content="ok"),
        )
    )

    await run(react_task(("echo", "react", "no_such_tool")), stream, runner, model)

    assert [t.name for t in model.requests[0].tools] == ["echo"]
    assert [r.tool for r in stream.of(ToolRefused)] == ["react", "nats_publish"]
    assert [(r.step, r.call) for r in stream.of(ToolRefused)] == [(1, 1), (1, 2)]
    assert stream.of(ToolCalled) == []


async def test_invalid_arguments_for_a_granted_tool_are_refused(runner: ToolRunner) -> None:
    stream = Stream()
    model = ScriptedModel(
        by_observations(
            reply(("calculator", {"expr": "1+1"})),
            reply(("calculator", {"expression": "1+1"})),
            reply(content="2"),
        )
    )

    await run(react_task(), stream, runner, model)

    (refused,) = stream.of(ToolRefused)
    assert "invalid arguments for tool 'calculator'" in refused.reason
    assert "expression: Field required" in refused.reason
    assert [c.args for c in stream.of(ToolCalled)] == [{"expression": "1+1"}]
    assert stream.of(TaskCompleted)[0].output == "2"


async def test_a_failing_tool_is_an_observation_not_a_retry(runner: ToolRunner) -> None:
    stream = Stream()
    model = ScriptedModel(
        by_observations(reply(("calculator", {"expression": "1/0"})), reply(content="undefined"))
    )

    await run(react_task(), stream, runner, model)

    (failure,) = stream.of(ToolFailed)
    assert (failure.step, failure.call, failure.attempt) == (1, 1, 1)
    assert tool_messages(model.requests[1])[0]["status"] == "failed"
    assert stream.types()[-1] == "task_completed"


async def test_the_step_limit_fails_the_task_readably(runner: ToolRunner) -> None:
    stream = Stream()
    model = ScriptedModel(lambda _: reply(("echo", {"text": "again"})))

    await run(react_task(), stream, runner, model, max_steps=3)

    assert len(model.requests) == 3
    (failed,) = stream.of(TaskFailed)
    assert failed.error.startswith("react step limit reached: 3 steps without a final answer")
    assert len(stream.of(ToolReturned)) == 3


async def test_spending_more_tokens_than_the_budget_fails_with_budget_exceeded(
    runner: ToolRunner,
) -> None:
    # Each think costs 10 + 5 = 15 tokens; 25 were left, so the second think overruns.
    stream = Stream()
    model = ScriptedModel(by_observations(*TWO_CALLS_THEN_ANSWER))

    await run(react_task(budget=Budget(max_tokens=25)), stream, runner, model)

    assert [r.max_tokens for r in model.requests] == [25, 10]
    (failed,) = stream.of(TaskFailed)
    assert failed.error == (
        "budget_exceeded: the react task used 30 LLM tokens, the goal had 25 left"
    )
    assert len(stream.of(ToolCalled)) == 1  # the overrunning reply's tool call never ran


async def test_a_budget_spent_to_the_token_allows_no_further_think(runner: ToolRunner) -> None:
    stream = Stream()
    model = ScriptedModel(by_observations(*TWO_CALLS_THEN_ANSWER))

    await run(react_task(budget=Budget(max_tokens=15)), stream, runner, model)

    assert len(model.requests) == 1
    assert stream.of(TaskFailed)[0].error.startswith(
        "budget_exceeded: all 15 LLM tokens the goal had left are spent"
    )


async def test_a_cost_budget_is_enforced(runner: ToolRunner) -> None:
    stream = Stream()
    model = ScriptedModel(by_observations(*TWO_CALLS_THEN_ANSWER))

    await run(react_task(budget=Budget(max_cost_usd=0.0015)), stream, runner, model)

    assert len(model.requests) == 2
    assert stream.of(TaskFailed)[0].error.startswith("budget_exceeded: the react task spent $0.002")


async def test_an_unavailable_model_fails_the_task_cleanly(runner: ToolRunner) -> None:
    stream = Stream()

    await run(react_task(), stream, runner, DownModel())

    assert stream.types() == ["task_started", "llm_requested", "task_failed"]
    assert stream.of(TaskFailed)[0].error == (
        "the language model is unavailable at react step 1: "
        "every provider failed: openai: HTTP 503 after 3 attempts"
    )


async def test_without_a_model_configured_the_task_fails_with_what_to_set(
    runner: ToolRunner,
) -> None:
    stream = Stream()

    await run(react_task(), stream, runner, None)

    assert stream.types() == ["task_started", "task_failed"]
    assert "AGORA_LLM_BASE_URL" in stream.of(TaskFailed)[0].error


async def test_invalid_react_arguments_fail_without_asking_the_model(runner: ToolRunner) -> None:
    stream, model = Stream(), ScriptedModel(by_observations(reply(content="x")))

    await run(react_task(args={"goal": "x"}), stream, runner, model)

    assert model.requests == []
    assert "invalid arguments for tool 'react': instruction: Field required" in (
        stream.of(TaskFailed)[0].error
    )


async def test_an_empty_answer_fails_the_task(runner: ToolRunner) -> None:
    stream = Stream()

    await run(react_task(), stream, runner, ScriptedModel(lambda _: reply(content="  ")))

    assert stream.of(TaskFailed)[0].error == (
        "the model ended step 1 with neither a tool call nor an answer"
    )


# -- crashes and redeliveries ------------------------------------------------------------


class CountingRunner(ToolRunner):
    def __init__(self, inner: ToolRunner) -> None:
        super().__init__(inner.registry, inner._ctx)
        self.calls: list[str] = []

    async def invoke(self, tool: str, args: dict[str, Any], timeout_s: float) -> ToolResult:
        self.calls.append(tool)
        return await super().invoke(tool, args, timeout_s)


async def test_a_crash_after_a_tool_call_never_reruns_it_and_reuses_recorded_thinks(
    runner: ToolRunner,
) -> None:
    stream, counting = Stream(), CountingRunner(runner)
    first = ScriptedModel(by_observations(*TWO_CALLS_THEN_ANSWER))
    # The process dies as the second tool's result is published: echo ran, nothing recorded it.
    stream.crash_on = lambda e: isinstance(e, ToolReturned) and e.step == 2
    with pytest.raises(PublishCrashedError):
        await run(react_task(), stream, counting, first)
    assert counting.calls == ["calculator", "echo"]

    again = ScriptedModel(by_observations(*TWO_CALLS_THEN_ANSWER))
    await run(react_task(), stream, counting, again, redelivered=True)

    assert counting.calls == ["calculator", "echo"]  # neither tool ran again
    assert len(again.requests) == 1  # only the third think was new
    (interrupted,) = stream.of(ToolFailed)
    assert (interrupted.step, interrupted.error) == (2, decide.INTERRUPTED_ERROR)
    assert tool_messages(again.requests[0])[1]["status"] == "failed"
    assert stream.types().count("task_started") == 1
    assert stream.types()[-1] == "task_completed"


async def test_a_redelivery_after_the_last_think_only_publishes_the_outcome(
    runner: ToolRunner,
) -> None:
    stream, counting = Stream(), CountingRunner(runner)
    stream.crash_on = lambda e: isinstance(e, TaskCompleted)
    with pytest.raises(PublishCrashedError):
        await run(
            react_task(), stream, counting, ScriptedModel(by_observations(*TWO_CALLS_THEN_ANSWER))
        )
    before = list(stream.events)

    again = ScriptedModel(by_observations(*TWO_CALLS_THEN_ANSWER))
    await run(react_task(), stream, counting, again, redelivered=True)

    assert again.requests == []
    assert counting.calls == ["calculator", "echo"]
    assert stream.events[: len(before)] == before
    assert stream.types()[len(before) :] == ["task_completed"]


async def test_a_finished_task_is_left_alone(runner: ToolRunner) -> None:
    stream = Stream()
    await run(react_task(), stream, runner, ScriptedModel(by_observations(*TWO_CALLS_THEN_ANSWER)))
    recorded = list(stream.events)
    assert stream.types()[-1] == "task_completed"
    again = ScriptedModel(by_observations(*TWO_CALLS_THEN_ANSWER))

    await run(react_task(), stream, runner, again, redelivered=True)

    assert again.requests == []
    assert stream.events == recorded


def stamp() -> Stamp:
    return Stamp.caused_by(react_task(), producer=PRODUCER, now=NOW)


def test_fold_reads_only_this_tasks_react_steps() -> None:
    task = react_task()
    s = stamp()
    events: list[Event] = [
        decide.started(task, 1, s),
        react_events.react_called(task, step=1, call=1, tool="echo", args={"text": "a"}, stamp=s),
        react_events.react_called(task, step=1, call=2, tool="echo", args={"text": "b"}, stamp=s),
        react_events.react_returned(
            task, step=1, call=1, tool="echo", output="a", duration_ms=1.0, stamp=s
        ),
        TaskStarted(**s.envelope("x"), iteration=2, task_id="r1", tool="react", attempt=1),
    ]

    record = react_record.fold_react(events, 1, "r1")

    assert record.started
    assert not record.finished
    assert record.called == {(1, 1), (1, 2)}
    assert set(record.outcomes) == {(1, 1)}


async def test_the_same_task_in_a_later_iteration_asks_the_model_afresh(
    runner: ToolRunner,
) -> None:
    stream = Stream()
    await run(react_task(), stream, runner, ScriptedModel(by_observations(*TWO_CALLS_THEN_ANSWER)))
    again = ScriptedModel(by_observations(*TWO_CALLS_THEN_ANSWER))

    await run(
        msgspec.structs.replace(react_task(), iteration=2), stream, runner, again, redelivered=True
    )

    assert len(again.requests) == 3
    assert len(stream.of(TaskCompleted)) == 2
    assert len({e.event_id for e in stream.of(LlmRequested)}) == 6


# -- calls the goal's approval policy names ------------------------------------------------


def approving_task() -> TaskScheduled:
    """A ReAct task whose goal wants every write_file approved, by ada, within a minute."""
    policy = ApprovalPolicy(
        rules=(ApprovalRule(tool="write_file"),), deadline_s=60.0, answerers=("ada",)
    )
    return msgspec.structs.replace(
        react_task(("echo", "write_file")), approval=policy, llm_budget=None
    )


def answer(
    request: ApprovalRequested, *, args: dict[str, Any] | None = None, deny: str = ""
) -> ApprovalGranted | ApprovalDenied:
    """The planner's decision on ``request``: granted (with ``args`` if edited), or denied."""
    common = {
        "goal_id": request.goal_id,
        "occurred_at": NOW,
        "causation_id": "answered-1",
        "correlation_id": request.goal_id,
        "producer": "planner@0.1.0",
        "approval_id": request.approval_id,
        "command_id": f"c-{request.approval_id}",
        "iteration": request.iteration,
        "task_id": request.task_id,
        "tool": request.tool,
        "by": "ada",
        "step": request.step,
        "call": request.call,
    }
    if deny:
        return ApprovalDenied(event_id=f"denied-{request.event_id}", reason=deny, **common)
    return ApprovalGranted(
        event_id=f"granted-{request.event_id}",
        args=request.args if args is None else args,
        original_args=request.args,
        edited=args is not None,
        **common,
    )


WRITE_TWICE_THEN_ANSWER = (
    reply(("echo", {"text": "before"}), ("write_file", {"path": "a.txt", "content": "draft"})),
    reply(("write_file", {"path": "b.txt", "content": "more"})),
    reply(content="saved a draft; b was refused"),
)


async def test_a_call_the_policy_names_waits_then_runs_as_edited_and_a_denial_is_observed(
    runner: ToolRunner, tmp_path: Path
) -> None:
    stream = Stream()
    model = ScriptedModel(by_observations(*WRITE_TWICE_THEN_ANSWER))
    task = approving_task()

    await run(task, stream, runner, model)
    # The echo ran; the write waits, announced by nothing but its request.
    (asked,) = stream.of(ApprovalRequested)
    assert (asked.approval_id, asked.tool, asked.step, asked.call) == (
        "g-1/1/r1/1/2",
        "write_file",
        1,
        2,
    )
    assert asked.args == {"path": "a.txt", "content": "draft"}
    assert (asked.answerers, asked.deadline) == (("ada",), NOW + timedelta(seconds=60))
    assert "write_file" in asked.reason
    assert [c.tool for c in stream.of(ToolCalled)] == ["echo"]
    assert not stream.of(TaskCompleted)

    # Delivered again before anyone answers: it still waits, and nothing is asked twice.
    await run(task, stream, runner, model, redelivered=True)
    assert len(stream.of(ApprovalRequested)) == 1
    assert len(model.requests) == 1

    # Approved with an edit: the think is answered from the record, the edit runs once.
    edit = {"path": "edited.txt", "content": "draft"}
    stream.events.append(answer(asked, args=edit))
    await run(task, stream, runner, model, redelivered=True)
    assert [c.args for c in stream.of(ToolCalled) if c.tool == "write_file"] == [edit]
    assert (tmp_path / "edited.txt").read_text() == "draft"
    assert not (tmp_path / "a.txt").exists()
    second = stream.of(ApprovalRequested)[-1]
    assert (second.approval_id, second.args["path"]) == ("g-1/1/r1/2/1", "b.txt")
    assert len(model.requests) == 2  # think 1 was not asked again
    # The model is told that its call ran with the person's arguments, not its own.
    shown = tool_messages(model.requests[1])[-1]
    assert (shown["status"], shown["approved_args"]) == ("returned", edit)
    assert "approved_args" not in tool_messages(model.requests[1])[0]

    # Denied: the model is shown the denial and answers; the write never ran.
    stream.events.append(answer(second, deny="not b"))
    await run(task, stream, runner, model, redelivered=True)
    assert not (tmp_path / "b.txt").exists()
    assert len(model.requests) == 3
    assert tool_messages(model.requests[-1])[-1] == {
        "tool": "write_file",
        "status": "denied",
        "error": "approval denied: not b",
    }
    (done,) = stream.of(TaskCompleted)
    assert done.output == "saved a draft; b was refused"
    assert [c.tool for c in stream.of(ToolCalled)] == ["echo", "write_file"]


async def test_an_edit_the_tool_refuses_is_refused_and_never_runs(runner: ToolRunner) -> None:
    stream = Stream()
    model = ScriptedModel(by_observations(*WRITE_TWICE_THEN_ANSWER))
    task = msgspec.structs.replace(approving_task(), args={"instruction": "write"})
    await run(task, stream, runner, model)
    asked = stream.of(ApprovalRequested)[0]
    stream.events.append(answer(asked, args={"path": 7}))
    await run(task, stream, runner, model, redelivered=True)
    (refused,) = stream.of(ToolRefused)
    assert refused.reason.startswith("invalid arguments for tool 'write_file'")
    assert [c.tool for c in stream.of(ToolCalled)] == ["echo"]


def test_a_task_without_a_policy_asks_nothing(runner: ToolRunner) -> None:
    task = react_task(("write_file",))
    turn = react_record.Turn(step=1, reply=reply(("write_file", {"path": "a", "content": "b"})))
    action = react.next_react_action(
        task, (turn,), react_record.ReactRecord(started=True), config(runner), stamp()
    )
    assert isinstance(action, react.CallTool)
