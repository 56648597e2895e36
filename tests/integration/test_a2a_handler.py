"""agora's A2A request handler on a real nats-server and real services: the paths the e2e
test does not take (a blocking SendMessage, returnImmediately, a command the planner has not
read yet, refused messages)."""

from __future__ import annotations

import pytest
from a2a.server.context import ServerCallContext
from a2a.types import (
    GetTaskRequest,
    ListTasksRequest,
    ListTasksResponse,
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
    message_id: str, *, now: bool = False, task_id: str = "", context_id: str = "", **data: object
) -> SendMessageRequest:
    parts = [Part(text="multiply"), Part(data=ParseDict(data or STEPS, struct_pb2.Value()))]
    message = Message(
        message_id=message_id,
        role=Role.ROLE_USER,
        parts=parts,
        task_id=task_id,
        context_id=context_id,
    )
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


async def test_list_tasks_filters_by_context_and_state_and_pages_with_tokens(
    client: AgoraClient, platform: InProcessPlatform
) -> None:
    handler = AgoraRequestHandler(client)
    sent = [
        await handler.on_message_send(_send(f"m-list-{n}", context_id=context), CALL)
        for n, context in enumerate(["ctx-a", "ctx-a", "ctx-b"])
    ]
    rejected = await handler.on_message_send(_send("m-list-bad", steps=[{"tool": "nope"}]), CALL)
    assert isinstance(rejected, Task)
    assert rejected.status.state == TaskState.TASK_STATE_REJECTED
    other = await client.submit({"text": "not sent over A2A", "steps": STEPS["steps"]})
    await client.wait(other.goal_id)

    async def listed(**given: object) -> ListTasksResponse:
        return await handler.on_list_tasks(ListTasksRequest(**given), CALL)

    async def all_in_view() -> bool:
        return (await listed()).total_size == 4

    await wait_until(all_in_view, what="the views to hold the four tasks")
    newest_first = [t.id for t in reversed([*sent, rejected]) if isinstance(t, Task)]
    everything = await listed()
    assert [t.id for t in everything.tasks] == newest_first  # the goal not sent over A2A: not
    assert (everything.next_page_token, everything.page_size) == ("", 50)
    assert all(not t.artifacts for t in everything.tasks)  # unless include_artifacts

    paged: list[str] = []
    token = ""
    for _ in range(4):
        page = await listed(page_size=1, page_token=token)
        assert page.total_size == 4
        paged += [t.id for t in page.tasks]
        token = page.next_page_token
    assert paged == newest_first
    assert token == ""  # the last page says no more follow

    in_a = await listed(context_id="ctx-a", include_artifacts=True, history_length=0)
    assert [t.id for t in in_a.tasks] == newest_first[2:]
    assert all(t.context_id == "ctx-a" and not t.history for t in in_a.tasks)
    assert [a.parts[0].text for a in in_a.tasks[0].artifacts] == ["42", "42"]
    failed_or_rejected = await listed(status=TaskState.TASK_STATE_REJECTED)
    assert [t.id for t in failed_or_rejected.tasks] == [rejected.id]
    completed_in_b = await listed(context_id="ctx-b", status=TaskState.TASK_STATE_COMPLETED)
    assert [t.status.state for t in completed_in_b.tasks] == [TaskState.TASK_STATE_COMPLETED]
    assert (await listed(status=TaskState.TASK_STATE_SUBMITTED)).total_size == 0
    newest = everything.tasks[0].status.timestamp
    since_newest = await listed(status_timestamp_after=newest)
    assert [t.id for t in since_newest.tasks][:1] == [rejected.id]
    assert since_newest.total_size < 4

    with pytest.raises(InvalidParamsError, match="page token"):
        await listed(page_token="not-a-token")
    with pytest.raises(InvalidParamsError, match="page size"):
        await listed(page_size=101)
