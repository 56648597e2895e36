"""Approvals: given a goal whose policy names a call -> when the task is ready, and when answers
arrive -> then what the planner records, and what it schedules (or never does).

Answers go through the planner's own handlers: ``ApprovalIntake`` records the answer on the
goal, ``GoalPlanner`` decides on it, as the live service does (tests/unit/planner_harness.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest

from events.approval_commands import (
    DEADLINE_BY,
    InvalidAnswer,
    deadline_message,
    parse_approval_answer,
)
from events.approvals import (
    DEFAULT_POLICY,
    ApprovalPolicy,
    ApprovalPolicyError,
    ApprovalRule,
    GoalApproval,
    approval_reason,
    goal_policy,
    parse_policy,
)
from events.catalog import (
    ApprovalAnswered,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    EvaluationRequested,
    GoalCancelled,
    GoalRejected,
    TaskCancelled,
    TaskScheduled,
)
from events.errors import DecodeError
from events.model import Event
from events.schedules import SCHEDULE_HEADER, TARGET_HEADER
from events.subjects import COMMANDS_GOAL_ID, INTAKE_APPROVAL
from events.tools import BUILTIN_TOOLS, external_tool
from services.planner.handler import ApprovalIntake
from tests.unit.planner_harness import NOW, PRODUCER, run_now
from tests.unit.test_planner_loop import GOAL, PlannerHarness

WRITE_THEN_ECHO = {
    "text": "write then say",
    "steps": [
        {"tool": "write_file", "args": {"path": "out.txt", "content": "hello"}},
        {"tool": "echo", "args": {"text": "wrote {{steps.s1.output}}"}},
    ],
    "approval": {"require": ["write_file"], "deadline_s": 60},
}
S1 = f"{GOAL}/1/s1"


class Approving(PlannerHarness):
    """A goal's planner plus the intake of approval answers, over the same log."""

    def __init__(self, command: dict[str, Any]) -> None:
        super().__init__(command)

        async def goal_exists(goal_id: str) -> bool:
            return any(event.goal_id == goal_id for event in self.log)

        self.answers = ApprovalIntake(
            append=self.store.append,
            goal_exists=goal_exists,
            producer=PRODUCER,
            now=lambda: NOW,
            max_bytes=4096,
        )

    def send(self, command_id: str, **fields: Any) -> list[Event]:
        """An answer published, recorded by the intake, then delivered to the planner."""
        return self.send_bytes(msgspec.json.encode({"command_id": command_id, **fields}))

    def send_bytes(self, body: bytes) -> list[Event]:
        before = len(self.log)
        recorded = run_now(self.answers.admit(body, fallback_command_id="x"))
        for event in recorded:
            if event.goal_id == GOAL:
                run_now(self.planner.handle(event, first_delivery=True))
        return self.log[before:]


def decided(events: list[Event]) -> list[Event]:
    return [e for e in events if not isinstance(e, ApprovalAnswered)]


# -- the policy --------------------------------------------------------------------------


def test_the_default_policy_names_side_effects_programs_fetches_and_untrusted_tools() -> None:
    tools = BUILTIN_TOOLS
    for tool, args in (
        ("write_file", {"path": "a", "content": "b"}),
        ("append_line", {"path": "a", "line": "b"}),
        ("python", {"code": "print(1)"}),
        ("http_get", {"url": "https://example.com"}),
    ):
        assert approval_reason(DEFAULT_POLICY, tool, args, tools[tool]) is not None, tool
    for tool, args in (("echo", {"text": "x"}), ("calculator", {"expression": "1+1"})):
        assert approval_reason(DEFAULT_POLICY, tool, args, tools[tool]) is None
    untrusted = external_tool("notes.add", "add a note", {"type": "object"}, origin="mcp:notes")
    trusted = external_tool("t.now", "now", {"type": "object"}, origin="mcp:t", trusted=True)
    assert "mcp:notes, which is not trusted" in str(
        approval_reason(DEFAULT_POLICY, "notes.add", {}, untrusted)
    )
    assert approval_reason(DEFAULT_POLICY, "t.now", {}, trusted) is None


