"""The planner's loop: given a goal's events -> when a trigger arrives -> then decisions.

``PlannerHarness`` runs the planner's own handlers (``services.planner.handler``) over
in-memory ports (tests/unit/planner_harness.py): the command is admitted by ``GoalIntake``, and
every trigger is handed to ``GoalPlanner`` as the live service hands it a delivery.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from events.catalog import (
    ContextProvided,
    ContextRequested,
    EvaluationCompleted,
    EvaluationRequested,
    GoalAccepted,
    GoalCompleted,
    GoalFailed,
    MemoryStored,
    PlanCreated,
    PlanRevised,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
)
from events.ids import derive_id
from events.model import Event, Stamp
from events.tools import BUILTIN_TOOLS
from services.planner.decide import decide
from services.planner.state import PlannerState, evolve, is_finished
from tests.unit.planner_harness import NOW, PRODUCER, InMemoryLog, admitted, handler_pair, run_now

__all__ = ["GOAL", "NOW", "PRODUCER", "PlannerHarness"]

GOAL = "g-loop"


class PlannerHarness:
    def __init__(self, command: dict[str, Any]) -> None:
        self.store = InMemoryLog()
        self.intake, self.planner = handler_pair(self.store)
        accepted = admitted(self.intake, {"command_id": "c-1", "goal_id": GOAL, **command})
        assert isinstance(accepted, GoalAccepted), accepted

    @property
    def log(self) -> list[Event]:
        return self.store.events

    @property
    def state(self) -> PlannerState | None:
        return self.store.state_of(GOAL)

    @property
    def goal(self) -> PlannerState:
        assert self.state is not None
        return self.state

    def record(self, events: list[Event]) -> None:
        """Store events as other services would, without the planner seeing them."""
        self.store.store(events)

    def decide_on(self, event: Event, *, now: Any = NOW) -> list[Event]:
        """Decide without recording the outputs: what a redelivered trigger would produce."""
        return decide(self.state, event, tools=BUILTIN_TOOLS, now=now, producer=PRODUCER)

    def receive(self, event: Event, *, first_delivery: bool = True) -> list[Event]:
        """``event`` stored, then delivered to the planner: what it appended."""
        self.store.store([event])
        before = len(self.log)
        run_now(self.planner.handle(event, first_delivery=first_delivery))
        return self.log[before:]

    def accept(self) -> list[Event]:
        """The goal's acceptance delivered to the planner (it plans and schedules)."""
        accepted = self.log[0]
        before = len(self.log)
        run_now(self.planner.handle(accepted, first_delivery=True))
        return self.log[before:]

    # -- other services' events --

    def _stamp(self, producer: str) -> Stamp:
        return Stamp(
            producer=producer,
            goal_id=GOAL,
            occurred_at=NOW,
            causation_id=self.log[-1].event_id,
            correlation_id=GOAL,
        )

    def context_provided(self, iteration: int = 1) -> list[Event]:
        stamp = self._stamp("memory@0.1.0")
        return self.receive(
            ContextProvided(
                **stamp.envelope("context_provided", iteration),
                request_id="r",
                iteration=iteration,
            )
        )

    def completed(self, task_id: str, output: str, iteration: int = 1) -> list[Event]:
        stamp = self._stamp("executor@0.1.0")
        return self.receive(
            TaskCompleted(
                **stamp.envelope("task_completed", iteration, task_id),
                iteration=iteration,
                task_id=task_id,
                tool="echo",
                output=output,
                attempts=1,
                duration_ms=1.0,
            )
        )

    def failed(
        self, task_id: str, error: str = "boom", iteration: int = 1, *, transient: bool = True
    ) -> list[Event]:
        stamp = self._stamp("executor@0.1.0")
        return self.receive(
            TaskFailed(
                **stamp.envelope("task_failed", iteration, task_id),
                iteration=iteration,
                task_id=task_id,
                tool="echo",
                error=error,
                attempts=3,
                duration_ms=1.0,
                transient=transient,
            )
        )

    def evaluated(
        self,
        verdict: Literal["accept", "revise"],
        *,
        iteration: int = 1,
        score: float = 1.0,
        feedback: str = "all checks passed",
    ) -> list[Event]:
        stamp = self._stamp("evaluator@0.1.0")
        return self.receive(
            EvaluationCompleted(
                **stamp.envelope("evaluation_completed", iteration),
                request_id="req",
                iteration=iteration,
                verdict=verdict,
                score=score,
                feedback=feedback,
            )
        )


