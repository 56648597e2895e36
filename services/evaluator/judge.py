"""The LLM judge: a rubric scored through structured output, combined with the rule checks. Pure.

How the two combine (the evaluator's contract when a language model is configured):

- **Rule checks are hard gates.** ``tasks_succeeded`` and the goal's ``expect`` checks run as
  without a judge; any failure means ``revise``, whatever the judge thinks.
- **The judge is one more gate.** Its answer becomes a check named ``judge``, passed when its
  verdict is ``accept`` and its score at least :data:`JUDGE_PASS_SCORE`. The detail carries
  its score, verdict, feedback and every rubric criterion. So the verdict stays "accept iff
  every check passed".
- **Score** = the mean of the rule score (fraction of rule checks passed) and the judge's
  score, equally weighted. An accepted verdict's feedback is the judge's.
- **The judge cannot be consulted** (every provider failed, an unusable answer, or no LLM
  budget left): the ``judge`` check passes with a detail saying why the judge was not
  consulted, and the verdict and score rest on the rule checks alone. A goal never gets
  stuck, or revised, because a model is down.
- **Over budget**: if the judge's answer spent more than ``llm_budget`` left, the ``judge``
  check fails with ``budget_exceeded: …`` and the judgement is not used.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from events.catalog import EvaluationCompleted, EvaluationRequested
from events.errors import LlmResponseError
from events.model import Check, Stamp
from events.untrusted_json import decode_json, strip_code_fence
from services.evaluator.decide import rule_checks, rule_score, verdict_of
from services.llm.messages import ChatMessage, LlmReply, LlmRequest
from services.llm.templates import PromptTemplate

__all__ = [
    "JUDGE_CHECK",
    "JUDGE_PASS_SCORE",
    "JUDGE_SCHEMA",
    "Criterion",
    "Judgement",
    "budget_refused",
    "judge_budget",
    "judge_request",
    "judged",
    "not_consulted",
    "over_budget",
    "parse_judgement",
]

JUDGE_CHECK = "judge"
JUDGE_PASS_SCORE = 0.5

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["score", "verdict", "feedback", "criteria"],
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "verdict": {"type": "string", "enum": ["accept", "revise"]},
        "feedback": {"type": "string"},
        "criteria": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "passed", "detail"],
                "properties": {
                    "name": {"type": "string"},
                    "passed": {"type": "boolean"},
                    "detail": {"type": "string"},
                },
            },
        },
    },
}


class Criterion(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    passed: bool
    detail: str = ""


class Judgement(msgspec.Struct, frozen=True, kw_only=True):
    score: float
    verdict: Literal["accept", "revise"]
    feedback: str = ""
    criteria: tuple[Criterion, ...] = ()


def judge_budget(request: EvaluationRequested) -> tuple[str | None, int | None]:
    """(why the judge cannot be afforded, or None; the most tokens it may use, or None)."""
    budget = request.llm_budget
    if budget is None:
        return None, None
    if budget.max_tokens is not None and budget.max_tokens <= 0:
        return "no LLM tokens left in the goal's budget", None
    if budget.max_cost_usd is not None and budget.max_cost_usd <= 0:
        return "no LLM cost left in the goal's budget", None
    return None, budget.max_tokens


def judge_request(
    request: EvaluationRequested, prompt: PromptTemplate, *, max_tokens: int | None = None
) -> LlmRequest:
    """The rubric request for ``request``: the template as system message, the evaluation's
    inputs as one JSON user message (data, never instructions), structured output."""
    # The iteration makes each evaluation its own request (and its own recorded answer).
    subject: dict[str, Any] = {
        "iteration": request.iteration,
        "goal": request.text,
        "expect": request.expect,
        "result": request.result,
        "tasks": request.tasks,
        "rule_checks": rule_checks(request),
    }
    return LlmRequest(
        purpose="judge",
        messages=(
            ChatMessage(role="system", content=prompt.render()),
            ChatMessage(role="user", content=msgspec.json.encode(subject).decode()),
        ),
        response_schema=JUDGE_SCHEMA,
        schema_name="judgement",
        max_tokens=max_tokens,
    )


_judgement_decoder = msgspec.json.Decoder(Judgement)


def parse_judgement(reply: LlmReply) -> Judgement:
    """The judgement in ``reply``, or :class:`LlmResponseError` saying what is wrong with it."""
    text = strip_code_fence(reply.content)
    try:
        judgement = decode_json(_judgement_decoder, text)
    except msgspec.DecodeError as exc:
        raise LlmResponseError(f"the judge's answer is not the rubric's JSON: {exc}") from None
    if not 0.0 <= judgement.score <= 1.0:
        raise LlmResponseError(f"the judge's score {judgement.score} is outside 0..1")
    return judgement


def over_budget(request: EvaluationRequested, reply: LlmReply) -> str | None:
    """``budget_exceeded: …`` when the judge's answer spent more than the goal had left."""
    budget = request.llm_budget
    if budget is None:
        return None
    tokens = reply.tokens_in + reply.tokens_out
    if budget.max_tokens is not None and tokens > budget.max_tokens:
        return (
            f"budget_exceeded: the judge used {tokens} LLM tokens, "
            f"the goal had {budget.max_tokens} left"
        )
    if budget.max_cost_usd is not None and reply.cost_usd > budget.max_cost_usd:
        return (
            f"budget_exceeded: the judge spent ${reply.cost_usd:.6f}, "
            f"the goal had ${budget.max_cost_usd:.6f} left"
        )
    return None


def judged(request: EvaluationRequested, judgement: Judgement, stamp: Stamp) -> EvaluationCompleted:
    """The verdict from the rule checks and the judge's answer (see the module doc)."""
    rules = rule_checks(request)
    passed = judgement.verdict == "accept" and judgement.score >= JUDGE_PASS_SCORE
    criteria = "; ".join(
        f"{c.name} {'passed' if c.passed else 'failed'}" + (f" ({c.detail})" if c.detail else "")
        for c in judgement.criteria
    )
    detail = f"{judgement.verdict}, score {judgement.score:.2f}: {judgement.feedback}"
    if criteria:
        detail += f" [criteria: {criteria}]"
    check = Check(name=JUDGE_CHECK, passed=passed, detail=detail)
    return verdict_of(
        request,
        (*rules, check),
        stamp,
        score=(rule_score(rules) + judgement.score) / 2,
        accepted_feedback=judgement.feedback or "all checks passed",
    )


def not_consulted(request: EvaluationRequested, why: str, stamp: Stamp) -> EvaluationCompleted:
    """The rule checks' verdict, with a passing ``judge`` check saying why it was skipped."""
    rules = rule_checks(request)
    check = Check(
        name=JUDGE_CHECK,
        passed=True,
        detail=f"not consulted: {why}; the verdict rests on the rule checks",
    )
    return verdict_of(request, (*rules, check), stamp, score=rule_score(rules))


def budget_refused(request: EvaluationRequested, why: str, stamp: Stamp) -> EvaluationCompleted:
    """The judge answered but overspent: its judgement is not used and its check fails."""
    rules = rule_checks(request)
    check = Check(name=JUDGE_CHECK, passed=False, detail=why)
    return verdict_of(request, (*rules, check), stamp, score=rule_score(rules))
