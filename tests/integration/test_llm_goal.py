"""LLM-planned goals end to end: scripted providers over real HTTP on loopback, the real
services on a real JetStream, and agora's real LLM client code in between.

Covers the planner's side of issue 4: a free-text goal planned by the model, an invalid plan
sent back with its problems, revision with the evaluator's feedback, provider failures
(429 + Retry-After, 500s, timeouts, malformed JSON) ending in retry, fallback or a clean
``goal_failed``, the budget, re-run (zero HTTP calls, prompt change reported), and the
secrets scan.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace as replace_struct
from nats.aio.client import Client as NatsClient

from events.catalog import (
    EvaluationCompleted,
    GoalCompleted,
    GoalFailed,
    LlmRequested,
    LlmResponded,
    PlanCreated,
    PlanRevised,
    ToolCalled,
)
from events.codec import encode
from events.model import Event
from infra.bus.dlq import decode_dead_letter
from infra.cli.rerun import rerun_goal
from infra.clients.goals import AgoraClient
from infra.clients.query import projector_caught_up
from infra.platform.runner import producer_name
from infra.settings import Settings
from services.llm.templates import load_prompt
from services.rerun import RerunOptions, rerun_executor
from tests.conftest import InProcessPlatform
from tests.integration.test_react_and_judge import crash_once_after
from tests.llm_servers import (
    ReceivedRequest,
    Scripted,
    ScriptedLlmServer,
    anthropic_reply,
    llm_settings,
    openai_reply,
)
from tests.support import all_events, duplicates, wait_until

PLAN = {
    "tasks": [
        {
            "id": "s1",
            "description": "multiply",
            "tool": "calculator",
            "args": {"expression": "17*23"},
            "depends_on": [],
        },
        {
            "id": "s2",
            "description": "say the product",
            "tool": "echo",
            "args": {"text": "17*23 = {{steps.s1.output}}"},
            "depends_on": ["s1"],
        },
    ]
}
BETTER_PLAN = {
    "tasks": [
        {
            "id": "s1",
            "description": "multiply",
            "tool": "calculator",
            "args": {"expression": "17*23"},
            "depends_on": [],
        },
        {
            "id": "s2",
            "description": "answer",
            "tool": "echo",
            "args": {"text": "the answer is {{steps.s1.output}}"},
            "depends_on": ["s1"],
        },
    ]
}
UNKNOWN_TOOL_PLAN = {
    "tasks": [{"id": "s1", "description": "x", "tool": "teleport", "args": {}, "depends_on": []}]
}


def schema_name(request: ReceivedRequest) -> str | None:
    """Which structured output a request asks for, in either wire format."""
    body = request.body
    fmt = body.get("response_format") or {}
    if isinstance(fmt, dict) and "json_schema" in fmt:
        return str(fmt["json_schema"].get("name"))
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and "input_schema" in tool:
            return str(tool.get("name"))
    return None


ACCEPT = {"score": 0.9, "verdict": "accept", "feedback": "correct", "criteria": []}
REACT_PLAN = {
    "tasks": [
        {
            "id": "r1",
            "description": "the product, checked and said",
            "tool": "react",
            "args": {"instruction": "compute 17*23, then echo the product"},
            "depends_on": [],
            "allowed_tools": ["calculator", "echo"],
        }
    ]
}


def observations(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in body.get("messages", []) if m["role"] == "tool"]


def react_agent(body: dict[str, Any]) -> Scripted:
    """A ReAct agent: calculate, echo the product, then answer."""
    seen = observations(body)
    if not seen:
        return openai_reply(None, tool_calls=[("calculator", {"expression": "17*23"})])
    if seen[-1]["tool"] == "calculator":
        return openai_reply(None, tool_calls=[("echo", {"text": f"product {seen[-1]['output']}"})])
    return openai_reply("17*23 = 391")


def plans(
    *answers: dict[str, Any],
    verdicts: tuple[dict[str, Any], ...] = (ACCEPT,),
    tokens: tuple[int, int] = (50, 20),
) -> Callable[[ReceivedRequest], Scripted]:
    """A model: plan requests get ``answers`` in order, judge requests ``verdicts`` in order
    (the last of each repeats), anything else is a ReAct agent's turn."""
    plan_queue, verdict_queue = list(answers), list(verdicts)

    def script(request: ReceivedRequest) -> Scripted:
        name = schema_name(request)
        if name == "plan":
            answer = plan_queue.pop(0) if len(plan_queue) > 1 else plan_queue[0]
            return openai_reply(json.dumps(answer), tokens_in=tokens[0], tokens_out=tokens[1])
        if name == "judgement":
            verdict = verdict_queue.pop(0) if len(verdict_queue) > 1 else verdict_queue[0]
            return openai_reply(json.dumps(verdict), tokens_in=10, tokens_out=5)
        return react_agent(request.body)

    return script