def scheduled(events: list[Event]) -> dict[str, TaskScheduled]:
    return {event.task_id: event for event in events if isinstance(event, TaskScheduled)}


def only(events: list[Event], kind: type[Any]) -> Any:
    matching = [event for event in events if isinstance(event, kind)]
    assert len(matching) == 1, events
    return matching[0]


ORDERED = {
    "text": "multiply and report",
    "steps": [
        {"tool": "calculator", "args": {"expression": "17*23"}},
        {"tool": "echo", "args": {"text": "the answer is {{steps.s1.output}}"}},
    ],
    "expect": {"contains": "391"},
}

DIAMOND = {
    "text": "fan out and in",
    "steps": [
        {"id": "a", "tool": "echo", "args": {"text": "A"}},
        {"id": "b", "tool": "echo", "args": {"text": "B"}},
        {
            "id": "c",
            "tool": "echo",
            "args": {"text": "{{steps.a.output}}+{{steps.b.output}}"},
            "depends_on": ["a", "b"],
        },
    ],
}


# -- planning and scheduling --------------------------------------------------------------


def test_admitting_a_goal_decides_nothing_else() -> None:
    harness = PlannerHarness(ORDERED)

    assert [type(e) for e in harness.log] == [GoalAccepted]
    assert harness.goal.plan is None


def test_acceptance_makes_the_explicit_plan_and_schedules_only_the_first_step() -> None:
    harness = PlannerHarness(ORDERED)

    events = harness.accept()

    plan = only(events, PlanCreated)
    assert plan.strategy == "explicit"
    assert plan.iteration == 1
    assert [task.task_id for task in plan.tasks] == ["s1", "s2"]
    assert plan.event_id == derive_id("planner", GOAL, "plan_created", "plan", 1)
    assert plan.causation_id == harness.log[0].event_id  # the goal_accepted event
    # Explicit steps never read memory: no context round trip.
    assert not any(isinstance(e, ContextRequested) for e in harness.log)
    assert list(scheduled(events)) == ["s1"]
    first = scheduled(events)["s1"]
    assert (first.iteration, first.tool, first.args) == (1, "calculator", {"expression": "17*23"})
    assert (first.description, first.timeout_s, first.max_attempts) == ("calculator 17*23", 30, 3)
    assert first.event_id == derive_id("planner", GOAL, "task_scheduled", "task", 1, "s1")


def test_a_completed_step_schedules_the_next_with_its_output_substituted() -> None:
    harness = PlannerHarness(ORDERED)
    harness.accept()

    events = harness.completed("s1", "391")

    assert list(scheduled(events)) == ["s2"]
    assert scheduled(events)["s2"].args == {"text": "the answer is 391"}


def test_independent_tasks_are_scheduled_together_and_a_join_waits_for_all() -> None:
    harness = PlannerHarness(DIAMOND)

    assert sorted(scheduled(harness.accept())) == ["a", "b"]
    assert harness.completed("a", "x") == []
    events = harness.completed("b", "y")

    assert list(scheduled(events)) == ["c"]
    assert scheduled(events)["c"].args == {"text": "x+y"}


