"""ToolRunner: validation, timeout, output truncation and a circuit breaker per destination."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from events.errors import ToolError
from events.tools import BUILTIN_TOOLS, EchoArgs, ToolSpec
from services.executor.registry import ToolRegistry
from services.executor.runner import ToolRunner, truncate_output
from services.executor.tools.context import ToolContext


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedTool:
    """A tool whose behaviour each test scripts: raise this, return that, count the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: Exception | None = None
        self.output = "ok"

    async def __call__(self, args: EchoArgs, _ctx: ToolContext) -> str:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return f"{self.output}" if args.text else ""


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ToolContext]:
    async with httpx.AsyncClient() as http:
        yield ToolContext(workspace=tmp_path, http=http)


def _runner_with(
    ctx: ToolContext, clock: FakeClock, **tools: ScriptedTool
) -> tuple[ToolRunner, ToolRegistry]:
    registry = ToolRegistry.builtin()
    for name, tool in tools.items():
        registry.register(ToolSpec(name, "scripted", EchoArgs), tool)
    return ToolRunner(registry, ctx, clock, max_output_bytes=1024), registry


async def test_runs_a_builtin_tool(ctx: ToolContext) -> None:
    runner = ToolRunner(ToolRegistry.builtin(), ctx)
    assert await runner.call("calculator", {"expression": "17*23"}, timeout_s=5) == "391"


async def test_invalid_arguments_fail_permanently_without_running(ctx: ToolContext) -> None:
    tool = ScriptedTool()
    runner, _ = _runner_with(ctx, FakeClock(), flaky=tool)

    with pytest.raises(ToolError, match="invalid arguments for tool 'flaky'") as caught:
        await runner.call("flaky", {"wrong": 1}, timeout_s=5)
    assert caught.value.transient is False
    assert tool.calls == 0


async def test_a_slow_tool_times_out_transiently(ctx: ToolContext) -> None:
    runner = ToolRunner(ToolRegistry.builtin(), ctx)

    with pytest.raises(ToolError, match=r"tool sleep timed out after 0\.05s") as caught:
        await runner.call("sleep", {"seconds": 60}, timeout_s=0.05)
    assert caught.value.transient is True


async def test_a_crashing_tool_becomes_a_permanent_tool_error(ctx: ToolContext) -> None:
    tool = ScriptedTool()
    tool.error = KeyError("oops")
    runner, _ = _runner_with(ctx, FakeClock(), buggy=tool)

    with pytest.raises(ToolError, match="tool buggy crashed: KeyError") as caught:
        await runner.call("buggy", {"text": "x"}, timeout_s=5)
    assert caught.value.transient is False


async def test_long_output_is_truncated_and_marked(ctx: ToolContext) -> None:
    runner, _ = _runner_with(ctx, FakeClock())

    output = await runner.call("echo", {"text": "é" * 5000}, timeout_s=5)

    assert len(output.encode()) <= 1024
    assert output.startswith("éééé")
    assert "[output truncated: 10000 bytes, kept the first " in output


def test_truncation_keeps_short_output_and_never_splits_a_character() -> None:
    assert truncate_output("short", 100) == "short"
    cut = truncate_output("€" * 100, 200)  # 3 bytes each: any cut lands mid-character or not
    kept = cut.split("\n[output truncated")[0]
    assert set(kept) == {"€"}
    assert len(cut.encode()) <= 200
    assert cut.endswith(f"kept the first {len(kept.encode())}]")


async def test_the_circuit_opens_after_five_transient_failures_and_fails_fast(
    ctx: ToolContext,
) -> None:
    flaky, healthy = ScriptedTool(), ScriptedTool()
    flaky.error = ToolError("upstream down", transient=True)
    runner, _ = _runner_with(ctx, FakeClock(), flaky=flaky, healthy=healthy)

    for _ in range(5):
        with pytest.raises(ToolError, match="upstream down"):
            await runner.call("flaky", {"text": "x"}, timeout_s=5)
    with pytest.raises(ToolError, match=r"circuit open for flaky \(tool flaky\)") as caught:
        await runner.call("flaky", {"text": "x"}, timeout_s=5)

    assert caught.value.transient is True
    assert flaky.calls == 5  # the sixth call never reached the tool
    assert await runner.call("healthy", {"text": "x"}, timeout_s=5) == "ok"  # per tool


async def test_after_the_cooldown_one_probe_closes_the_circuit(ctx: ToolContext) -> None:
    clock = FakeClock()
    flaky = ScriptedTool()
    flaky.error = ToolError("upstream down", transient=True)
    runner, _ = _runner_with(ctx, clock, flaky=flaky)
    for _ in range(5):
        with pytest.raises(ToolError):
            await runner.call("flaky", {"text": "x"}, timeout_s=5)

    clock.now += 30.0
    flaky.error = None
    assert await runner.call("flaky", {"text": "x"}, timeout_s=5) == "ok"

    assert runner.breaker("flaky").state == "closed"
    assert flaky.calls == 6


