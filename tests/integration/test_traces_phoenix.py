"""Traces received by a real OTLP receiver that users run: Arize Phoenix (`make phoenix`
installs it into .venv-phoenix; AGORA_PHOENIX names another `phoenix` executable).

A goal planned by a (scripted, real HTTP) model, with a ReAct task, an LLM judge and a
revision, is exported with `agora traces export --goal` over OTLP/HTTP; a DAG goal by
`agora traces follow` as it ends; then a backfill `agora traces export --since 1` over
OTLP/gRPC. Each trace is read back from Phoenix's REST API and checked: span names, parentage,
the conventions' attributes, tokens adding up, and the same span ids every time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from events.catalog import LlmResponded
from events.subjects import EVENTS_STREAM
from infra.bus.reader import stream_last_seq
from infra.clients.goals import AgoraClient
from infra.settings import Settings
from projections.spans import goal_spans
from tests.conftest import InProcessPlatform
from tests.integration.test_llm_goal import ACCEPT, BETTER_PLAN, REACT_PLAN, plans
from tests.llm_servers import ScriptedLlmServer, llm_settings
from tests.support import all_events

ROOT = Path(__file__).resolve().parents[2]
PHOENIX = Path(os.environ.get("AGORA_PHOENIX", ROOT / ".venv-phoenix" / "bin" / "phoenix"))
PROJECT = "agora-test"
REVISE = {"score": 0.3, "verdict": "revise", "feedback": "say: the answer is N", "criteria": []}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not PHOENIX.exists(), reason=f"no Phoenix at {PHOENIX}: `make phoenix` installs it"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Phoenix:
    def __init__(self, workdir: Path) -> None:
        self.http_port, self.grpc_port = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        env = {
            **os.environ,
            "PHOENIX_WORKING_DIR": str(workdir),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.http_port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        self.log = (workdir / "phoenix.log").open("wb")
        self.proc = subprocess.Popen(
            [str(PHOENIX), "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc.poll() is None, "phoenix exited at start (see phoenix.log)"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "phoenix did not start in time"
            time.sleep(0.2)  # polling a starting server

    def spans(self, trace_id: int) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{self.url}/v1/projects/{PROJECT}/spans/otlpv1",
            params={"trace_id": f"{trace_id:032x}", "limit": 1000},
            timeout=10,
        )
        if answer.status_code == 404:  # the project exists once its first span arrived
            return []
        answer.raise_for_status()
        return list(answer.json()["data"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def phoenix(tmp_path: Path) -> Iterator[Phoenix]:
    (tmp_path / "phoenix").mkdir()
    receiver = Phoenix(tmp_path / "phoenix")
    try:
        receiver.wait_ready()
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
async def model_platform(
    settings: Settings, nc: Any, openai_server: ScriptedLlmServer
) -> AsyncIterator[Settings]:
    # ``nc`` first: it provisions the streams the services consume.
    openai_server.set_script(plans(REACT_PLAN, BETTER_PLAN, verdicts=(REVISE, ACCEPT)))
    llm = llm_settings(settings, openai_server)
    platform = InProcessPlatform(llm)
    platform.start()  # every service, the projector too (goal_stats)
    yield llm
    await platform.stop()


def _attributes(span: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in span["attributes"]:
        value = pair["value"]
        if value.get("array_value") is not None:
            values[pair["key"]] = [
                next(v for v in item.values() if v is not None)
                for item in value["array_value"]["values"]
            ]
        else:
            values[pair["key"]] = next((v for v in value.values() if v is not None), None)
    return values


async def _received(
    phoenix: Phoenix, trace_id: int, count: int, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """The trace's spans once Phoenix holds ``count`` of them (it ingests asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        spans = await asyncio.to_thread(phoenix.spans, trace_id)
        if len(spans) >= count:
            return spans
        assert time.monotonic() < deadline, f"phoenix holds {len(spans)} of {count} spans"
        await asyncio.sleep(0.2)