def test_a_rule_by_argument_pattern_and_host_allow_list() -> None:
    policy = ApprovalPolicy(
        rules=(
            ApprovalRule(tool="http_get", allow_hosts=("example.com", "*.internal.example")),
            ApprovalRule(tool="echo", when={"text": "(?i)secret"}),
            ApprovalRule(tool="notes.*"),
        ),
        trust=("notes.read",),
    )
    spec = BUILTIN_TOOLS["http_get"]
    assert approval_reason(policy, "http_get", {"url": "https://example.com/x"}, spec) is None
    assert approval_reason(policy, "http_get", {"url": "https://a.internal.example/"}, spec) is None
    outside = approval_reason(policy, "http_get", {"url": "https://evil.example.org/"}, spec)
    assert outside is not None
    assert "outside the allowed hosts" in outside
    assert approval_reason(policy, "echo", {"text": "the SECRET plan"}, None) is not None
    assert approval_reason(policy, "echo", {"text": "hello"}, None) is None
    assert approval_reason(policy, "notes.add", {}, None) is not None
    assert approval_reason(policy, "notes.read", {}, None) is None


def test_a_policy_is_read_from_json_and_a_bad_one_is_refused_with_what_to_fix() -> None:
    assert parse_policy("") is None
    assert parse_policy("off") is None
    assert parse_policy("default") == DEFAULT_POLICY
    parsed = parse_policy('{"rules": [{"tool": "echo"}], "deadline_s": 30, "answerers": ["ops"]}')
    assert parsed == ApprovalPolicy(
        rules=(ApprovalRule(tool="echo"),), deadline_s=30, answerers=("ops",)
    )
    with pytest.raises(ApprovalPolicyError, match="not an approval policy"):
        parse_policy('{"rules": "all"}')
    with pytest.raises(ApprovalPolicyError, match="lookaround"):
        parse_policy('{"rules": [{"tool": "echo", "when": {"text": "(?=x)"}}]}')
    with pytest.raises(ApprovalPolicyError, match="deadline_s"):
        parse_policy('{"deadline_s": 0}')


def test_a_goal_adds_requirements_but_trusts_only_where_the_platform_lets_it() -> None:
    merged = goal_policy(DEFAULT_POLICY, GoalApproval(require=("echo",), deadline_s=5))
    assert isinstance(merged, ApprovalPolicy)
    assert merged.rules[0] == ApprovalRule(tool="echo")
    assert merged.deadline_s == 5
    refused = goal_policy(DEFAULT_POLICY, GoalApproval(trust=("write_file",)))
    assert isinstance(refused, str)
    assert "does not let a goal trust" in refused
    lenient = msgspec.structs.replace(DEFAULT_POLICY, goals_may_trust=True)
    trusted = goal_policy(lenient, GoalApproval(trust=("write_file",)))
    assert isinstance(trusted, ApprovalPolicy)
    assert approval_reason(trusted, "write_file", {}, None) is None
    # Nothing configured and nothing asked: no policy is recorded at all.
    assert goal_policy(None, None) is None
    # A goal does not choose its own answerers where the platform named them.
    named = msgspec.structs.replace(DEFAULT_POLICY, answerers=("ops",))
    chosen = goal_policy(named, GoalApproval(require=("echo",), answerers=("me",)))
    assert isinstance(chosen, ApprovalPolicy)
    assert chosen.answerers == ("ops",)


def test_a_goal_that_trusts_against_the_policy_is_rejected_at_intake() -> None:
    from services.planner.handler import GoalIntake
    from tests.unit.planner_harness import InMemoryLog

    store = InMemoryLog()
    intake = GoalIntake(
        append_new_goal=store.append_new_goal,
        fork_origin=store.fork_origin,
        tools=BUILTIN_TOOLS,
        producer=PRODUCER,
        now=lambda: NOW,
        max_bytes=65536,
        policy=DEFAULT_POLICY,
    )
    body = {"text": "t", "goal_id": "g-t", "approval": {"trust": ["write_file"]}}
    run_now(intake.admit(msgspec.json.encode(body), fallback_command_id="c"))
    (rejected,) = store.events
    assert isinstance(rejected, GoalRejected)
    assert "approval.trust" in rejected.reason


