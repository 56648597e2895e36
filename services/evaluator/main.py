"""Composition root of the evaluator: judge each requested evaluation with the rule checks."""

from __future__ import annotations

from events.catalog import EvaluationRequested
from events.codec import decode_event
from events.model import Stamp
from events.subjects import EVENTS_STREAM
from infra.consume import Delivery
from infra.runner import ServiceContext, ServiceParts, Subscription
from services.evaluator.decide import evaluate

__all__ = ["build"]


def build(ctx: ServiceContext) -> ServiceParts:
    async def judge(delivery: Delivery) -> None:
        event = decode_event(delivery.data)
        if isinstance(event, EvaluationRequested):
            stamp = Stamp.caused_by(event, producer=ctx.producer, now=ctx.now())
            await ctx.publish([evaluate(event, stamp)])

    return ServiceParts([Subscription(ctx.spec(EVENTS_STREAM), judge, ctx.settings.concurrency)])
