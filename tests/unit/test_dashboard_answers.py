"""What the dashboard accepts as an approval answer before sending it to the planner, and how
it lists a call that waits."""

from __future__ import annotations

import json

import pytest

from infra.dashboard.answers import MAX_ANSWER_BYTES, BadAnswerError, parse_answer
from infra.dashboard.pages import approvals_list


def test_an_approval_with_edited_arguments_and_a_denial_with_a_reason() -> None:
    edited = parse_answer(
        json.dumps({"approval_id": "g-1/1/s2", "decision": "approve", "args": {"text": "x"}})
    )
    assert (edited.decision, edited.args, edited.by) == ("approve", {"text": "x"}, "")
    denied = parse_answer(
        b'{"approval_id": "g-1/1/s2", "decision": "deny", "reason": "no", "by": "ana"}'
    )
    assert (denied.decision, denied.args, denied.reason, denied.by) == ("deny", None, "no", "ana")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{nope", "not JSON"),
        (b"[" * 60_000, "not JSON"),  # deep nesting
        (b"[]", "JSON object"),
        (b'{"approval_id": "g/1/a", "decision": "maybe"}', "approve or deny"),
        (b'{"approval_id": "", "decision": "approve"}', "approval_id"),
        (b'{"approval_id": "g/1/a", "decision": "approve", "args": [1]}', "JSON object"),
        (b'{"approval_id": "g/1/a", "decision": "deny"}', "needs a reason"),
        (b'{"approval_id": "g/1/a", "decision": "deny", "reason": "r", "args": {}}', "no arg"),
        (b'{"approval_id": "g/1/a", "decision": "approve", "by": 7}', "must be a string"),
        (b'{"approval_id": "g/1/a", "decision": "approve", "sudo": true}', "unknown field"),
        (b" " * (MAX_ANSWER_BYTES + 1), "at most"),
    ],
)
def test_a_bad_answer_says_what_is_wrong(body: bytes, says: str) -> None:
    with pytest.raises(BadAnswerError, match=says):
        parse_answer(body)


def test_a_call_a_react_tasks_model_chose_is_listed_with_its_think() -> None:
    row = {
        "goal_id": "g-1",
        "task_id": "r1",
        "tool": "write_file",
        "reason": "rule 'write_file'",
        "requested_at": None,
        "deadline": None,
        "answerers": None,
        "args": '{"path": "a.txt"}',
    }
    react = approvals_list([{**row, "approval_id": "g-1/1/r1/2/1"}])
    assert "<b>r1</b> (its model's call 1 of think 2) of" in react
    assert 'data-approval="g-1/1/r1/2/1"' in react
    plain = approvals_list([{**row, "approval_id": "g-1/1/r1"}])
    assert "think" not in plain
