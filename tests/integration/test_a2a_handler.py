"""agora's A2A request handler on a real nats-server and real services: the paths the e2e
test does not take (a blocking SendMessage, returnImmediately, a command the planner has not
read yet, refused messages)."""

from __future__ import annotations

import pytest
from a2a.server.context import ServerCallContext
from a2a.types import (
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError, UnsupportedOperationError
from google.protobuf import struct_pb2
from google.protobuf.json_format import ParseDict

from infra.a2a_server.handler import AgoraRequestHandler
from infra.a2a_server.messages import task_ids
from infra.clients.goals import AgoraClient
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.support import wait_until

CALL = ServerCallContext()
STEPS = {"steps": [{"tool": "calculator", "args": {"expression": "6*7"}}]}


def _send(
    message_id: str, *, now: bool = False, task_id: str = "", **data: object
) -> SendMessageRequest:
    parts = [Part(text="multiply"), Part(data=ParseDict(data or STEPS, struct_pb2.Value()))]
    message = Message(message_id=message_id, role=Role.ROLE_USER, parts=parts, task_id=task_id)
    return SendMessageRequest(
        message=message, configuration=SendMessageConfiguration(return_immediately=now)
    )


async def _state(handler: AgoraRequestHandler, task_id: str) -> TaskState:
    return (await handler.on_get_task(GetTaskRequest(id=task_id), CALL)).status.state


async def test_send_message_answers_at_the_outcome_unless_asked_to_return_at_once(
    client: AgoraClient, platform: InProcessPlatform
) -> None:
    handler = AgoraRequestHandler(client)
    done = await handler.on_message_send(_send("m-blocking"), CALL)
    assert isinstance(done, Task)
    assert done.status.state == TaskState.TASK_STATE_COMPLETED
    assert [a.parts[0].text for a in done.artifacts] == ["42", "42"]

    started = await handler.on_message_send(_send("m-now", now=True), CALL)
    assert isinstance(started, Task)
    assert started.status.state == TaskState.TASK_STATE_SUBMITTED

    async def completed() -> bool:
        return await _state(handler, started.id) == TaskState.TASK_STATE_COMPLETED

    await wait_until(completed, what="the returned-at-once task to complete")
    again = await handler.on_message_send(_send("m-now"), CALL)
    assert isinstance(again, Task)
    assert (again.id, again.status.state) == (started.id, TaskState.TASK_STATE_COMPLETED)


async def test_a_task_the_planner_has_not_read_is_submitted_until_it_runs(
    client: AgoraClient, settings: Settings
) -> None:
    handler = AgoraRequestHandler(client)
    sent = await handler.on_message_send(_send("m-waiting", now=True), CALL)
    assert isinstance(sent, Task)
    assert await _state(handler, sent.id) == TaskState.TASK_STATE_SUBMITTED
    # Another process (or this one restarted) knows only the log: nothing there yet.
    with pytest.raises(TaskNotFoundError):
        await AgoraRequestHandler(client).on_get_task(GetTaskRequest(id=sent.id), CALL)

    platform = InProcessPlatform(settings)
    platform.start()
    try:

        async def completed() -> bool:
            return await _state(handler, sent.id) == TaskState.TASK_STATE_COMPLETED

        await wait_until(completed, what="the planner to read the command and the goal to end")
        fresh = AgoraRequestHandler(client)
        assert await _state(fresh, sent.id) == TaskState.TASK_STATE_COMPLETED
    finally:
        await platform.stop()


async def test_follow_ups_and_messages_that_cannot_be_goals_are_refused(
    client: AgoraClient, platform: InProcessPlatform
) -> None:
    handler = AgoraRequestHandler(client)
    done = await handler.on_message_send(_send("m-first"), CALL)
    assert isinstance(done, Task)
    with pytest.raises(UnsupportedOperationError, match="takes no further messages"):
        await handler.on_message_send(_send("m-second", task_id=done.id), CALL)
    with pytest.raises(TaskNotFoundError):
        await handler.on_message_send(_send("m-third", task_id="a2a-unknown"), CALL)
    with pytest.raises(InvalidParamsError, match="agora chooses them"):
        await handler.on_message_send(_send("m-fourth", goal_id="mine"), CALL)
    with pytest.raises(TaskNotFoundError):
        await handler.on_get_task(GetTaskRequest(id="not.a.goal id"), CALL)
    for refused in ("m-second", "m-third", "m-fourth"):  # none of them became a goal
        assert await client.recorded(task_ids(refused).goal_id) == []
