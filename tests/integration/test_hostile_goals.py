"""Hostile goals -> submitted beside good ones -> each gets its answer, the good ones finish in
2 s, and nothing reaches the DLQ.

The services run on this test's event loop, so a goal that froze one of them (catastrophic
backtracking, a crash that redelivers) would freeze the test as well and fail it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings
from nats.aio.client import Client as NatsClient

from events.catalog import GoalAccepted, GoalCompleted, GoalFailed, GoalRejected
from events.ids import goal_id_for_command
from events.model import Event
from events.subjects import DLQ_STREAM, INTAKE_GOAL
from infra.clients.goals import AgoraClient
from tests.conftest import InProcessPlatform

GOOD = {"text": "compute 6*7", "steps": [{"tool": "calculator", "args": {"expression": "6*7"}}]}
GOOD_WITHIN_S = 2.0
DEEP = "[" * 10_000 + "]" * 10_000

# Each hostile goal with the outcome it must get, quickly.
HOSTILE: dict[str, tuple[str, type[Event], str]] = {
    "spaces-in-text": (
        json.dumps({"text": "a" + " " * 19_998 + "b", "max_iterations": 1}),
        GoalCompleted,
        "",
    ),
    "tabs-after-echo": (
        json.dumps({"text": "echo " + "\t " * 9_000 + "x,", "max_iterations": 1}),
        GoalCompleted,
        "",
    ),
    "catastrophic-expect": (
        json.dumps(
            {
                "text": "x",
                "steps": [{"tool": "echo", "args": {"text": "a" * 40 + "!"}}],
                "expect": {"matches": "(a+)+$"},
                "max_iterations": 1,
            }
        ),
        GoalFailed,
        "does not match",
    ),
    "lookahead-expect": (
        json.dumps({"text": "x", "expect": {"matches": "(?=a)"}}),
        GoalRejected,
        "RE2 syntax",
    ),
    "deep-nesting": ('{"text": "x", "metadata": {"a": ' + DEEP + "}}", GoalRejected, "nested"),
    "huge-number": ('{"text": "x", "metadata": {"n": 1e400}}', GoalRejected, "out of range"),
    "lone-surrogate": ('{"text": "x\\ud800"}', GoalRejected, "cannot read"),
    "newline-goal-id": (json.dumps({"text": "x", "goal_id": "abc\n"}), GoalRejected, "goal_id"),
}


async def _dead_letters(nc: NatsClient) -> int:
    info = await nc.jetstream().stream_info(DLQ_STREAM)
    return int(info.state.messages)


async def _submit_raw(nc: NatsClient, command_id: str, body: str) -> None:
    await nc.jetstream().publish(
        INTAKE_GOAL, body.encode(), headers={"Nats-Msg-Id": command_id}, timeout=5
    )


async def test_each_hostile_goal_gets_its_answer_and_the_good_beside_it_finish(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    for name, (body, outcome, mentions) in HOSTILE.items():
        command_id = f"hostile-{name}"
        await _submit_raw(nc, command_id, _with_command_id(body, command_id))
        good = await client.submit(GOOD)

        finished = await client.wait(good.goal_id, timeout_s=GOOD_WITHIN_S)
        assert finished.completed, f"beside {name}: {finished.final}"
        events = await client.wait_for_outcome(goal_id_for_command(command_id), timeout_s=30)
        assert isinstance(events[-1], outcome), f"{name}: {events[-1]}"
        assert mentions in getattr(events[-1], "reason", ""), f"{name}: {events[-1]}"

    assert await _dead_letters(nc) == 0


def _with_command_id(body: str, command_id: str) -> str:
    """The command with its command_id, by text: some bodies are JSON no parser here reads."""
    return '{"command_id": ' + json.dumps(command_id) + ", " + body.lstrip()[1:]


# -- the fuzz test: any JSON object gets a goal event, never a dead letter ---------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
_KEYS = st.sampled_from(
    [
        "text",
        "goal_id",
        "steps",
        "expect",
        "max_iterations",
        "metadata",
        "tool",
        "args",
        "id",
        "depends_on",
        "matches",
        "contains",
        "forked_from",
        "max_tokens",
        "x",
    ]
) | st.text(max_size=10)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)
# What msgspec refuses and a JSON object may still hold, spliced in as text.
_HOSTILE_TEXT = st.sampled_from(
    [
        "1e400",
        "-1e400",
        "9" * 400,
        '"\\ud800"',
        '"\\udfff\\ud800"',
        DEEP,
        '{"a":' * 3000 + "1" + "}" * 3000,
        '"a' + " " * 5000 + 'b"',
        '"(a+)+$"',
        '"abc\\n"',
    ]
)


@st.composite
def _hostile_objects(draw: st.DrawFn) -> tuple[str, str]:
    command_id = f"fuzz-{uuid.uuid4()}"
    fields: dict[str, Any] = draw(st.dictionaries(_KEYS, _VALUES, max_size=6))
    fields.pop("command_id", None)
    if draw(st.booleans()):
        fields["goal_id"] = f"g-{uuid.uuid4()}"
    else:
        fields.pop("goal_id", None)
    body = json.dumps({"command_id": command_id, **fields})
    if draw(st.booleans()):  # splice a value msgspec cannot read into the object
        key = draw(st.sampled_from(["text", "metadata", "expect", "steps", "max_cost_usd", "zz"]))
        body = body[:-1] + f', "{key}": ' + draw(_HOSTILE_TEXT) + "}"
    goal_id = fields.get("goal_id") or goal_id_for_command(command_id)
    return body, str(goal_id)


async def test_no_json_object_reaches_the_dlq_or_stalls_a_service(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    loop = asyncio.get_running_loop()

    async def one(body: str, goal_id: str) -> None:
        await _submit_raw(nc, f"raw-{uuid.uuid4()}", body)
        good = await client.submit(GOOD)
        finished = await client.wait(good.goal_id, timeout_s=GOOD_WITHIN_S)
        assert finished.completed, finished.final
        first = await _first_event(client, goal_id)
        assert isinstance(first, GoalAccepted | GoalRejected), first

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_hostile_objects())
    def property_holds(example: tuple[str, str]) -> None:
        asyncio.run_coroutine_threadsafe(one(*example), loop).result(timeout=60)

    await asyncio.to_thread(property_holds)

    assert await _dead_letters(nc) == 0


async def _first_event(client: AgoraClient, goal_id: str) -> Event:
    async def first() -> Event:
        async for event in client.follow(goal_id, until_terminal=False):
            return event
        raise AssertionError("the follow ended without an event")

    return await asyncio.wait_for(first(), 10)
