"""Re-run: a recorded goal through the current planner code, differences reported."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from msgspec.structs import replace as replace_struct

from events.catalog import (
    EvaluationCompleted,
    EvaluationRequested,
    LlmRequested,
    PlanCreated,
    TaskScheduled,
)
from events.model import Event, Stamp
from services.evaluator.judging import evaluate_with_judge
from services.llm.messages import LlmReply, LlmRequest, request_hash
from services.llm.recording import requested_event
from services.llm.templates import PromptTemplate, load_prompt
from services.planner.llm_plan import LlmPlanning
from services.planner.templates import load_prompts
from services.rerun import (
    PLANNER_INPUTS,
    RerunOptions,
    compare,
    evaluator_used_llm,
    rerun_evaluator,
    rerun_planner,
)
from tests.unit.test_planner_llm import PLANNING, VALID_PLAN, LlmHarness, plan_answer
from tests.unit.test_planner_loop import PlannerHarness

LATER = datetime(2027, 5, 5, tzinfo=UTC)


def recorded_llm_goal() -> list[Event]:
    h = LlmHarness(max_tokens=10_000)
    h.context(plan_answer(VALID_PLAN))
    h.completed("s1", "391")
    h.completed("s2", "391, checked")
    h.evaluated("accept")
    return h.log


async def test_unchanged_code_reports_no_difference_and_reuses_every_answer() -> None:
    history = recorded_llm_goal()
    report = await rerun_planner(history, RerunOptions(planning=PLANNING), LATER)

    assert report.identical, report.differences
    assert report.llm_answers_reused == 1
    assert report.llm_calls == 0
    assert report.recorded == report.rerun_decisions > 5
    assert report.inputs == 5  # goal_accepted, context, two completions, the evaluation


async def test_a_rule_based_goal_reruns_identically() -> None:
    h = PlannerHarness({"text": "compute 2+3 then echo done"})
    h.context_provided()
    h.completed("s1", "5")
    h.completed("s2", "done")
    h.evaluated("accept")
    report = await rerun_planner(h.log, RerunOptions(planning=None), LATER)
    assert report.identical, report.differences
    assert report.rerun_decisions > 0


async def test_a_steered_goal_reruns_identically() -> None:
    from tests.unit.test_planner_control import THREE_STEPS, Steered

    h = Steered(THREE_STEPS)
    h.accept()
    h.send("pause", "c-p")
    h.completed("s1", "one")
    h.send("resume", "c-r")
    h.send("resume", "c-r2")  # rejected: not paused
    h.send("pause", "c-typo", reasn="typo")  # rejected at intake
    h.send("cancel", "c-c")
    report = await rerun_planner(h.log, RerunOptions(planning=None), LATER)
    assert report.identical, report.differences
    # The acceptance, the completion, four requests (the typo was rejected before one).
    assert report.inputs == 6


async def test_a_goal_that_took_messages_in_reruns_identically() -> None:
    from tests.unit.test_planner_messages import Messaged

    h = Messaged("interrupt")
    h.accept()
    h.message("echo instead", "m-1")  # interrupts iteration 1, revises at once
    h.message("echo more", "m-2")  # interrupts iteration 2
    h.completed("s1", "more", iteration=3)
    h.evaluated("accept", iteration=3)
    report = await rerun_planner(h.log, RerunOptions(planning=None), LATER)
    assert report.identical, report.differences
    # The acceptance, two messages, the completion and the verdict.
    assert report.inputs == 5


async def test_a_changed_prompt_is_reported_as_a_new_request(tmp_path: Path) -> None:
    (tmp_path / "plan.v2.md").write_text("Plan it, briefly.\n$tools\n", encoding="utf-8")
    changed = LlmPlanning(prompts=load_prompts(tmp_path))
    report = await rerun_planner(recorded_llm_goal(), RerunOptions(planning=changed), LATER)

    assert not report.identical
    assert report.stopped_early
    assert [d.kind for d in report.differences] == ["llm_request_new"]
    assert "'plan' request" in report.differences[0].detail
    assert report.llm_calls == 0


class ReplayingModel:
    """A port that answers every request with the same plan, counting the calls."""

    def __init__(self) -> None:
        self.calls: list[LlmRequest] = []

    async def complete(self, request: LlmRequest, *, goal_id: str) -> LlmReply:  # noqa: ARG002
        self.calls.append(request)
        return LlmReply(
            provider="p", model="m", content=json.dumps(VALID_PLAN), tokens_in=50, tokens_out=20
        )


async def test_with_a_live_model_the_new_request_is_asked_and_the_rest_compared(
    tmp_path: Path,
) -> None:
    (tmp_path / "plan.v2.md").write_text("Plan it, briefly.\n$tools\n", encoding="utf-8")
    model = ReplayingModel()
    options = RerunOptions(planning=LlmPlanning(prompts=load_prompts(tmp_path)), port=model)
    report = await rerun_planner(recorded_llm_goal(), options, LATER)

    assert report.llm_calls == len(model.calls) == 1
    # the same plan and usage from the model: only the request itself differs (the new one
    # is asked, the recorded one no longer is)
    assert [d.kind for d in report.differences] == ["llm_request_new", "llm_request_unasked"]
    assert not report.stopped_early


async def test_a_different_decision_is_reported_with_the_fields_that_changed() -> None:
    history = recorded_llm_goal()
    first = next(i for i, e in enumerate(history) if isinstance(e, TaskScheduled))
    scheduled = history[first]
    assert isinstance(scheduled, TaskScheduled)
    history[first] = replace_struct(scheduled, args={"expression": "17*24"})

    report = await rerun_planner(history, RerunOptions(planning=PLANNING), LATER)
    assert [(d.kind, d.type) for d in report.differences] == [("changed", "task_scheduled")]
    assert '"17*24"' in report.differences[0].detail
    assert '"17*23"' in report.differences[0].detail


async def test_a_recorded_request_no_longer_asked_is_reported() -> None:
    history = recorded_llm_goal()
    plan = next(e for e in history if isinstance(e, PlanCreated))
    stray = LlmRequest(purpose="plan", messages=())
    requested = requested_event(_stamp_of(plan), stray, request_hash(stray))
    report = await rerun_planner([*history, requested], RerunOptions(planning=PLANNING), LATER)
    assert [d.kind for d in report.differences] == ["llm_request_unasked"]


def _stamp_of(event: Event) -> Stamp:
    return Stamp.caused_by(event, producer="planner@0.1.0", now=LATER)


def test_compare_reports_missing_and_new_decisions() -> None:
    history = recorded_llm_goal()
    decisions = [e for e in history if isinstance(e, TaskScheduled)]
    differences = compare(decisions[:1], decisions[1:])
    assert [d.kind for d in differences] == ["missing", "new"]


def test_the_planner_inputs_match_its_consumer() -> None:
    from infra.platform.topology import SERVICE_CONSUMERS

    events_consumer = next(
        s
        for s in SERVICE_CONSUMERS["planner"]
        if s.durable == "planner" and "events" in s.filter_subjects[0]
    )
    consumed = {subject.rsplit(".", 1)[-1] for subject in events_consumer.filter_subjects}
    assert consumed == {cls.__struct_config__.tag for cls in PLANNER_INPUTS}
    assert LlmRequested.__struct_config__.tag not in consumed


# -- the evaluator ------------------------------------------------------------------------


class JudgeModel:
    def __init__(self, verdict: str = "accept") -> None:
        self.verdict = verdict
        self.calls = 0

    async def complete(self, request: LlmRequest, *, goal_id: str) -> LlmReply:  # noqa: ARG002
        self.calls += 1
        content = json.dumps(
            {"score": 0.9, "verdict": self.verdict, "feedback": "fine", "criteria": []}
        )
        return LlmReply(provider="p", model="m", content=content, tokens_in=30, tokens_out=10)


async def judged_history(model: JudgeModel) -> list[Event]:
    """A goal's evaluation as the live evaluator records it: request, judge call, verdict."""
    history = [e for e in recorded_llm_goal() if not isinstance(e, EvaluationCompleted)]
    request = next(e for e in history if isinstance(e, EvaluationRequested))

    async def publish(events: Sequence[Event]) -> None:
        history.extend(events)

    def stamp() -> Stamp:
        return Stamp.caused_by(request, producer="evaluator@0.1.0", now=LATER)

    verdict = await evaluate_with_judge(
        request,
        llm=model,
        prompt=load_prompt("evaluator", "judge", 1),
        recorded={},
        publish=publish,
        stamp=stamp,
    )
    return [*history, verdict]


