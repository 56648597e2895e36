"""The fallback chain: the :class:`LlmPort` agora's services get.

Providers are tried in order. For each: skip it while its circuit breaker is open; otherwise
take one of its concurrency slots and make an attempt; a transient failure (429, 5xx, timeout,
connection error) is retried up to ``retries`` times after a jittered exponential backoff, or
after ``Retry-After`` when the provider sent one (capped); an unusable answer (malformed JSON)
or a refusal (401, 400…) moves on to the next provider at once. When every provider failed,
:class:`LlmUnavailableError` says what each one did.

Streaming: with ``stream`` on and a live sink, text deltas go to ``agora.live.<goal_id>.llm``
as they arrive (core NATS, not persisted); the completed reply is returned as usual.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from events.errors import LlmUnavailableError
from infra.llm.pricing import PriceTable
from infra.llm.provider import Provider
from infra.llm.tool_names import WireNames
from infra.llm.transport import AttemptError
from infra.logging import get_logger
from services.executor.breaker import CircuitBreaker
from services.llm.messages import LlmReply, LlmRequest

__all__ = ["LiveDelta", "LiveSink", "LlmChain", "RetryPolicy", "live_subject"]

log = get_logger("agora.llm")

# Publishes one core NATS message: subject, payload. Must not raise for a slow subscriber.
LiveSink = Callable[[str, bytes], Awaitable[None]]


def live_subject(goal_id: str) -> str:
    return f"agora.live.{goal_id}.llm"


class LiveDelta(msgspec.Struct, frozen=True, kw_only=True):
    """One message on ``agora.live.<goal_id>.llm`` (JSON).

    ``seq`` counts the messages of one attempt from 0; a new ``attempt`` (a retry, or the next
    provider after a failure) starts the text again. The last message of a successful call has
    ``done=True``, an empty ``delta`` and the ``finish_reason``.
    """

    goal_id: str
    purpose: str
    provider: str
    model: str
    attempt: int
    seq: int
    delta: str
    done: bool = False
    finish_reason: str = ""


_encode_delta = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 2  # further attempts per provider after the first, on transient failures
    backoff_s: float = 0.5  # first backoff; doubles per retry, jittered to 50-100%
    retry_after_max_s: float = 30.0  # a provider's Retry-After is honoured up to this

    def delay(self, retry: int, retry_after_s: float | None, rng: random.Random) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.retry_after_max_s)
        ceiling = min(self.backoff_s * 2**retry, self.retry_after_max_s)
        return float(ceiling * rng.uniform(0.5, 1.0))


@dataclass
class GuardedProvider:
    provider: Provider
    breaker: CircuitBreaker
    slots: asyncio.Semaphore


@dataclass
class _Outcome:
    """What one provider did during one call, for the error summary."""

    name: str
    failures: list[str] = field(default_factory=list)  # one per attempt made
    skipped: str = ""  # why the provider was (no longer) tried: its circuit is open

    def summary(self) -> str:
        text = "; ".join(self.failures)
        if len(self.failures) > 1:
            text = f"{len(self.failures)} attempts: {text}"
        return f"{self.name}: " + "; ".join(part for part in (text, self.skipped) if part)


class LlmChain:
    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        policy: RetryPolicy,
        prices: PriceTable,
        concurrency: int = 4,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        live: LiveSink | None = None,
        stream: bool = False,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if not providers:
            raise ValueError("an LLM chain needs at least one provider")
        self._providers = [
            GuardedProvider(
                provider=p,
                breaker=CircuitBreaker(
                    clock=clock, threshold=breaker_threshold, cooldown_s=breaker_cooldown_s
                ),
                slots=asyncio.Semaphore(concurrency),
            )
            for p in providers
        ]
        self._policy = policy
        self._prices = prices
        self._live = live if stream else None
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)

    @property
    def providers(self) -> list[GuardedProvider]:
        return self._providers

    async def aclose(self) -> None:
        for guarded in self._providers:
            await guarded.provider.aclose()

    async def complete(self, request: LlmRequest, *, goal_id: str) -> LlmReply:
        names = WireNames.of(request)
        wired = names.request(request)
        started = self._clock()
        outcomes: list[_Outcome] = []
        attempt_no = 0
        for guarded in self._providers:
            outcome = _Outcome(guarded.provider.endpoint.name)
            outcomes.append(outcome)
            for retry in range(self._policy.retries + 1):
                if not guarded.breaker.try_acquire():
                    wait = guarded.breaker.seconds_until_half_open()
                    outcome.skipped = f"skipped, circuit open (retry in {wait:.0f}s)"
                    break
                attempt_no += 1
                live = self._live_attempt(request, guarded, goal_id, attempt_no)
                try:
                    async with guarded.slots:
                        reply = await guarded.provider.attempt(
                            wired, on_delta=live.delta if live else None
                        )
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    # An answer shaped unlike anything the API documents: unusable, not a crash.
                    failed = AttemptError(
                        f"unusable answer ({type(exc).__name__} reading it)", unusable=True
                    )
                    self._record(guarded, failed)
                    outcome.failures.append(failed.reason)
                    break
                except AttemptError as failed:
                    self._record(guarded, failed)
                    outcome.failures.append(failed.reason)
                    log.warning(
                        "llm_attempt_failed",
                        provider=outcome.name,
                        goal_id=goal_id,
                        purpose=request.purpose,
                        reason=failed.reason,
                    )
                    if not failed.transient or retry == self._policy.retries:
                        break
                    await asyncio.sleep(self._policy.delay(retry, failed.retry_after_s, self._rng))
                    continue
                except BaseException:
                    guarded.breaker.record_abandoned()
                    raise
                guarded.breaker.record_success()
                return await self._finish(guarded, names.reply(reply), live, started)
        raise LlmUnavailableError(
            f"no LLM provider answered the {request.purpose!r} request: "
            + " | ".join(o.summary() for o in outcomes)
        )

    def _live_attempt(
        self, request: LlmRequest, guarded: GuardedProvider, goal_id: str, attempt_no: int
    ) -> _LiveAttempt | None:
        if self._live is None:
            return None
        endpoint = guarded.provider.endpoint
        template = LiveDelta(
            goal_id=goal_id,
            purpose=request.purpose,
            provider=endpoint.provider,
            model=endpoint.model,
            attempt=attempt_no,
            seq=0,
            delta="",
        )
        return _LiveAttempt(self._live, template)

    @staticmethod
    def _record(guarded: GuardedProvider, failed: AttemptError) -> None:
        if failed.transient or failed.unusable:
            guarded.breaker.record_failure()
        else:
            guarded.breaker.record_success()  # a refusal: reachable, and retrying won't help

    async def _finish(
        self,
        guarded: GuardedProvider,
        reply: LlmReply,
        live: _LiveAttempt | None,
        started: float,
    ) -> LlmReply:
        endpoint = guarded.provider.endpoint
        priced = reply.model if self._prices.price_of(reply.model) else endpoint.model
        reply = msgspec.structs.replace(
            reply,
            cost_usd=self._prices.cost(priced, reply.tokens_in, reply.tokens_out),
            latency_ms=round((self._clock() - started) * 1000, 3),
            request_model=endpoint.model,
        )
        if live is not None:
            await live.done(reply.finish_reason)
        return reply


class _LiveAttempt:
    """The live messages of one attempt: text deltas, then ``done``."""

    def __init__(self, sink: LiveSink, template: LiveDelta) -> None:
        self._sink = sink
        self._template = template
        self._seq = 0

    async def delta(self, piece: str) -> None:
        await self._send(msgspec.structs.replace(self._template, seq=self._seq, delta=piece))

    async def done(self, finish_reason: str) -> None:
        message = msgspec.structs.replace(
            self._template, seq=self._seq, done=True, finish_reason=finish_reason
        )
        await self._send(message)

    async def _send(self, message: LiveDelta) -> None:
        self._seq += 1
        try:
            await self._sink(live_subject(message.goal_id), _encode_delta(message))
        except Exception as exc:  # live output is best effort; the reply is not
            log.warning("llm_live_publish_failed", goal_id=message.goal_id, error=repr(exc))