def test_without_steps_the_text_is_decomposed() -> None:
    harness = PlannerHarness({"text": "compute 17*23 then summarize"})

    events = harness.accept()
    plan = only(events, PlanCreated)
    assert plan.strategy == "decomposed"
    assert [(task.task_id, task.tool) for task in plan.tasks] == [
        ("s1", "calculator"),
        ("s2", "echo"),
    ]
    assert scheduled(events)["s1"].args == {"expression": "17*23"}

    assert scheduled(harness.completed("s1", "391"))["s2"].args == {"text": "Summary: 391"}


def test_decomposed_tasks_get_at_least_their_tools_default_timeout() -> None:
    harness = PlannerHarness({"text": "sleep 2"})

    task = scheduled(harness.accept())["s1"]

    assert task.args == {"seconds": 2.0}
    assert task.timeout_s == BUILTIN_TOOLS["sleep"].default_timeout_s


# -- evaluation ---------------------------------------------------------------------------


def test_when_every_task_is_done_the_evaluation_gets_the_sink_outputs_and_outcomes() -> None:
    harness = PlannerHarness(DIAMOND)
    harness.accept()
    harness.completed("b", "y")
    harness.completed("a", "x")

    events = harness.completed("c", "x+y")

    request = only(events, EvaluationRequested)
    assert request.iteration == 1
    assert request.text == "fan out and in"
    assert request.expect is None
    assert request.result == "x+y"  # only c: nobody depends on it
    assert [(t.task_id, t.status, t.output) for t in request.tasks] == [
        ("a", "completed", "x"),
        ("b", "completed", "y"),
        ("c", "completed", "x+y"),
    ]
    assert request.event_id == derive_id("planner", GOAL, "evaluation_requested", "evaluation", 1)


def test_a_failed_dependency_skips_its_dependents_and_the_rest_carries_on() -> None:
    harness = PlannerHarness(
        {
            "text": "t",
            "expect": {"contains": "ok"},
            "steps": [
                {"id": "a", "tool": "echo", "args": {"text": "A"}},
                {"id": "b", "tool": "echo", "args": {"text": "B"}, "depends_on": ["a"]},
                {"id": "c", "tool": "echo", "args": {"text": "C"}, "depends_on": ["b"]},
                {"id": "d", "tool": "echo", "args": {"text": "D"}},
            ],
        }
    )
    harness.accept()

    assert harness.failed("a", "no such thing") == []
    events = harness.completed("d", "ok")

    request = only(events, EvaluationRequested)
    assert [(t.task_id, t.status, t.error) for t in request.tasks] == [
        ("a", "failed", "no such thing"),
        ("b", "skipped", ""),
        ("c", "skipped", ""),
        ("d", "completed", ""),
    ]
    assert request.result == "ok"  # the skipped sink c contributes nothing
    assert request.expect is not None
    assert request.expect.contains == "ok"
    ever_scheduled = [event.task_id for event in harness.log if isinstance(event, TaskScheduled)]
    assert ever_scheduled == ["a", "d"]


def test_results_of_several_sinks_are_joined_line_by_line_in_plan_order() -> None:
    harness = PlannerHarness(
        {
            "text": "t",
            "steps": [
                {"id": "x", "tool": "echo", "args": {"text": "1"}},
                {"id": "y", "tool": "echo", "args": {"text": "2"}},
            ],
        }
    )
    harness.accept()
    harness.completed("y", "second")

    request = only(harness.completed("x", "first"), EvaluationRequested)

    assert request.result == "first\nsecond"


def test_an_accepted_evaluation_completes_the_goal() -> None:
    harness = PlannerHarness(ORDERED)
    harness.accept()
    harness.completed("s1", "391")
    harness.completed("s2", "the answer is 391")

    events = harness.evaluated("accept", score=0.9)

    completed = only(events, GoalCompleted)
    assert (completed.result, completed.iterations, completed.score) == (
        "the answer is 391",
        1,
        0.9,
    )
    assert completed.event_id == derive_id("planner", GOAL, "goal_completed", "outcome")
    assert len(events) == 1
    assert is_finished(harness.state)