@pytest.fixture
async def start_platform(
    settings: Settings,
) -> AsyncIterator[Callable[[Settings], InProcessPlatform]]:
    running: list[InProcessPlatform] = []

    def start(llm: Settings) -> InProcessPlatform:
        platform = InProcessPlatform(llm)
        platform.start("planner", "executor", "memory", "evaluator")
        running.append(platform)
        return platform

    yield start
    for platform in running:
        await platform.stop()


async def agora(*args: str, env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run the ``agora`` command line; its exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infra.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, stdout, stderr


def of_type(events: list[Event], kind: type[Event]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


async def test_a_free_text_goal_is_planned_reacts_is_judged_revised_once_and_completes(
    settings: Settings,
    nc: NatsClient,
    client: AgoraClient,
    openai_server: ScriptedLlmServer,
    start_platform: Callable[[Settings], InProcessPlatform],
    tmp_path: Path,
) -> None:
    revise = {"score": 0.3, "verdict": "revise", "feedback": "say: the answer is N", "criteria": []}
    openai_server.set_script(plans(REACT_PLAN, BETTER_PLAN, verdicts=(revise, ACCEPT)))
    llm = llm_settings(settings, openai_server)
    start_platform(llm)

    submitted = await client.submit({"text": "what is 17*23? say the answer"})
    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)

    outcome = events[-1]
    assert isinstance(outcome, GoalCompleted), outcome
    assert outcome.result == "the answer is 391"
    assert outcome.iterations == 2
    [created] = of_type(events, PlanCreated)
    assert created.strategy == "llm"
    assert [(t.tool, t.allowed_tools) for t in created.tasks] == [("react", ("calculator", "echo"))]
    calls = of_type(events, ToolCalled)
    assert [(c.iteration, c.tool) for c in calls if c.iteration == 1] == [
        (1, "calculator"),
        (1, "echo"),
    ]
    [revised] = of_type(events, PlanRevised)
    assert revised.strategy == "llm"
    assert "say: the answer is N" in revised.feedback
    verdicts = of_type(events, EvaluationCompleted)
    assert [v.verdict for v in verdicts] == ["revise", "accept"]
    # What reached the model: plan, three ReAct turns, judge, the revision, judge.
    assert [schema_name(r) for r in openai_server.requests] == [
        "plan",
        None,
        None,
        None,
        "judgement",
        "plan",
        "judgement",
    ]
    revision_prompt = json.dumps(openai_server.requests[5].body["messages"])
    assert "[prompt planner/revise.v1]" in revision_prompt
    assert "say: the answer is N" in revision_prompt
    log = await all_events(nc, f"agora.events.{submitted.goal_id}.>")
    assert len(of_type(log, LlmRequested)) == len(of_type(log, LlmResponded)) == 7

    # Re-run with unchanged code: no differences, and not one HTTP request.
    before = len(openai_server.requests)
    report = await rerun_goal(llm, submitted.goal_id)
    assert report.identical, report.differences
    assert report.llm_answers_reused == 2
    judged = await rerun_goal(llm, submitted.goal_id, service="evaluator")
    assert judged.identical, judged.differences
    assert (judged.inputs, judged.llm_answers_reused) == (2, 2)
    executed = await rerun_goal(llm, submitted.goal_id, service="executor")
    assert executed.identical, executed.differences
    assert (executed.inputs, executed.llm_answers_reused) == (3, 3)  # tasks; ReAct thinks
    # A task asking for a call the record cannot answer is reported, and nothing runs.
    history = await all_events(nc, f"agora.events.{submitted.goal_id}.>")
    # A ReAct step's call is recorded by its own tool_called (a plain calculator task's call
    # is recorded by the task itself, so only a changed model answer can ask for another).
    asked_other = ({"id": "call_0", "name": "calculator", "arguments": {"expression": "17*24"}},)
    tampered = [
        replace_struct(e, tool_calls=asked_other)
        if isinstance(e, LlmResponded) and [c["name"] for c in e.tool_calls] == ["calculator"]
        else e
        for e in history
    ]
    options = RerunOptions(
        planning=None,
        producer=producer_name("executor"),
        react_prompt=load_prompt("executor", "react", 1),
    )
    drifted = await rerun_executor(tampered, options, datetime.now(UTC))
    # The refused call's observation makes the next think a request the record lacks too.
    assert [d.kind for d in drifted.differences] == ["llm_request_new", "tool_call_new"]
    assert "17*24" in drifted.differences[1].detail
    assert drifted.llm_calls == 0
    assert len(openai_server.requests) == before

    # A changed revision prompt: the revision request is new, and reported.
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "revise.v2.md").write_text("Revise the plan.\n$tools\n", encoding="utf-8")
    changed = await rerun_goal(replace(llm, planner_prompts=prompts), submitted.goal_id)
    assert [d.kind for d in changed.differences] == ["llm_request_new"]
    assert "'revise'" in changed.differences[0].detail
    assert changed.stopped_early
    assert len(openai_server.requests) == before
    # --live-llm: the new request is asked (once), and the re-run goes on to the end.
    live = await rerun_goal(replace(llm, planner_prompts=prompts), submitted.goal_id, live_llm=True)
    assert live.llm_calls == 1
    assert not live.stopped_early
    # The new request replaced the recorded one; the same plan came back, so nothing else.
    assert [d.kind for d in live.differences] == ["llm_request_new", "llm_request_unasked"]
    assert len(openai_server.requests) == before + 1
    before += 1

    # The same through the command line, as a team would run it.
    env = {**os.environ, **llm.to_env(), "AGORA_LOG_LEVEL": "error"}
    code, stdout, stderr = await agora("rerun", submitted.goal_id, "--json", env=env)
    assert code == 0, stderr
    assert json.loads(stdout)["identical"] is True
    code, stdout, stderr = await agora(
        "redrive", submitted.goal_id, env={**env, "AGORA_PLANNER_PROMPTS": str(prompts)}
    )
    assert code == 1, stderr
    assert b"llm_request_new" in stdout
    assert len(openai_server.requests) == before