# -- requests and answers ------------------------------------------------------------------


def test_a_call_the_policy_names_waits_for_approval_instead_of_running() -> None:
    goal = Approving(WRITE_THEN_ECHO)
    appended = goal.accept()

    requests = [e for e in appended if isinstance(e, ApprovalRequested)]
    assert not any(isinstance(e, TaskScheduled) for e in appended)
    (request,) = requests
    assert (request.approval_id, request.task_id, request.tool) == (S1, "s1", "write_file")
    assert request.args == {"path": "out.txt", "content": "hello"}
    assert request.deadline == NOW + timedelta(seconds=60)
    assert "write_file" in request.reason
    assert goal.goal.status_of("s1") == "awaiting_approval"
    # Deciding again (a redelivery) asks nothing twice: the request has the same id.
    assert goal.decide_on(goal.log[0]) == []


def test_an_approval_schedules_the_task_and_its_dependents_follow() -> None:
    goal = Approving(WRITE_THEN_ECHO)
    goal.accept()

    appended = decided(goal.send("c-ok", approval_id=S1, decision="approve", by="ada"))

    granted, scheduled = appended
    assert isinstance(granted, ApprovalGranted)
    assert (granted.by, granted.edited, granted.args) == ("ada", False, granted.original_args)
    assert isinstance(scheduled, TaskScheduled)
    assert (scheduled.task_id, scheduled.args) == ("s1", {"path": "out.txt", "content": "hello"})
    after = goal.completed("s1", "wrote 5 bytes")
    assert [e.task_id for e in after if isinstance(e, TaskScheduled)] == ["s2"]


def test_edited_arguments_are_what_is_scheduled_and_both_are_recorded() -> None:
    goal = Approving(WRITE_THEN_ECHO)
    goal.accept()
    edit = {"path": "safe.txt", "content": "hello"}

    granted, scheduled = decided(goal.send("c-edit", approval_id=S1, decision="approve", args=edit))

    assert isinstance(granted, ApprovalGranted)
    assert granted.edited
    assert (granted.args, granted.original_args) == (edit, {"path": "out.txt", "content": "hello"})
    assert isinstance(scheduled, TaskScheduled)
    assert scheduled.args == edit


def test_edited_arguments_that_violate_the_tools_schema_are_rejected_and_it_still_waits() -> None:
    goal = Approving(WRITE_THEN_ECHO)
    goal.accept()

    (rejected,) = decided(
        goal.send("c-bad", approval_id=S1, decision="approve", args={"path": "x", "mode": 7})
    )

    assert isinstance(rejected, ApprovalRejected)
    assert "do not fit write_file's schema" in rejected.reason
    assert "content" in rejected.reason
    assert goal.goal.status_of("s1") == "awaiting_approval"
    granted, _ = decided(goal.send("c-good", approval_id=S1, decision="approve"))
    assert isinstance(granted, ApprovalGranted)


def test_a_denial_fails_the_task_with_the_reason_and_skips_what_depends_on_it() -> None:
    goal = Approving(WRITE_THEN_ECHO)
    goal.accept()

    denied, evaluation = decided(
        goal.send("c-no", approval_id=S1, decision="deny", reason="not on prod")
    )

    assert isinstance(denied, ApprovalDenied)
    assert denied.reason == "not on prod"
    assert isinstance(evaluation, EvaluationRequested)
    statuses = {t.task_id: (t.status, t.error) for t in evaluation.tasks}
    assert statuses == {"s1": ("failed", "approval denied: not on prod"), "s2": ("skipped", "")}
    assert not any(isinstance(e, TaskScheduled) for e in goal.log)