def test_revise_reruns_the_plan_with_more_room_for_failed_tasks_until_the_limit() -> None:
    harness = PlannerHarness(
        {
            "text": "t",
            "max_iterations": 2,
            "steps": [
                {"tool": "echo", "args": {"text": "A"}, "timeout_s": 10},
                {"tool": "echo", "args": {"text": "{{steps.s1.output}}"}},
            ],
        }
    )
    harness.accept()
    harness.failed("s1", "timed out")

    events = harness.evaluated("revise", score=0.0, feedback="task s1 failed")

    revised = only(events, PlanRevised)
    assert (revised.iteration, revised.strategy, revised.feedback) == (
        2,
        "revised",
        "task s1 failed",
    )
    first, second = revised.tasks
    assert (first.timeout_s, first.max_attempts) == (20.0, 4)
    assert (second.timeout_s, second.max_attempts) == (30.0, 3)  # skipped, not failed
    assert revised.event_id == derive_id("planner", GOAL, "plan_revised", "plan", 2)
    rescheduled = only(events, TaskScheduled)
    assert (rescheduled.iteration, rescheduled.task_id) == (2, "s1")
    assert (rescheduled.timeout_s, rescheduled.max_attempts) == (20.0, 4)

    harness.failed("s1", "timed out again", iteration=2)
    final = harness.evaluated("revise", iteration=2, score=0.25, feedback="task s1 failed")

    failed = only(final, GoalFailed)
    assert failed.reason == "evaluation did not pass after 2 iterations: task s1 failed"
    assert (failed.iterations, failed.score) == (2, 0.25)
    assert failed.event_id == derive_id("planner", GOAL, "goal_failed", "outcome")
    assert is_finished(harness.state)


def test_a_permanent_failure_is_not_revised_into_the_same_plan() -> None:
    harness = PlannerHarness(
        {"text": "t", "steps": [{"tool": "calculator", "args": {"expression": "1/0"}}]}
    )
    harness.context_provided()
    harness.failed("s1", "division by zero", transient=False)

    events = harness.evaluated("revise", score=0.0, feedback="task s1 failed")

    assert not [e for e in events if isinstance(e, PlanRevised | TaskScheduled)]
    failed = only(events, GoalFailed)
    assert failed.iterations == 1
    assert "s1 (calculator): division by zero failed permanently" in failed.reason
    assert "fix the step" in failed.reason
    assert is_finished(harness.state)


def test_a_revision_can_succeed_and_completes_with_the_iteration_count() -> None:
    harness = PlannerHarness({"text": "echo hi"})
    harness.accept()
    harness.failed("s1")
    harness.evaluated("revise", score=0.0)
    request = only(harness.completed("s1", "hi", iteration=2), EvaluationRequested)
    assert (request.iteration, request.result) == (2, "hi")

    completed = only(harness.evaluated("accept", iteration=2), GoalCompleted)

    assert (completed.iterations, completed.result) == (2, "hi")


# -- idempotency and stray events ---------------------------------------------------------


def test_a_repeated_trigger_reproduces_the_same_event_ids() -> None:
    harness = PlannerHarness(DIAMOND)
    accepted = harness.log[0]

    first = harness.decide_on(accepted)
    later = harness.decide_on(accepted, now=NOW + timedelta(minutes=5))

    assert [event.event_id for event in first] == [event.event_id for event in later]
    assert len(first) == 3  # plan + a + b
    harness.record(first)
    # Once the decisions are folded in, the same trigger has nothing left to do.
    assert harness.decide_on(accepted) == []


