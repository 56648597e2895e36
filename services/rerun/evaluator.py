"""Re-run of the evaluator: every recorded ``evaluation_requested`` through the current
rule checks and LLM judge, the judge's answers taken from the record by request hash."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from events.catalog import EvaluationCompleted, EvaluationRequested, LlmRequested, LlmResponded
from events.errors import LlmNotRecordedError, LlmUnavailableError
from events.model import Event, Stamp
from services.evaluator.decide import evaluate
from services.evaluator.judging import evaluate_with_judge
from services.llm.messages import LlmReply, LlmRequest, request_hash
from services.llm.recording import answers_in
from services.rerun.common import (
    Difference,
    RerunOptions,
    RerunReport,
    compare,
    service_of,
    short,
)

__all__ = ["evaluator_used_llm", "rerun_evaluator"]

_UNAVAILABLE = re.compile(r"the judge was unavailable \((?P<error>.*)\)", re.DOTALL)


class _NewRequestError(LlmNotRecordedError):
    def __init__(self, request: LlmRequest) -> None:
        super().__init__(f"no recorded answer for this {request.purpose!r} request")
        self.request = request


def evaluator_used_llm(history: Sequence[Event]) -> bool:
    """Whether the recorded goal's evaluator consulted (or tried to consult) the judge."""
    return any(
        (isinstance(event, LlmRequested) and service_of(event) == "evaluator")
        or (
            isinstance(event, EvaluationCompleted)
            and any(check.name == "judge" for check in event.checks)
        )
        for event in history
    )


@dataclass
class _RecordedModel:
    """The port re-run hands the judge: recorded failures replayed, new requests refused
    (or asked of the live model)."""

    options: RerunOptions
    unanswered: dict[str, str]  # request hash -> the error the recorded goal got
    calls: int = 0
    asked: list[str] = field(default_factory=list)
    new: list[LlmRequest] = field(default_factory=list)  # requests the record does not hold

    async def complete(self, request: LlmRequest, *, goal_id: str) -> LlmReply:
        rhash = request_hash(request)
        self.asked.append(rhash)
        if rhash in self.unanswered:
            raise LlmUnavailableError(self.unanswered[rhash])
        self.new.append(request)
        if self.options.port is None:
            raise _NewRequestError(request)
        self.calls += 1
        return await self.options.port.complete(request, goal_id=goal_id)


def _recorded_failures(history: Sequence[Event]) -> dict[str, str]:
    """Requests the recorded evaluator asked and never got answered, with the error it saw."""
    answered = {e.request_hash for e in history if isinstance(e, LlmResponded)}
    asked = [
        e
        for e in history
        if isinstance(e, LlmRequested)
        and service_of(e) == "evaluator"
        and e.request_hash not in answered
    ]
    errors = [
        match["error"]
        for e in history
        if isinstance(e, EvaluationCompleted)
        for check in e.checks
        if check.name == "judge" and (match := _UNAVAILABLE.search(check.detail))
    ]
    return {
        e.request_hash: errors[i] if i < len(errors) else "unavailable" for i, e in enumerate(asked)
    }


def _new_request(request: LlmRequest) -> Difference:
    return Difference(
        "llm_request_new",
        request_hash(request),
        "llm_requested",
        f"the current code asks a {request.purpose!r} request the recorded goal never asked: "
        f"{short(request.messages[0].content[:120] if request.messages else '')}",
    )


async def rerun_evaluator(
    history: Sequence[Event], options: RerunOptions, now: datetime
) -> RerunReport:
    """Re-run the evaluator over ``history`` (one goal's events, in stream order)."""
    recorded_answers = answers_in(history)
    model = _RecordedModel(options, _recorded_failures(history))
    decided: list[Event] = []
    differences: list[Difference] = []
    skipped: set[str] = set()  # requests whose verdict cannot be re-decided without a model
    inputs = [e for e in history if isinstance(e, EvaluationRequested)]
    reused = 0

    async def collect(events: Sequence[Event]) -> None:
        del events  # re-run publishes nothing

    for request in inputs:

        def stamp(cause: EvaluationRequested = request) -> Stamp:
            return Stamp.caused_by(cause, producer=options.producer, now=now)

        if not options.llm_strategies or options.judge_prompt is None:
            decided.append(evaluate(request, stamp()))
            continue
        before = len(model.asked)
        try:
            verdict = await evaluate_with_judge(
                request,
                llm=model,
                prompt=options.judge_prompt,
                recorded=recorded_answers,
                publish=collect,
                stamp=stamp,
            )
        except _NewRequestError:
            skipped.add(request.event_id)
            continue
        finally:
            differences += [_new_request(asked) for asked in model.new]
            model.new.clear()
        reused += int(len(model.asked) == before)  # judged without asking the model
        decided.append(verdict)

    recorded = [
        e
        for e in history
        if service_of(e) == "evaluator"
        and not isinstance(e, LlmRequested | LlmResponded)
        and not (isinstance(e, EvaluationCompleted) and e.causation_id in skipped)
    ]
    differences += compare(recorded, decided)
    return RerunReport(
        goal_id=history[0].goal_id if history else "",
        service="evaluator",
        inputs=len(inputs),
        recorded=len(recorded),
        rerun_decisions=len(decided),
        llm_answers_reused=reused if options.llm_strategies else 0,
        llm_calls=model.calls,
        differences=tuple(differences),
        stopped_early=bool(skipped),
    )
