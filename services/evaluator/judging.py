"""Evaluates one iteration with the LLM judge: the imperative shell around ``judge.py``.

The judge's request goes through :func:`services.llm.recording.recorded_call` with the goal's
recorded answers, so a redelivered ``evaluation_requested`` reuses the recorded judgement
instead of asking the model again, and reaches the same verdict (same event id).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from events.catalog import EvaluationCompleted, EvaluationRequested, LlmResponded
from events.errors import LlmResponseError, LlmUnavailableError
from events.model import Stamp
from services.evaluator import judge
from services.llm.port import LlmPort
from services.llm.recording import Publish, recorded_call
from services.llm.templates import PromptTemplate

__all__ = ["evaluate_with_judge"]


async def evaluate_with_judge(
    request: EvaluationRequested,
    *,
    llm: LlmPort | None,
    prompt: PromptTemplate,
    recorded: Mapping[str, LlmResponded],
    publish: Publish,
    stamp: Callable[[], Stamp],
) -> EvaluationCompleted:
    """The verdict on ``request``: rule checks plus the judge, or the rule checks alone with
    a note when the judge cannot be consulted (see ``judge.py``). Publishes the judge's
    ``llm_requested`` / ``llm_responded``; the caller publishes the returned verdict.

    ``llm=None`` answers only from ``recorded`` (a rerun): an unrecorded request raises
    :class:`events.errors.LlmNotRecordedError`.
    """
    unaffordable, max_tokens = judge.judge_budget(request)
    if unaffordable is not None:
        return judge.not_consulted(request, unaffordable, stamp())
    ask = judge.judge_request(request, prompt, max_tokens=max_tokens)
    try:
        reply, _ = await recorded_call(llm, ask, stamp=stamp(), recorded=recorded, publish=publish)
        overspent = judge.over_budget(request, reply)
        if overspent is not None:
            return judge.budget_refused(request, overspent, stamp())
        judgement = judge.parse_judgement(reply)
    except LlmUnavailableError as error:
        return judge.not_consulted(request, f"the judge was unavailable ({error})", stamp())
    except LlmResponseError as error:
        return judge.not_consulted(request, f"the judge's answer was unusable ({error})", stamp())
    return judge.judged(request, judgement, stamp())
