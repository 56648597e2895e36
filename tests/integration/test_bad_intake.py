"""Bad intake never crashes anything: a readable goal_rejected, or a DLQ record; others go on."""

from __future__ import annotations

import json

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import APIError

from events.catalog import GoalCompleted, GoalRejected
from events.subjects import DLQ_STREAM, INTAKE_GOAL
from infra.bus.dlq import decode_dead_letter
from infra.clients.goals import AgoraClient
from tests.conftest import InProcessPlatform

GOOD = {"text": "compute 6*7", "steps": [{"tool": "calculator", "args": {"expression": "6*7"}}]}

REJECTED = {
    "bad-missing-text": ({"goal_id": "bad-missing-text"}, "text"),
    "bad-types": ({"goal_id": "bad-types", "text": "x", "max_iterations": "three"}, "int"),
    "bad-steps-type": ({"goal_id": "bad-steps-type", "text": "x", "steps": "calculator"}, "steps"),
    "bad-unknown-tool": (
        {"goal_id": "bad-unknown-tool", "text": "x", "steps": [{"tool": "rm_rf", "args": {}}]},
        "rm_rf",
    ),
    "bad-tool-args": (
        {"goal_id": "bad-tool-args", "text": "x", "steps": [{"tool": "sleep", "args": {}}]},
        "seconds",
    ),
    "bad-too-big": (
        {"goal_id": "bad-too-big", "text": "x", "metadata": {"blob": "a" * 300_000}},
        "limit",
    ),
    "bad-unknown-field": ({"goal_id": "bad-unknown-field", "text": "x", "stesp": []}, "stesp"),
}
UNDECODABLE = {
    "c-invalid-json": b'{"text": "unterminated',
    "c-not-utf8": b"\xff\xfe\xfa not utf-8",
    "c-not-an-object": b'["text", "a list"]',
}


async def test_each_bad_command_is_rejected_or_dead_lettered_and_others_complete(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    js = nc.jetstream()
    before = await client.submit({**GOOD, "goal_id": "good-before"})

    for goal_id, (body, _) in REJECTED.items():
        await js.publish(INTAKE_GOAL, json.dumps(body).encode(), headers={"Nats-Msg-Id": goal_id})
    for command_id, raw in UNDECODABLE.items():
        await js.publish(INTAKE_GOAL, raw, headers={"Nats-Msg-Id": command_id})
    # Over the stream's max message size: refused by the server itself, nothing is stored.
    with pytest.raises(APIError, match="maximum"):
        await js.publish(INTAKE_GOAL, b"x" * (2 * 1024 * 1024))

    after = await client.submit({**GOOD, "goal_id": "good-after"})

    for submitted in (before, after):
        events = await client.wait_for_outcome(submitted.goal_id, timeout_s=30)
        assert isinstance(events[-1], GoalCompleted), events[-1]
    for goal_id, (_, reason_mentions) in REJECTED.items():
        events = await client.wait_for_outcome(goal_id, timeout_s=30)
        assert len(events) == 1, f"{goal_id}: a rejected goal must stop at goal_rejected"
        rejected = events[0]
        assert isinstance(rejected, GoalRejected)
        assert reason_mentions in rejected.reason, rejected.reason

    dlq = await js.pull_subscribe("agora.dlq.>", stream=DLQ_STREAM)
    letters = [decode_dead_letter(m.data) for m in await dlq.fetch(10, timeout=5)]
    by_command = {letter.headers["Nats-Msg-Id"]: letter for letter in letters}
    assert set(by_command) == set(UNDECODABLE)
    for command_id, raw in UNDECODABLE.items():
        letter = by_command[command_id]
        assert letter.reason == "undecodable"
        assert letter.data == raw  # the original bytes, to inspect and re-drive
        assert letter.consumer == "planner"
        assert "intake command" in letter.error
