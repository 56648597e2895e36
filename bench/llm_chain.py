"""The LLM chain's own cost: calls per second against a scripted provider that answers at once.

python -m bench.llm_chain [--calls 2000] [--concurrency 4]

The provider is tests/llm_servers.py (a thread on loopback), so the figure bounds what the
adapters (request building, HTTP, parsing, pricing, streaming to NATS-less sinks) add to a
real model's latency; it is not a model benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from infra.llm import build_llm_port
from infra.logging import configure_logging
from infra.settings import Settings
from services.llm.messages import ChatMessage, LlmRequest
from tests.llm_servers import ScriptedLlmServer, anthropic_reply, llm_settings, openai_reply


async def _drop(_subject: str, _payload: bytes) -> None:
    """A live sink that discards: measures the streaming path without a broker."""


async def _measure(flavour: str, calls: int, concurrency: int, *, stream: bool) -> str:
    reply = (
        openai_reply("The answer is 391. " * 10)
        if flavour == "openai"
        else anthropic_reply("The answer is 391. " * 10)
    )
    with ScriptedLlmServer("openai" if flavour == "openai" else "anthropic") as server:
        server.set_script(lambda _: reply)
        settings = llm_settings(Settings(), server, llm_concurrency=concurrency, llm_stream=stream)
        chain = build_llm_port(settings, live=_drop)
        assert chain is not None
        request = LlmRequest(purpose="bench", messages=(ChatMessage(role="user", content="hi"),))
        latencies: list[float] = []

        async def worker(count: int) -> None:
            for _ in range(count):
                started = time.perf_counter()
                await chain.complete(request, goal_id="bench")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        # As many callers as slots: p50 is one call's latency, not time queued for a slot.
        await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        await chain.aclose()
    p50 = statistics.median(latencies) * 1000
    mode = "stream" if stream else "json"
    return f"{flavour:9} {mode:6} {len(latencies) / elapsed:8.0f} calls/s   p50 {p50:6.1f} ms"


async def _main(calls: int, concurrency: int) -> None:
    for flavour in ("openai", "anthropic"):
        for stream in (False, True):
            print(await _measure(flavour, calls, concurrency, stream=stream))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    configure_logging("error")
    print(f"{args.calls} calls, AGORA_LLM_CONCURRENCY={args.concurrency}")
    asyncio.run(_main(args.calls, args.concurrency))


if __name__ == "__main__":
    main()
