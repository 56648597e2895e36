"""A goal's LLM budget: what it spent, what is left, and when it is exceeded. Pure.

Spending is the sum over every ``llm_responded`` of the goal, whichever service asked:
tokens = ``tokens_in + tokens_out`` as the provider reported them, cost = ``cost_usd``.

Enforced to the token: with ``max_tokens = N`` the goal fails (``budget_exceeded``) as soon as
an answer brings the spent tokens above N, and no call is made once nothing is left: the
planner asks only while at least one token remains, with the request's ``max_tokens`` set to
what is left. A cost cap works the same way, except that a call's cost is known only after
it, so a call is made only while the spent cost is below the cap.
"""

from __future__ import annotations

from events.model import Budget
from services.planner.state import PlannerState

__all__ = ["BUDGET_EXCEEDED", "exceeded_reason", "no_room_reason", "remaining"]

BUDGET_EXCEEDED = "budget_exceeded"


def exceeded_reason(state: PlannerState) -> str | None:
    """Why the goal's budget is exceeded, or None while it holds."""
    budget = state.budget
    if budget is None:
        return None
    if budget.max_tokens is not None and state.spent_tokens > budget.max_tokens:
        return (
            f"{BUDGET_EXCEEDED}: the goal's LLM calls used {state.spent_tokens} tokens; "
            f"its budget is {budget.max_tokens}"
        )
    if budget.max_cost_usd is not None and state.spent_cost_usd > budget.max_cost_usd:
        return (
            f"{BUDGET_EXCEEDED}: the goal's LLM calls cost ${state.spent_cost_usd:.6f}; "
            f"its budget is ${budget.max_cost_usd:.6f}"
        )
    return None


def no_room_reason(state: PlannerState, tokens_available: int | None) -> str | None:
    """Why the next LLM call may not be made, or None when it may."""
    budget = state.budget
    if budget is None:
        return None
    if tokens_available is not None and tokens_available <= 0:
        return (
            f"{BUDGET_EXCEEDED}: the planner needs another LLM call but the goal's "
            f"{budget.max_tokens} tokens are used up ({state.spent_tokens} spent)"
        )
    if budget.max_cost_usd is not None and state.spent_cost_usd >= budget.max_cost_usd:
        return (
            f"{BUDGET_EXCEEDED}: the planner needs another LLM call but the goal's "
            f"${budget.max_cost_usd:.6f} are spent"
        )
    return None


def remaining(state: PlannerState) -> Budget | None:
    """What the goal may still spend (for ``task_scheduled`` / ``evaluation_requested``)."""
    budget = state.budget
    if budget is None:
        return None
    return Budget(
        max_tokens=None
        if budget.max_tokens is None
        else max(0, budget.max_tokens - state.spent_tokens),
        max_cost_usd=None
        if budget.max_cost_usd is None
        else max(0.0, budget.max_cost_usd - state.spent_cost_usd),
    )