async def test_a_plan_naming_an_unknown_tool_goes_back_to_the_model(
    settings: Settings,
    client: AgoraClient,
    openai_server: ScriptedLlmServer,
    start_platform: Callable[[Settings], InProcessPlatform],
) -> None:
    openai_server.set_script(plans(UNKNOWN_TOOL_PLAN, PLAN))
    start_platform(llm_settings(settings, openai_server))

    submitted = await client.submit({"text": "what is 17*23?", "expect": {"contains": "391"}})
    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)

    assert isinstance(events[-1], GoalCompleted), events[-1]
    retry = openai_server.requests[1].body["messages"]
    assert retry[-2]["role"] == "assistant"
    assert "unknown tool 'teleport'" in retry[-1]["content"]


async def test_a_model_that_keeps_naming_an_unknown_tool_fails_the_goal_readably(
    settings: Settings,
    client: AgoraClient,
    openai_server: ScriptedLlmServer,
    start_platform: Callable[[Settings], InProcessPlatform],
) -> None:
    openai_server.set_script(plans(UNKNOWN_TOOL_PLAN))
    start_platform(llm_settings(settings, openai_server, llm_plan_attempts=2))

    submitted = await client.submit({"text": "teleport me"})
    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)

    failed = events[-1]
    assert isinstance(failed, GoalFailed), failed
    assert "no valid plan in 2 attempts" in failed.reason
    assert "unknown tool 'teleport'" in failed.reason
    assert len(openai_server.requests) == 2


@pytest.mark.parametrize(
    ("trouble", "overrides"),
    [
        pytest.param(
            [Scripted(status=429, headers={"Retry-After": "0.2"}, body={"error": {}})],
            {},
            id="429-retry-after",
        ),
        pytest.param([Scripted(status=500, body={"error": {}})] * 2, {}, id="500s"),
        pytest.param(
            [replace(openai_reply(json.dumps(PLAN)), delay_s=1.5)],
            {"llm_timeout_s": 0.5},
            id="timeout",
        ),
    ],
)
async def test_provider_trouble_is_retried_and_the_goal_completes(
    settings: Settings,
    client: AgoraClient,
    openai_server: ScriptedLlmServer,
    start_platform: Callable[[Settings], InProcessPlatform],
    trouble: list[Scripted],
    overrides: dict[str, Any],
) -> None:
    openai_server.push(*trouble)
    openai_server.set_script(plans(PLAN))
    start_platform(llm_settings(settings, openai_server, **overrides))

    submitted = await client.submit({"text": "what is 17*23?", "expect": {"contains": "391"}})
    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)

    assert isinstance(events[-1], GoalCompleted), events[-1]
    asked = [schema_name(r) for r in openai_server.requests]
    assert asked.count("plan") == len(trouble) + 1  # the trouble, then the answer used