def test_a_second_answer_is_rejected_the_same_answer_again_changes_nothing() -> None:
    goal = Approving(WRITE_THEN_ECHO)
    goal.accept()
    goal.send("c-1", approval_id=S1, decision="approve")

    (second,) = decided(goal.send("c-2", approval_id=S1, decision="deny", reason="late"))
    resent = decided(goal.send("c-1", approval_id=S1, decision="approve"))

    assert isinstance(second, ApprovalRejected)
    assert "already granted" in second.reason
    assert resent == []
    assert sum(isinstance(e, TaskScheduled) for e in goal.log) == 1


def test_the_deadline_denies_a_request_nobody_answered_and_is_silent_after_an_answer() -> None:
    goal = Approving(WRITE_THEN_ECHO)
    goal.accept()
    (request,) = [e for e in goal.log if isinstance(e, ApprovalRequested)]
    message = deadline_message(request, now=NOW)
    assert message.headers[SCHEDULE_HEADER] == "@at 2025-01-02T03:05:05Z"
    assert message.headers[TARGET_HEADER] == INTAKE_APPROVAL
    assert message.subject == f"agora.intake.deadline.{GOAL}.1.s1"
    # The same request gives the same bytes: a republish after a crash stores nothing new.
    assert deadline_message(request, now=NOW) == message
    # A deadline that already passed is the answer itself.
    late = deadline_message(request, now=NOW + timedelta(hours=1))
    assert (late.subject, late.body) == (INTAKE_APPROVAL, message.body)

    denied, _ = decided(goal.send_bytes(message.body))
    assert isinstance(denied, ApprovalDenied)
    assert (denied.by, denied.reason) == (
        DEADLINE_BY,
        "no answer by the deadline 2025-01-02T03:05:05Z",
    )

    answered = Approving(WRITE_THEN_ECHO)
    answered.accept()
    answered.send("c-1", approval_id=S1, decision="approve")
    assert decided(answered.send_bytes(message.body)) == []


def test_an_answer_for_an_unknown_request_or_goal_is_rejected_and_nothing_else() -> None:
    goal = Approving(WRITE_THEN_ECHO)
    goal.accept()
    before = [e for e in goal.log if not isinstance(e, ApprovalAnswered)]

    (unknown,) = decided(goal.send("c-u", approval_id=f"{GOAL}/1/s9", decision="approve"))
    (nowhere,) = goal.send("c-n", approval_id="g-nope/1/s1", decision="approve")

    assert isinstance(unknown, ApprovalRejected)
    assert unknown.reason == f"no approval {GOAL}/1/s9 was requested"
    assert isinstance(nowhere, ApprovalRejected)
    assert (nowhere.goal_id, nowhere.target_goal_id) == (COMMANDS_GOAL_ID, "g-nope")
    after = [e for e in goal.log if not isinstance(e, ApprovalAnswered | ApprovalRejected)]
    assert after == before


def test_only_the_named_answerers_may_answer() -> None:
    goal = Approving(
        {**WRITE_THEN_ECHO, "approval": {"require": ["write_file"], "answerers": ["ops"]}}
    )
    goal.accept()

    (refused,) = decided(goal.send("c-1", approval_id=S1, decision="approve", by="mallory"))
    granted, _ = decided(goal.send("c-2", approval_id=S1, decision="approve", by="ops"))

    assert isinstance(refused, ApprovalRejected)
    assert "waits for one of ops" in refused.reason
    assert isinstance(granted, ApprovalGranted)


def test_a_paused_goal_records_the_answer_and_schedules_on_resume() -> None:
    from tests.unit.test_planner_control import Steered

    class Both(Approving, Steered):
        pass

    goal = Both(WRITE_THEN_ECHO)
    goal.accept()
    Steered.send(goal, "pause", "p-1")

    # A pause denies nothing: the call still waits, and may be answered.
    assert goal.goal.approvals[S1].status == "waiting"
    answered = decided(Approving.send(goal, "c-1", approval_id=S1, decision="approve"))
    assert [type(e) for e in answered] == [ApprovalGranted]
    resumed = Steered.send(goal, "resume", "r-1")
    assert [e.task_id for e in resumed if isinstance(e, TaskScheduled)] == ["s1"]