def evaluator_options(port: JudgeModel | None = None) -> RerunOptions:
    return RerunOptions(
        planning=None,
        port=port,
        producer="evaluator@0.1.0",
        llm_strategies=True,
        judge_prompt=load_prompt("evaluator", "judge", 1),
    )


async def test_the_evaluator_reruns_its_judged_verdicts_without_asking_the_model() -> None:
    model = JudgeModel()
    history = await judged_history(model)
    assert model.calls == 1
    assert evaluator_used_llm(history)

    report = await rerun_evaluator(history, evaluator_options(), LATER)

    assert report.identical, report.differences
    assert (report.inputs, report.recorded, report.rerun_decisions) == (1, 1, 1)
    assert report.llm_answers_reused == 1
    assert model.calls == 1


async def test_a_changed_judge_prompt_is_a_new_request_for_the_evaluator() -> None:
    history = await judged_history(JudgeModel())
    options = replace(
        evaluator_options(),
        judge_prompt=PromptTemplate("evaluator", "judge", 2, "Judge it.\n"),
    )
    report = await rerun_evaluator(history, options, LATER)
    assert [d.kind for d in report.differences] == ["llm_request_new"]

    live = JudgeModel(verdict="revise")
    report = await rerun_evaluator(history, replace(options, port=live), LATER)
    assert live.calls == 1
    kinds = [(d.kind, d.type) for d in report.differences]
    assert kinds == [("llm_request_new", "llm_requested"), ("changed", "evaluation_completed")]