def _agora_env(settings: Settings, **otel: str) -> dict[str, str]:
    return {
        **os.environ,
        **settings.to_env(),
        "AGORA_LOG_LEVEL": "error",
        "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={PROJECT}",
        **otel,
    }


async def _agora(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
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
    return proc.returncode, stdout.decode(), stderr.decode()


def _check_llm_trace(received: list[dict[str, Any]], goal_id: str, log: list[Any]) -> None:
    by_id = {span["span_id"]: span for span in received}
    [root] = [s for s in received if not s.get("parent_span_id")]
    assert root["name"] == "invoke_workflow agora"
    parent_of: Callable[[dict[str, Any]], str] = lambda s: by_id[s["parent_span_id"]]["name"]  # noqa: E731
    names = sorted(s["name"] for s in received)
    assert names.count("invoke_agent planner") == 2  # the plan and the revision
    assert names.count("invoke_agent evaluator") == 2  # two judgements
    assert names.count("invoke_agent executor") == 3  # the ReAct task, then two plain tasks
    assert "retrieval agora-memory" in names
    chats = [s for s in received if s["name"].startswith("chat ")]
    assert len(chats) == 7
    assert {parent_of(c) for c in chats} == {
        "invoke_agent planner",
        "invoke_agent executor",
        "invoke_agent evaluator",
    }
    tools = [s for s in received if s["name"].startswith("execute_tool ")]
    assert sorted(t["name"] for t in tools) == [
        "execute_tool calculator",
        "execute_tool calculator",
        "execute_tool echo",
        "execute_tool echo",
    ]
    assert {parent_of(t) for t in tools} == {"invoke_agent executor"}
    for span in received:
        attributes = _attributes(span)
        assert attributes["gen_ai.conversation.id"] == goal_id
        operation = span["name"].split(" ", 1)[0]
        assert attributes["gen_ai.operation.name"] == operation
        if span is not root:
            assert span["parent_span_id"] in by_id
    for chat in chats:
        attributes = _attributes(chat)
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["gen_ai.request.model"] == "scripted-openai"
        assert attributes["gen_ai.response.model"] == "scripted-gpt"
        assert attributes["gen_ai.response.finish_reasons"][0] in {"stop", "tool_calls"}
        assert "agora.usage.cost_usd" in attributes
        assert "gen_ai.input.messages" not in attributes  # content is opt-in
    answers = [e for e in log if isinstance(e, LlmResponded)]
    for key, field in (
        ("gen_ai.usage.input_tokens", "tokens_in"),
        ("gen_ai.usage.output_tokens", "tokens_out"),
    ):
        on_chats = sum(int(_attributes(c)[key]) for c in chats)
        assert on_chats == sum(getattr(a, field) for a in answers)
        assert on_chats == int(_attributes(root)[key])
    assert sum(float(_attributes(c)["agora.usage.cost_usd"]) for c in chats) == pytest.approx(
        sum(a.cost_usd for a in answers)
    )


async def test_a_goals_trace_reaches_phoenix_with_the_genai_conventions(
    model_platform: Settings, client: AgoraClient, phoenix: Phoenix, nc: Any
) -> None:
    llm = model_platform
    http = _agora_env(llm, OTEL_EXPORTER_OTLP_ENDPOINT=phoenix.url)

    # 1. One goal, exported after the fact over OTLP/HTTP.
    submitted = await client.submit({"goal_id": "g-traced", "text": "what is 17*23? say it"})
    await client.wait_for_outcome(submitted.goal_id, timeout_s=30)
    code, stdout, stderr = await _agora("traces", "export", "--goal", "g-traced", env=http)
    assert code == 0, stderr
    log = await all_events(nc, "agora.events.g-traced.>")
    expected = goal_spans("g-traced", log)
    assert f"g-traced: {len(expected)} spans" in stdout
    received = await _received(phoenix, expected[0].trace_id, len(expected))
    _check_llm_trace(received, "g-traced", log)
    # The ids are the log's: what the receiver holds is what the pure mapping derives.
    assert {s["span_id"] for s in received} == {f"{r.span_id:016x}" for r in expected}

    # 2. The live follower exports a goal as it ends.
    follower = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "infra.cli", "traces", "follow", env=http,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert follower.stderr is not None
    started = await asyncio.wait_for(follower.stderr.readline(), 30)
    assert b"following from stream sequence" in started, started
    dag = {
        "goal_id": "g-dag-traced",
        "text": "two sleeps, then join",
        "steps": [
            {"id": "a", "tool": "sleep", "args": {"seconds": 0.3}},
            {"id": "b", "tool": "sleep", "args": {"seconds": 0.1}},
            {"id": "c", "tool": "echo", "depends_on": ["a", "b"], "args": {"text": "joined"}},
        ],
        "expect": {"contains": "joined"},
    }
    await client.submit(dag)
    await client.wait_for_outcome("g-dag-traced", timeout_s=30)
    dag_expected = goal_spans("g-dag-traced", await all_events(nc, "agora.events.g-dag-traced.>"))
    dag_received = await _received(phoenix, dag_expected[0].trace_id, len(dag_expected))
    executors = [s for s in dag_received if s["name"] == "invoke_agent executor"]
    a, b = (next(s for s in executors if _attributes(s)["agora.task_id"] == t) for t in ("a", "b"))
    assert int(a["start_time_unix_nano"]) < int(b["end_time_unix_nano"])  # side by side
    assert int(b["start_time_unix_nano"]) < int(a["end_time_unix_nano"])
    follower.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(follower.wait(), 30) == 0

    # 3. A backfill from the first sequence, over OTLP/gRPC: the same spans again.
    grpc = _agora_env(
        llm,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{phoenix.grpc_port}",
    )
    code, stdout, stderr = await _agora("traces", "export", "--since", "1", env=grpc)
    assert code == 0, stderr
    assert "g-traced:" in stdout
    assert "g-dag-traced:" in stdout
    assert "2 goal(s)" in stderr
    again = await _received(phoenix, expected[0].trace_id, len(expected))
    assert {s["span_id"] for s in again} == {f"{r.span_id:016x}" for r in expected}

    # The model calls' tokens and cost on the spans add up to the goals' in goal_stats.
    chats = [_attributes(s) for s in [*again, *dag_received] if s["name"].startswith("chat ")]
    last_seq = await stream_last_seq(nc, EVENTS_STREAM)
    stats = await client.query(
        "SELECT sum(tokens_in), sum(tokens_out), sum(cost_usd) FROM goal_stats",
        min_seq=last_seq,
    )
    [(tokens_in, tokens_out, cost)] = stats.rows
    assert tokens_in == sum(int(c["gen_ai.usage.input_tokens"]) for c in chats) > 0
    assert tokens_out == sum(int(c["gen_ai.usage.output_tokens"]) for c in chats) > 0
    assert cost == pytest.approx(sum(float(c["agora.usage.cost_usd"]) for c in chats))


async def test_a_receiver_that_is_not_there_is_reported(
    settings: Settings, nc: Any, client: AgoraClient, platform: InProcessPlatform
) -> None:
    await client.submit({"goal_id": "g-lonely", "text": "echo hi", "steps": [
        {"tool": "echo", "args": {"text": "hi"}}]})  # fmt: skip
    await client.wait_for_outcome("g-lonely", timeout_s=30)
    env = _agora_env(
        settings,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{_free_port()}",
        OTEL_EXPORTER_OTLP_TIMEOUT="2",
    )
    code, _, stderr = await _agora("traces", "export", "--goal", "g-lonely", env=env)
    assert code == 2
    assert "did not take" in stderr
    assert "Traceback" not in stderr
