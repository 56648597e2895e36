"""Composition root of the evaluator: judge each requested evaluation with the rule checks, and
with the LLM judge too when a language model is configured (``ctx.llm``)."""

from __future__ import annotations

from collections.abc import Sequence

from events.catalog import EvaluationRequested
from events.model import Event, Stamp
from events.subjects import EVENTS_STREAM
from infra.bus.consume import Delivery
from infra.platform.runner import ServiceContext, ServiceParts, Subscription
from services.evaluator.decide import evaluate
from services.evaluator.judging import evaluate_with_judge
from services.llm.recording import answers_in
from services.llm.templates import PromptTemplate, load_prompt

__all__ = ["build", "judge_prompt"]


def judge_prompt() -> PromptTemplate:
    """The judge's rubric this code uses (a rerun loads the same one)."""
    return load_prompt("evaluator", "judge", 1)


def build(ctx: ServiceContext) -> ServiceParts:
    llm = ctx.llm
    prompt = judge_prompt()

    async def publish(events: Sequence[Event]) -> None:
        await ctx.publish(events)

    async def judge(event: Event, delivery: Delivery) -> None:
        assert isinstance(event, EvaluationRequested)

        def stamp() -> Stamp:
            return Stamp.caused_by(event, producer=ctx.producer, now=ctx.now())

        if llm is None:
            await publish([evaluate(event, stamp())])
            return
        # A first delivery has nothing recorded yet; a redelivery reuses the judge's answer.
        history = await ctx.goal_log.load(event.goal_id) if delivery.redelivered else []
        verdict = await evaluate_with_judge(
            event,
            llm=llm,
            prompt=prompt,
            recorded=answers_in(history),
            publish=publish,
            stamp=stamp,
        )
        await publish([verdict])

    judge_requests = ctx.routed(EVENTS_STREAM, {EvaluationRequested: judge})
    return ServiceParts(
        [Subscription(ctx.spec(EVENTS_STREAM), judge_requests, ctx.settings.concurrency)]
    )