async def test_a_failed_probe_opens_the_circuit_again(ctx: ToolContext) -> None:
    clock = FakeClock()
    flaky = ScriptedTool()
    flaky.error = ToolError("upstream down", transient=True)
    runner, _ = _runner_with(ctx, clock, flaky=flaky)
    for _ in range(5):
        with pytest.raises(ToolError):
            await runner.call("flaky", {"text": "x"}, timeout_s=5)
    clock.now += 30.0

    with pytest.raises(ToolError, match="upstream down"):
        await runner.call("flaky", {"text": "x"}, timeout_s=5)
    with pytest.raises(ToolError, match="circuit open"):
        await runner.call("flaky", {"text": "x"}, timeout_s=5)
    assert flaky.calls == 6


async def test_permanent_errors_do_not_open_the_circuit(ctx: ToolContext) -> None:
    tool = ScriptedTool()
    tool.error = ToolError("HTTP 404")
    runner, _ = _runner_with(ctx, FakeClock(), picky=tool)

    for _ in range(10):
        with pytest.raises(ToolError, match="HTTP 404"):
            await runner.call("picky", {"text": "x"}, timeout_s=5)
    assert runner.breaker("picky").state == "closed"


async def test_timeouts_count_towards_opening_the_circuit(ctx: ToolContext) -> None:
    async def stuck(_args: EchoArgs, _ctx: ToolContext) -> str:
        await asyncio.Event().wait()
        return "unreachable"

    registry = ToolRegistry()
    registry.register(ToolSpec("stuck", "never answers", EchoArgs), stuck)
    runner = ToolRunner(registry, ctx, FakeClock(), breaker_threshold=2)

    for _ in range(2):
        with pytest.raises(ToolError, match="timed out"):
            await runner.call("stuck", {"text": "x"}, timeout_s=0.01)
    assert runner.breaker("stuck").state == "open"


async def test_local_tools_have_no_breaker_so_one_goals_timeouts_deny_nobody(
    ctx: ToolContext,
) -> None:
    runner = ToolRunner(ToolRegistry.builtin(), ctx, FakeClock(), breaker_threshold=2)

    for _ in range(4):
        with pytest.raises(ToolError, match="timed out"):
            await runner.call("sleep", {"seconds": 60}, timeout_s=0.01)
    assert await runner.call("sleep", {"seconds": 0}, timeout_s=5) is not None
    assert len(runner.breakers) == 0
    assert BUILTIN_TOOLS["sleep"].side_effects is False


async def test_unreachable_hosts_open_only_their_own_circuit(ctx: ToolContext) -> None:
    """Six unresolvable URLs (one goal's doing) leave http_get working for everyone else."""
    runner = ToolRunner(ToolRegistry.builtin(), ctx, FakeClock())
    for n in range(6):
        with pytest.raises(ToolError, match="failed") as caught:
            await runner.call("http_get", {"url": f"http://host-{n}.invalid/"}, timeout_s=5)
        assert caught.value.transient

    for _ in range(4):  # the same host: five failures in all open its circuit
        with pytest.raises(ToolError):
            await runner.call("http_get", {"url": "http://host-0.invalid/x"}, timeout_s=5)
    with pytest.raises(ToolError, match=r"circuit open for http://host-0\.invalid:80"):
        await runner.call("http_get", {"url": "http://HOST-0.invalid:80/y"}, timeout_s=5)

    assert runner.breaker("http://host-1.invalid:80").state == "closed"
    assert runner.breaker("https://host-0.invalid:443").state == "closed"  # another origin
    with pytest.raises(ToolError, match="failed"):  # tried, not refused by a breaker
        await runner.call("http_get", {"url": "http://another.invalid/"}, timeout_s=5)


async def test_the_breaker_map_is_bounded(ctx: ToolContext) -> None:
    runner = ToolRunner(ToolRegistry.builtin(), ctx, FakeClock(), max_breakers=3)
    for n in range(10):
        with pytest.raises(ToolError):
            await runner.call("http_get", {"url": f"http://h{n}.invalid/"}, timeout_s=5)
    assert len(runner.breakers) == 3


async def test_a_cancelled_probe_does_not_leave_the_circuit_stuck(ctx: ToolContext) -> None:
    clock = FakeClock()
    entered, never = asyncio.Event(), asyncio.Event()

    async def hang(_args: EchoArgs, _ctx: ToolContext) -> str:
        entered.set()
        await never.wait()
        return "unreachable"

    registry = ToolRegistry()
    registry.register(ToolSpec("hang", "blocks until cancelled", EchoArgs), hang)
    runner = ToolRunner(registry, ctx, clock, breaker_threshold=1)
    runner.breaker("hang").record_failure()  # open
    clock.now += 30.0  # half-open: one probe allowed

    probe = asyncio.create_task(runner.call("hang", {"text": "x"}, timeout_s=60))
    await entered.wait()
    with pytest.raises(ToolError, match="circuit open"):
        await runner.call("hang", {"text": "x"}, timeout_s=60)  # the slot is taken
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe

    assert runner.breaker("hang").try_acquire()  # the slot was freed
