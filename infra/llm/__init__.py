"""LLM provider adapters behind :class:`services.llm.port.LlmPort` (see docs/llm.md).

:func:`build_llm_port` turns the ``AGORA_LLM_*`` settings into the fallback chain a service
gets as ``ServiceContext.llm``; with no LLM configured it returns None and the rule-based
strategies run.
"""

from __future__ import annotations

import httpx
from nats.aio.client import Client as NatsClient

from infra.llm.chain import LiveSink, LlmChain, RetryPolicy, live_subject
from infra.llm.openai import OpenAiChat
from infra.llm.pricing import PriceTable
from infra.llm.provider import Provider
from infra.logging import register_secret
from infra.settings import LlmEndpoint, Settings

__all__ = ["LiveSink", "LlmChain", "build_llm_port", "build_provider", "live_subject"]


def build_provider(endpoint: LlmEndpoint, settings: Settings) -> Provider:
    # Connections for at most ``llm_concurrency`` calls in flight, plus a spare.
    limits = httpx.Limits(max_connections=settings.llm_concurrency + 1)
    http = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(settings.llm_timeout_s))
    if endpoint.provider == "anthropic":
        from infra.llm.anthropic import AnthropicMessages

        return AnthropicMessages(endpoint, http, timeout_s=settings.llm_timeout_s)
    return OpenAiChat(endpoint, http, timeout_s=settings.llm_timeout_s)


def build_llm_port(
    settings: Settings, nc: NatsClient | None = None, *, live: LiveSink | None = None
) -> LlmChain | None:
    """The chain of the configured providers, or None when no LLM is configured.

    With ``AGORA_LLM_STREAM`` on, streamed token deltas are published on ``nc`` to
    ``agora.live.<goal_id>.llm`` (or handed to ``live``, when given instead of ``nc``).
    """
    if not settings.llm_endpoints:
        return None
    for endpoint in settings.llm_endpoints:
        register_secret(endpoint.api_key)
    if nc is not None:
        client = nc

        async def publish(subject: str, payload: bytes) -> None:
            await client.publish(subject, payload)

        live = publish
    return LlmChain(
        [build_provider(endpoint, settings) for endpoint in settings.llm_endpoints],
        policy=RetryPolicy(
            retries=settings.llm_retries,
            backoff_s=settings.llm_backoff_s,
            retry_after_max_s=settings.llm_retry_after_max_s,
        ),
        prices=PriceTable.load(settings.llm_prices),
        concurrency=settings.llm_concurrency,
        breaker_threshold=settings.llm_breaker_threshold,
        breaker_cooldown_s=settings.llm_breaker_cooldown_s,
        live=live,
        stream=settings.llm_stream,
    )
