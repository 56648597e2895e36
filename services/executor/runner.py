"""Runs one tool call: validate, fail fast if its destination's circuit is open, enforce the
timeout, truncate the output. Every failure surfaces as a ``ToolError`` that says whether to
retry.

Breakers are per destination (an HTTP origin, an external service), never per tool: one goal's
calls to a host that is down must not deny other goals their calls elsewhere. A call that
reaches nothing shared (``echo``, ``python``, ``sleep``) has no breaker: its timeouts say
something about the program, not about a dependency.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from events.errors import ToolError
from events.tools import CallRecord, ToolSpec
from services.executor.breaker import DEFAULT_MAX_DESTINATIONS, BreakerBoard, CircuitBreaker
from services.executor.registry import ToolRegistry, validated_args
from services.executor.tools.context import ToolContext, ToolImplementation, ToolResult

__all__ = [
    "DEFAULT_ANNOUNCE_AFTER_S",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "ToolRunner",
    "cap_result",
    "grant_refusal",
    "truncate_output",
]

DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024
DEFAULT_ANNOUNCE_AFTER_S = 0.05


class ToolRunner:
    def __init__(
        self,
        registry: ToolRegistry,
        ctx: ToolContext,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        max_breakers: int = DEFAULT_MAX_DESTINATIONS,
        announce_after_s: float = DEFAULT_ANNOUNCE_AFTER_S,
    ) -> None:
        self.registry = registry
        # How long a call recorded while it runs (CallRecord.WHILE_RUNNING) may run before its
        # tool_called is stored.
        self.announce_after_s = announce_after_s
        self._ctx = ctx
        self._max_output_bytes = max_output_bytes
        self.breakers = BreakerBoard(
            clock=clock,
            threshold=breaker_threshold,
            cooldown_s=breaker_cooldown_s,
            max_destinations=max_breakers,
        )

    def breaker(self, destination: str) -> CircuitBreaker:
        return self.breakers.get(destination)

    def permits(self, tool: str, granted: tuple[str, ...]) -> str | None:
        """Why a task granted ``granted`` may not call ``tool``, or None when it may."""
        registered = self.registry.find(tool)
        return grant_refusal(None if registered is None else registered.spec, tool, granted)

    def is_instant(self, tool: str) -> bool:
        """Whether ``tool`` runs to its end without waiting (``RegisteredTool.instant``): a
        call of it can be neither timed out nor stopped midway, so none is watched."""
        registered = self.registry.find(tool)
        return registered is not None and registered.instant

    def call_record(self, tool: str) -> CallRecord:
        """When an attempt of ``tool`` is recorded (``ToolSpec.call_record``); an unknown tool's
        call is recorded before it runs, and fails."""
        registered = self.registry.find(tool)
        return CallRecord.BEFORE_RUN if registered is None else registered.spec.call_record

    async def call(self, tool: str, args: dict[str, Any], timeout_s: float) -> str:
        """The tool's output text (at most ``max_output_bytes``), or a ``ToolError``."""
        return (await self.invoke(tool, args, timeout_s)).text

    async def invoke(self, tool: str, args: dict[str, Any], timeout_s: float) -> ToolResult:
        """The tool's output (capped at ``max_output_bytes``), or a ``ToolError``."""
        registered = self.registry.get(tool)
        # Bad input says nothing about the tool's health, so it is checked before the breaker.
        validated = validated_args(registered.spec, args)
        if registered.instant:  # nothing could interrupt it: no timeout to arm
            return await self._run(tool, registered.run, validated, None)
        destination = registered.destination(validated)
        if destination is None:
            return await self._run(tool, registered.run, validated, timeout_s)
        breaker = self.breaker(destination)
        if not breaker.try_acquire():
            raise ToolError(
                f"circuit open for {destination} (tool {tool}): too many consecutive transient "
                f"failures there; retrying in {breaker.seconds_until_half_open():.1f}s",
                transient=True,
            )
        try:
            output = await self._run(tool, registered.run, validated, timeout_s)
        except ToolError as error:
            if error.transient:
                breaker.record_failure()
            else:
                breaker.record_success()
            raise
        except BaseException:
            breaker.record_abandoned()
            raise
        breaker.record_success()
        return output

    async def _run(
        self,
        tool: str,
        implementation: ToolImplementation,
        validated: Any,
        timeout_s: float | None,
    ) -> ToolResult:
        try:
            if timeout_s is None:
                output = await implementation(validated, self._ctx)
            else:
                async with asyncio.timeout(timeout_s):
                    output = await implementation(validated, self._ctx)
        except ToolError:
            raise
        except Exception as exc:
            raise _call_failure(tool, exc, timeout_s) from exc
        result = output if isinstance(output, ToolResult) else ToolResult(output)
        return cap_result(result, self._max_output_bytes)


def _call_failure(tool: str, exc: Exception, timeout_s: float | None) -> ToolError:
    if isinstance(exc, TimeoutError) and timeout_s is not None:
        return ToolError(f"tool {tool} timed out after {timeout_s:g}s", transient=True)
    # A bug in a tool must become a recorded failure, not a crash of the consumer.
    return ToolError(f"tool {tool} crashed: {type(exc).__name__}: {exc}")


def grant_refusal(spec: ToolSpec | None, tool: str, granted: tuple[str, ...]) -> str | None:
    """Why a plain task granted ``granted`` may not call ``tool`` (an untrusted tool it was not
    granted), or None when it may. An unknown tool is left to the call to report."""
    if spec is None or spec.trusted or tool in granted:
        return None
    return (
        f"tool {tool!r} is untrusted ({spec.origin}) and not granted to this task: "
        "list it in the step's allowed_tools (or the goal's) to let the task call it"
    )


def cap_result(result: ToolResult, max_bytes: int) -> ToolResult:
    """``result`` within ``max_bytes``: the text truncated (marked), and structured content
    larger than the cap dropped, with a note in the text (a cut JSON object means nothing)."""
    text, structured = result.text, result.structured
    if structured is not None:
        size = len(json.dumps(structured, ensure_ascii=False).encode())
        if size > max_bytes:
            structured = None
            text += f"\n[structured content dropped: {size} bytes, over the {max_bytes} byte cap]"
    return ToolResult(truncate_output(text, max_bytes), structured)


def truncate_output(output: str, max_bytes: int) -> str:
    """``output`` cut to at most ``max_bytes`` UTF-8 bytes, the cut marked in the text."""
    encoded = output.encode("utf-8")
    if len(encoded) <= max_bytes:
        return output
    marker = f"\n[output truncated: {len(encoded)} bytes, kept the first {{kept}}]"
    budget = max(0, max_bytes - len(marker.format(kept=max_bytes).encode()))
    # errors="ignore" drops a multi-byte character the cut went through, never a whole line.
    kept = encoded[:budget].decode("utf-8", errors="ignore")
    return kept + marker.format(kept=len(kept.encode()))