async def test_malformed_json_with_no_fallback_fails_the_goal_cleanly(
    settings: Settings,
    client: AgoraClient,
    openai_server: ScriptedLlmServer,
    start_platform: Callable[[Settings], InProcessPlatform],
) -> None:
    openai_server.set_script(lambda _r: Scripted(raw=b'{"choices": ['))
    start_platform(llm_settings(settings, openai_server))
    alone = await client.submit({"text": "what is 17*23?"})
    events = await client.wait_for_outcome(alone.goal_id, timeout_s=30)
    failed = events[-1]
    assert isinstance(failed, GoalFailed), failed
    assert failed.reason.startswith("llm_unavailable: ")
    assert "malformed JSON" in failed.reason


async def test_a_failing_provider_falls_back_to_the_next(
    settings: Settings,
    client: AgoraClient,
    openai_server: ScriptedLlmServer,
    anthropic_server: ScriptedLlmServer,
    start_platform: Callable[[Settings], InProcessPlatform],
) -> None:
    openai_server.set_script(lambda _r: Scripted(status=503, body={"error": {}}))
    anthropic_server.set_script(
        lambda r: anthropic_reply(
            tool_uses=[("plan", PLAN) if schema_name(r) == "plan" else ("judgement", ACCEPT)]
        )
    )
    start_platform(llm_settings(settings, openai_server, anthropic_server))

    submitted = await client.submit({"text": "what is 17*23?", "expect": {"contains": "391"}})
    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)

    assert isinstance(events[-1], GoalCompleted), events[-1]
    assert openai_server.requests
    assert [schema_name(r) for r in anthropic_server.requests] == ["plan", "judgement"]


async def test_when_every_provider_fails_the_goal_fails_cleanly(
    settings: Settings,
    client: AgoraClient,
    openai_server: ScriptedLlmServer,
    start_platform: Callable[[Settings], InProcessPlatform],
) -> None:
    openai_server.set_script(lambda _r: Scripted(status=500, body={"error": {}}))
    start_platform(llm_settings(settings, openai_server))

    submitted = await client.submit({"text": "what is 17*23?"})
    events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)

    failed = events[-1]
    assert isinstance(failed, GoalFailed), failed
    assert failed.reason.startswith("llm_unavailable: ")
    # Re-run reproduces the failure from the record, without asking again.
    asked = len(openai_server.requests)
    report = await rerun_goal(llm_settings(settings, openai_server), submitted.goal_id)
    assert report.identical, report.differences
    assert len(openai_server.requests) == asked


async def test_the_budget_is_enforced_to_the_token(
    settings: Settings,
    nc: NatsClient,
    client: AgoraClient,
    openai_server: ScriptedLlmServer,
    start_platform: Callable[[Settings], InProcessPlatform],
) -> None:
    """Each plan answer uses 50 + 20 = 70 tokens; the model keeps naming an unknown tool."""
    start_platform(llm_settings(settings, openai_server))

    async def run(max_tokens: int) -> tuple[GoalFailed, list[int]]:
        openai_server.requests.clear()
        openai_server.set_script(plans(UNKNOWN_TOOL_PLAN))
        submitted = await client.submit({"text": "teleport me", "max_tokens": max_tokens})
        events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)
        log = await all_events(nc, f"agora.events.{submitted.goal_id}.>")
        spent = sum(e.tokens_in + e.tokens_out for e in of_type(log, LlmResponded))
        assert isinstance(events[-1], GoalFailed), events[-1]
        assert events[-1].reason.startswith("budget_exceeded"), events[-1].reason
        return events[-1], [*[b["max_tokens"] for b in openai_server.bodies()], spent]

    # 139 allowed: the second answer brings the total to 140 > 139, and the goal fails.
    failed, asked = await run(139)
    assert asked == [139, 69, 140]  # each request may use what is left; 140 spent
    assert "used 140 tokens; its budget is 139" in failed.reason
    # 140 allowed: 140 spent is within the budget, but nothing is left for a third call.
    failed, asked = await run(140)
    assert asked == [140, 70, 140]
    assert "tokens are used up" in failed.reason