def test_a_cancel_denies_the_waiting_call_cancels_its_task_and_later_answers_are_rejected() -> None:
    from tests.unit.test_planner_control import Steered

    class Both(Approving, Steered):
        pass

    goal = Both(WRITE_THEN_ECHO)
    goal.accept()
    (request,) = [e for e in goal.log if isinstance(e, ApprovalRequested)]

    cancelled, denied, stopped = Steered.send(goal, "cancel", "x-1", reason="not needed")[1:]

    assert isinstance(cancelled, GoalCancelled)
    assert isinstance(denied, ApprovalDenied)
    assert (denied.approval_id, denied.by, denied.reason) == (
        S1,
        "_cancel",
        "the goal was cancelled: not needed",
    )
    assert isinstance(stopped, TaskCancelled)
    assert (stopped.task_id, stopped.attempts, stopped.reason) == (
        "s1",
        0,
        "the goal was cancelled: not needed",
    )
    (late,) = decided(Approving.send(goal, "c-late", approval_id=S1, decision="approve"))
    assert isinstance(late, ApprovalRejected)
    assert late.reason == f"goal {GOAL} already cancelled; the approval no longer applies"
    # The deadline's scheduled deny, delivered later, is dropped without a word.
    assert decided(goal.send_bytes(deadline_message(request, now=NOW).body)) == []
    assert not any(isinstance(e, TaskScheduled) for e in goal.log)


def test_a_cancel_while_paused_cancels_the_approved_task_that_was_never_scheduled() -> None:
    from tests.unit.test_planner_control import Steered

    class Both(Approving, Steered):
        pass

    goal = Both(WRITE_THEN_ECHO)
    goal.accept()
    Steered.send(goal, "pause", "p-1")
    Approving.send(goal, "c-1", approval_id=S1, decision="approve")

    cancelled, stopped = Steered.send(goal, "cancel", "x-1")[1:]

    assert isinstance(cancelled, GoalCancelled)
    assert isinstance(stopped, TaskCancelled)
    assert (stopped.task_id, stopped.reason) == ("s1", "the goal was cancelled")
    assert not any(isinstance(e, TaskScheduled) for e in goal.log)


# -- hostile answers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"approval_id": "g-1/1/s1", "decision": "maybe"}', "decision"),
        (b'{"approval_id": "not an id", "decision": "approve"}', "is not an approval id"),
        (b'{"approval_id": "g-1/1/s1", "decision": "deny", "args": {}}', "'approve' only"),
        (b'{"approval_id": "g-1/1/s1", "decision": "approve", "extra": 1}', "extra"),
        (b'{"approval_id": "_lease/1/s1", "decision": "approve"}', "reserved"),
        (
            b'{"approval_id": "g-1/1/s1", "decision": "approve", "args": {"t": "'
            + b"x" * 5000
            + b'"}}',
            "limit is 4096",
        ),
    ],
)
def test_an_answer_that_does_not_validate_is_rejected_with_the_reason(
    body: bytes, problem: str
) -> None:
    parsed = parse_approval_answer(body, fallback_command_id="f", max_bytes=4096)
    assert isinstance(parsed, InvalidAnswer)
    assert problem in parsed.reason


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"[" * 100_000 + b"]" * 100_000, b"\xff"])
def test_bytes_that_are_no_json_object_are_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_approval_answer(body, fallback_command_id="f", max_bytes=1 << 20)


def test_an_a2a_task_needs_input_while_an_approval_waits() -> None:
    from a2a.types import TaskState

    from infra.a2a_server.tasks import fold

    goal = Approving(WRITE_THEN_ECHO)
    goal.accept()
    waiting = fold(goal.log)
    assert waiting is not None
    assert waiting.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert waiting.needs_input
    goal.send("c-1", approval_id=S1, decision="approve")
    answered = fold(goal.log)
    assert answered is not None
    assert answered.state == TaskState.TASK_STATE_WORKING
