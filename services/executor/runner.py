"""Runs one tool call: validate, fail fast if the tool's circuit is open, enforce the timeout,
truncate the output. Every failure surfaces as a ``ToolError`` that says whether to retry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from events.errors import ToolError
from services.executor.breaker import CircuitBreaker
from services.executor.registry import ToolRegistry
from services.executor.tools.context import ToolContext

__all__ = ["DEFAULT_MAX_OUTPUT_BYTES", "ToolRunner", "truncate_output"]

DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024


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
    ) -> None:
        self.registry = registry
        self._ctx = ctx
        self._clock = clock
        self._max_output_bytes = max_output_bytes
        self._breaker_threshold = breaker_threshold
        self._breaker_cooldown_s = breaker_cooldown_s
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, tool: str) -> CircuitBreaker:
        breaker = self._breakers.get(tool)
        if breaker is None:
            breaker = CircuitBreaker(
                clock=self._clock,
                threshold=self._breaker_threshold,
                cooldown_s=self._breaker_cooldown_s,
            )
            self._breakers[tool] = breaker
        return breaker

    async def call(self, tool: str, args: dict[str, Any], timeout_s: float) -> str:
        """The tool's output (at most ``max_output_bytes``), or a ``ToolError``."""
        # Bad input says nothing about the tool's health, so it is checked before the breaker.
        validated = self.registry.validate(tool, args)
        implementation = self.registry.get(tool).run
        breaker = self.breaker(tool)
        if not breaker.try_acquire():
            raise ToolError(
                f"circuit open for tool {tool}: too many consecutive transient failures; "
                f"retrying in {breaker.seconds_until_half_open():.1f}s",
                transient=True,
            )
        try:
            try:
                async with asyncio.timeout(timeout_s):
                    output = await implementation(validated, self._ctx)
            except TimeoutError as exc:
                raise ToolError(
                    f"tool {tool} timed out after {timeout_s:g}s", transient=True
                ) from exc
            except ToolError:
                raise
            except Exception as exc:
                # A bug in a tool must become a recorded failure, not a crash of the consumer.
                raise ToolError(f"tool {tool} crashed: {type(exc).__name__}: {exc}") from exc
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
        return truncate_output(output, self._max_output_bytes)


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