async def test_the_api_key_is_nowhere_after_a_run(
    settings: Settings,
    nc: NatsClient,
    client: AgoraClient,
    openai_server: ScriptedLlmServer,
    start_platform: Callable[[Settings], InProcessPlatform],
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Stream, DLQ, logs and the DuckDB projection: scanned whole, the key is in none."""
    llm = llm_settings(settings, openai_server, log_level="debug")
    key = llm.llm_endpoints[0].api_key
    answers = iter([*[Scripted(status=500, body={"error": {"message": "boom"}})] * 3])

    def script(request: ReceivedRequest) -> Scripted:
        if "please fail" in json.dumps(request.body):
            return next(answers, Scripted(status=500, body={"error": {}}))
        return plans(PLAN)(request)

    openai_server.set_script(script)
    platform = start_platform(llm)
    platform.start("projector", settings=llm)
    done = await client.submit({"text": "marker-ok what is 17*23?", "expect": {"contains": "391"}})
    failed = await client.submit({"text": "marker-failed please fail"})
    assert isinstance(
        (await client.wait_for_outcome(done.goal_id, timeout_s=30))[-1], GoalCompleted
    )
    assert isinstance((await client.wait_for_outcome(failed.goal_id, timeout_s=30))[-1], GoalFailed)
    await nc.jetstream().publish("agora.intake.goal", b"not json: marker-dlq")
    await wait_until(lambda: dlq_count(nc, 1), what="the dead letter")
    await projector_caught_up(nc)
    await platform.stop()
    # The key did go out, in the header the provider needs: the scan below can find it.
    assert all(r.headers.get("authorization") == f"Bearer {key}" for r in openai_server.requests)

    stream = b"".join(encode(e) for e in await all_events(nc))
    record = (await nc.jetstream().get_last_msg("AGORA_DLQ", "agora.dlq.>")).data or b""
    dlq = record + decode_dead_letter(record).data  # the record, and the bytes it carries
    logs = capfd.readouterr()
    on_disk = b"".join(p.read_bytes() for p in sorted(settings.data_dir.rglob("*")) if p.is_file())
    for name, blob in [
        ("stream", stream),
        ("dlq", dlq),
        ("logs", (logs.out + logs.err).encode()),
        ("files", on_disk),
    ]:
        assert key.encode() not in blob, f"the API key leaked into the {name}"
    # Positive controls: each scan does see what the run wrote.
    assert b"marker-ok" in stream
    assert b"marker-dlq" in dlq
    assert "llm_failed" in logs.out + logs.err  # the planner logged the provider failure
    duckdb_files = list(settings.data_dir.rglob("*.duckdb"))
    assert duckdb_files
    assert b"marker-failed" in on_disk


async def dlq_count(nc: NatsClient, at_least: int) -> bool:
    info = await nc.jetstream().stream_info("AGORA_DLQ")
    return info.state.messages >= at_least


async def test_a_planner_crash_after_the_answer_reuses_it(
    settings: Settings,
    nc: NatsClient,
    client: AgoraClient,
    openai_server: ScriptedLlmServer,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The planner dies right after recording the model's plan answer, before planning: the
    redelivered trigger finds the answer in the log and plans from it, asking nothing again."""
    openai_server.set_script(plans(UNKNOWN_TOOL_PLAN, PLAN))
    llm = llm_settings(settings, openai_server)
    platform = InProcessPlatform(llm)
    platform.start("planner", publisher=crash_once_after("llm_responded"))
    platform.start("executor", "memory", "evaluator")
    try:
        submitted = await client.submit({"text": "what is 17*23?", "expect": {"contains": "391"}})
        events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)
    finally:
        await platform.stop()

    assert isinstance(events[-1], GoalCompleted), events[-1]
    assert "crash after publishing llm_responded" in capfd.readouterr().out  # it did crash
    log = await all_events(nc, f"agora.events.{submitted.goal_id}.>")
    assert not duplicates(log)
    # The invalid plan, then the fixed one: each asked once although the planner crashed.
    assert [schema_name(r) for r in openai_server.requests].count("plan") == 2
    assert len(of_type(log, PlanCreated)) == 1
