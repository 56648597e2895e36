"""ReAct tasks and the LLM judge in the real executor and evaluator, on a real nats-server, over
real HTTP to a scripted OpenAI-compatible provider: the steps recorded, what the provider was
asked, crashes mid-task and mid-judgement, and a provider that is down."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js.api import PubAck

from events.catalog import (
    EvaluationCompleted,
    EvaluationRequested,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    ToolCalled,
    ToolFailed,
)
from events.model import Event, TaskOutcome, event_type
from infra.bus.publisher import EventPublisher
from infra.settings import Settings
from services.executor.decide import INTERRUPTED_ERROR
from tests.conftest import InProcessPlatform
from tests.llm_servers import (
    ReceivedRequest,
    Scripted,
    ScriptedLlmServer,
    llm_settings,
    openai_reply,
)
from tests.support import all_events, duplicates, wait_until

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class SimulatedCrashError(RuntimeError):
    pass


def crash_once_after(*types: str) -> type[EventPublisher]:
    """A publisher that, the first time it stores an event of each of ``types``, fails before
    the input is acked, as a process killed at that moment would: the input is redelivered."""
    pending = set(types)

    class CrashingPublisher(EventPublisher):
        async def __call__(
            self,
            events: Sequence[Event],
            **guards: Any,
        ) -> list[PubAck]:
            acks = await super().__call__(events, **guards)
            for event in events:
                if event_type(event) in pending:
                    pending.discard(event_type(event))
                    raise SimulatedCrashError(f"crash after publishing {event_type(event)}")
            return acks

    return CrashingPublisher


def react_task(goal_id: str) -> TaskScheduled:
    return TaskScheduled(
        event_id=f"sched-{goal_id}",
        goal_id=goal_id,
        occurred_at=NOW,
        causation_id=None,
        correlation_id=goal_id,
        producer="planner@test",
        iteration=1,
        task_id="r1",
        description="a product, echoed",
        tool="react",
        args={"instruction": "compute 17*23, then echo the product"},
        timeout_s=10.0,
        max_attempts=1,
        allowed_tools=("calculator", "echo"),
    )


def evaluation(goal_id: str, result: str = "17*23 = 391") -> EvaluationRequested:
    return EvaluationRequested(
        event_id=f"eval-{goal_id}",
        goal_id=goal_id,
        occurred_at=NOW,
        causation_id=None,
        correlation_id=goal_id,
        producer="planner@test",
        iteration=1,
        text="compute 17*23",
        expect=None,
        result=result,
        tasks=(TaskOutcome(task_id="r1", tool="react", status="completed", output=result),),
    )


def observations(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]


def provider(request: ReceivedRequest) -> Scripted:
    """Judges when asked for structured output; otherwise a ReAct agent that calculates
    (again, if the last call failed), echoes, then answers."""
    body = request.body
    if "response_format" in body:
        verdict = {"score": 0.9, "verdict": "accept", "feedback": "correct", "criteria": []}
        return openai_reply(json.dumps(verdict), tokens_in=50, tokens_out=20)
    seen = observations(body)
    if not seen or seen[-1]["status"] == "failed":
        return openai_reply(None, tool_calls=[("calculator", {"expression": "17*23"})])
    if seen[-1]["tool"] == "calculator":
        return openai_reply(None, tool_calls=[("echo", {"text": f"product {seen[-1]['output']}"})])
    return openai_reply("17*23 = 391")


async def finished(nc: NatsClient, goal_id: str, *types: str) -> list[Event]:
    async def done() -> bool:
        return any(
            event_type(e) in types for e in await all_events(nc, f"agora.events.{goal_id}.>")
        )

    await wait_until(done, timeout_s=30, what=f"{goal_id} to reach {types}")
    return await all_events(nc, f"agora.events.{goal_id}.>")


async def test_a_react_task_then_its_judgement_over_real_http(
    nc: NatsClient, settings: Settings
) -> None:
    with ScriptedLlmServer("openai", provider) as server:
        platform = InProcessPlatform(llm_settings(settings, server))
        platform.start("executor", "evaluator")
        try:
            await EventPublisher(nc)([react_task("g-react")])
            task_events = await finished(nc, "g-react", "task_completed", "task_failed")
            await EventPublisher(nc)([evaluation("g-react")])
            events = await finished(nc, "g-react", "evaluation_completed")
        finally:
            await platform.stop()

    think = ["llm_requested", "llm_responded"]
    assert [event_type(e) for e in task_events] == [
        "task_scheduled",
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
    calls = [e for e in events if isinstance(e, ToolCalled)]
    assert [(c.tool, c.step) for c in calls] == [("calculator", 1), ("echo", 2)]
    assert next(e for e in events if isinstance(e, TaskCompleted)).output == "17*23 = 391"
    verdict = next(e for e in events if isinstance(e, EvaluationCompleted))
    assert (verdict.verdict, verdict.score) == ("accept", 0.95)
    assert [c.name for c in verdict.checks] == ["tasks_succeeded", "judge"]

    react_bodies = [b for b in server.bodies() if "response_format" not in b]
    assert [len(observations(b)) for b in react_bodies] == [0, 1, 2]
    assert [t["function"]["name"] for t in react_bodies[0]["tools"]] == ["calculator", "echo"]
    assert observations(react_bodies[1]) == [
        {"tool": "calculator", "status": "returned", "output": "391"}
    ]
    (judge_body,) = [b for b in server.bodies() if "response_format" in b]
    assert judge_body["response_format"]["json_schema"]["name"] == "judgement"
    assert judge_body["messages"][0]["content"].startswith("[prompt evaluator/judge.v1]")


async def test_crashes_mid_task_and_mid_judgement_reuse_the_record(
    nc: NatsClient, settings: Settings
) -> None:
    with ScriptedLlmServer("openai", provider) as server:
        platform = InProcessPlatform(llm_settings(settings, server))
        # The executor dies once after the first think is recorded and once after the first
        # tool call is announced; the evaluator dies once after the judge's answer is recorded.
        crashing = crash_once_after("llm_responded", "tool_called")
        platform.start("executor", publisher=crashing)
        platform.start("evaluator", publisher=crash_once_after("llm_responded"))
        try:
            await EventPublisher(nc)([react_task("g-crash")])
            await finished(nc, "g-crash", "task_completed", "task_failed")
            await EventPublisher(nc)([evaluation("g-crash")])
            events = await finished(nc, "g-crash", "evaluation_completed")
        finally:
            await platform.stop()

    assert not duplicates(events)
    per_type = Counter(event_type(e) for e in events)
    # Four thinks (the interrupted calculation is asked for again) and one judgement, each
    # asked of the provider exactly once although both services were redelivered their input.
    assert len(server.requests) == per_type["llm_responded"] == per_type["llm_requested"] == 5
    # The announced call was never run: recorded as interrupted, the model asked again.
    (interrupted,) = [e for e in events if isinstance(e, ToolFailed)]
    assert (interrupted.tool, interrupted.step, interrupted.error) == (
        "calculator",
        1,
        INTERRUPTED_ERROR,
    )
    calls = [(e.tool, e.step) for e in events if isinstance(e, ToolCalled)]
    assert calls == [("calculator", 1), ("calculator", 2), ("echo", 3)]
    assert per_type["task_completed"] == per_type["evaluation_completed"] == 1
    verdict = next(e for e in events if isinstance(e, EvaluationCompleted))
    assert verdict.verdict == "accept"
    assert verdict.score == 0.95


async def test_a_provider_that_is_down_fails_the_task_and_leaves_the_verdict_to_the_rules(
    nc: NatsClient, settings: Settings
) -> None:
    def down(_: ReceivedRequest) -> Scripted:
        return Scripted(status=503, body={"error": {"message": "overloaded"}})

    with ScriptedLlmServer("openai", down) as server:
        platform = InProcessPlatform(llm_settings(settings, server, llm_retries=1))
        platform.start("executor", "evaluator")
        try:
            await EventPublisher(nc)([react_task("g-down"), evaluation("g-down")])
            events = await finished(nc, "g-down", "task_failed")
            events = await finished(nc, "g-down", "evaluation_completed")
        finally:
            await platform.stop()

    failed = next(e for e in events if isinstance(e, TaskFailed))
    assert failed.error.startswith("the language model is unavailable at react step 1:")
    verdict = next(e for e in events if isinstance(e, EvaluationCompleted))
    assert verdict.verdict == "accept"
    judge = next(c for c in verdict.checks if c.name == "judge")
    assert judge.passed
    assert judge.detail.startswith("not consulted: the judge was unavailable")
    assert len(server.requests) >= 2  # both asked, each retried, neither stuck