def test_a_crash_between_publishes_is_repaired_by_the_next_trigger() -> None:
    harness = PlannerHarness(DIAMOND)
    outputs = harness.accept()
    plan = only(outputs, PlanCreated)

    # A restarted planner that only saw the plan (not the task_scheduled) reschedules.
    rebuilt: PlannerState | None = None
    for event in harness.log:
        if not isinstance(event, TaskScheduled):
            rebuilt = evolve(rebuilt, event)
    repaired = decide(rebuilt, plan, tools=BUILTIN_TOOLS, now=NOW, producer=PRODUCER)

    assert [event.event_id for event in repaired] == [
        event.event_id for event in outputs if isinstance(event, TaskScheduled)
    ]


def test_a_redelivered_acceptance_reads_the_record_and_repairs_a_cut_decision() -> None:
    harness = PlannerHarness(DIAMOND)
    outputs = harness.accept()
    # A crash cut the decision short: only the plan reached the stream.
    harness.store.events = [e for e in harness.log if not isinstance(e, TaskScheduled)]
    harness.planner.states.clear()  # the replica that redelivers to starts cold

    repaired = harness.receive(harness.log[0], first_delivery=False)

    assert harness.store.loads == 1  # a redelivery is not trusted to be the first
    assert [e.event_id for e in repaired] == [
        e.event_id for e in outputs if isinstance(e, TaskScheduled)
    ]


def test_events_of_an_older_iteration_are_ignored() -> None:
    harness = PlannerHarness({"text": "echo hi"})
    harness.accept()
    harness.failed("s1")
    harness.evaluated("revise", score=0.0)

    assert harness.completed("s1", "late", iteration=1) == []
    assert harness.evaluated("accept", iteration=1) == []
    assert harness.goal.iteration == 2
    assert harness.goal.status_of("s1") == "scheduled"


def test_nothing_is_decided_after_the_goal_finished() -> None:
    harness = PlannerHarness({"text": "echo hi"})
    harness.accept()
    harness.completed("s1", "hi")
    harness.evaluated("accept")

    assert harness.evaluated("revise", score=0.0) == []
    assert harness.completed("s1", "again") == []
    assert harness.accept() == []


def test_events_the_planner_does_not_care_about_decide_nothing() -> None:
    harness = PlannerHarness({"text": "echo hi"})
    harness.accept()
    stamp = Stamp.caused_by(harness.log[-1], producer="executor@0.1.0", now=NOW)

    started = TaskStarted(
        **stamp.envelope("task_started", 1, "s1"), iteration=1, task_id="s1", tool="echo", attempt=1
    )
    stored = MemoryStored(
        **stamp.envelope("memory_stored", "k"), key="k", text="t", source_event_id="x"
    )

    assert harness.receive(started) == []
    assert harness.receive(stored) == []


def test_an_unknown_goal_decides_nothing() -> None:
    harness = PlannerHarness({"text": "echo hi"})
    outputs = harness.accept()

    assert decide(None, outputs[0], tools=BUILTIN_TOOLS, now=NOW, producer=PRODUCER) == []


def test_an_old_iteration_event_triggers_nothing_even_when_work_is_due() -> None:
    harness = PlannerHarness({"text": "echo hi"})
    harness.accept()
    harness.failed("s1")
    harness.evaluated("revise", score=0.0)
    old_evaluation = next(e for e in harness.log if isinstance(e, EvaluationCompleted))
    # A planner that lost iteration 2's task_scheduled has work due, but an iteration-1
    # event is history; the plan_revised coming back from the stream repairs it instead.
    rebuilt: PlannerState | None = None
    for event in harness.log:
        if not (isinstance(event, TaskScheduled) and event.iteration == 2):
            rebuilt = evolve(rebuilt, event)
    revised = next(e for e in harness.log if isinstance(e, PlanRevised))

    assert decide(rebuilt, old_evaluation, tools=BUILTIN_TOOLS, now=NOW, producer=PRODUCER) == []
    repaired = decide(rebuilt, revised, tools=BUILTIN_TOOLS, now=NOW, producer=PRODUCER)
    assert [(e.iteration, e.task_id) for e in scheduled(repaired).values()] == [(2, "s1")]
