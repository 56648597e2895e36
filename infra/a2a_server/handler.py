"""agora's A2A request handler: each A2A method over agora's client library.

A task is a goal. ``SendMessage`` submits the message as an intake command (its ids derived
from the message id, so a resent message starts nothing new), ``GetTask`` folds the goal's
events read from the log, ``CancelTask`` is ``agora cancel``, ``SendStreamingMessage`` and
``SubscribeToTask`` follow the goal's events until it ends, ``ListTasks`` finds the tasks in
the ``goals`` view. Nothing is kept here that the log
does not hold, except which commands this process sent and the planner has not read yet
(their tasks are ``SUBMITTED`` meanwhile). So tasks survive restarts of every process.
"""

# The SDK's RequestHandler fixes every method's parameters, used or not.
# ruff: noqa: ARG002

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, contextmanager

from a2a.server.context import ServerCallContext
from a2a.server.events import Event as A2AEvent
from a2a.server.request_handlers import RequestHandler
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from a2a.utils.task import validate_history_length, validate_page_size

from events.catalog import CommandRejected, GoalCancelled
from events.errors import AgoraError
from events.model import Event
from events.subjects import is_subject_token
from infra.a2a_server.listing import (
    BadListRequestError,
    ListedGoal,
    page_token,
    task_list_query,
)
from infra.a2a_server.messages import MessageNotUnderstoodError, command_from_message
from infra.a2a_server.tasks import TaskRecord, evolve, fold, submitted, to_task, updates
from infra.clients.goals import AgoraClient, CommandTimeoutError

__all__ = ["AgoraRequestHandler"]

_SENT_KEPT = 10_000  # commands remembered until the planner has read them
CANCEL_REASON = "cancelled over A2A"


@contextmanager
def _as_internal_error() -> Iterator[None]:
    """agora's errors say what to do (no projector, no planner…): the caller reads them."""
    try:
        yield
    except AgoraError as exc:
        raise InternalError(message=str(exc)) from exc


class AgoraRequestHandler(RequestHandler):
    """The A2A methods of one agora connection (the ``client`` identity)."""

    def __init__(self, client: AgoraClient, *, cancel_wait_s: float = 10.0) -> None:
        self._client = client
        self._cancel_wait_s = cancel_wait_s
        self._sent: OrderedDict[str, TaskRecord] = OrderedDict()

    # -- reading a task ------------------------------------------------------------------

    async def _record(self, task_id: str) -> TaskRecord:
        """The task as the log has it now; ``TaskNotFoundError`` when there is none."""
        if not is_subject_token(task_id):
            raise TaskNotFoundError(f"no task {task_id!r}: agora's task ids are goal ids")
        with _as_internal_error():
            recorded = await self._client.recorded(task_id)
        record = fold(event for _, event in recorded)
        if record is not None:
            self._sent.pop(task_id, None)
            return record
        if task_id in self._sent:
            return self._sent[task_id]
        raise TaskNotFoundError(f"no task {task_id} (agora has no goal of that id)")

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task:
        record = await self._record(params.id)
        limit = params.history_length if params.HasField("history_length") else None
        return to_task(record, history_length=limit)

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        """The tasks sent over A2A, most recently updated first, a page at a time: found in
        the ``goals`` view, each folded from the goal's events up to the latest the view
        includes (so a task's state is the one its filter matched)."""
        validate_history_length(params)
        if params.HasField("page_size"):
            validate_page_size(params.page_size)
        try:
            query = task_list_query(params)
        except BadListRequestError as exc:
            raise InvalidParamsError(message=str(exc)) from exc
        with _as_internal_error():
            page = await self._client.query(query.page_sql, params=query.page_params)
            counted = await self._client.query(query.count_sql, params=query.count_params)
            rows = [ListedGoal(str(goal_id), int(seq)) for goal_id, seq in page.rows]
            listed = rows[: query.page_size]
            records = await asyncio.gather(*(self._record_as_of(row) for row in listed))
        limit = params.history_length if params.HasField("history_length") else None
        tasks = [to_task(record, history_length=limit) for record in records]
        if not params.include_artifacts:
            for task in tasks:
                task.ClearField("artifacts")
        more = len(rows) > query.page_size
        return ListTasksResponse(
            tasks=tasks,
            next_page_token=page_token(listed[-1].last_seq) if more else "",
            page_size=query.page_size,
            total_size=int(counted.rows[0][0]),
        )

    async def _record_as_of(self, row: ListedGoal) -> TaskRecord:
        """The task as of the goal's events up to ``row.last_seq``."""
        recorded = await self._client.recorded(row.goal_id)
        record = fold(event for seq, event in recorded if seq <= row.last_seq)
        assert record is not None, f"the goals view has {row.goal_id}, the log has no event"
        return record

    # -- starting one ----------------------------------------------------------------------

    async def _submit(self, message: Message) -> TaskRecord:
        """The task ``message`` starts: the goal of its message id, submitted unless the log
        has it already (a resent message starts nothing new)."""
        if message.task_id:
            await self._record(message.task_id)  # unknown: TaskNotFoundError
            raise UnsupportedOperationError(
                message=f"task {message.task_id} takes no further messages: agora's goals run "
                "from their first message to their outcome; send a new message for a new task"
            )
        context_id = message.context_id or f"ctx-{uuid.uuid4()}"
        try:
            command = command_from_message(message, context_id=context_id)
        except MessageNotUnderstoodError as exc:
            raise InvalidParamsError(message=str(exc)) from exc
        goal_id = str(command["goal_id"])
        with contextlib.suppress(TaskNotFoundError):
            return await self._record(goal_id)
        with _as_internal_error():
            await self._client.submit(command)
        record = submitted(
            goal_id, context_id=context_id, text=str(command["text"]), message_id=message.message_id
        )
        self._remember(record)
        return record

    def _remember(self, record: TaskRecord) -> None:
        self._sent[record.goal_id] = record
        while len(self._sent) > _SENT_KEPT:
            self._sent.popitem(last=False)

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        """Start the goal; unless ``returnImmediately``, answer once it has ended."""
        record = await self._submit(params.message)
        if not params.configuration.return_immediately:
            async with aclosing(self._follow(record)) as following:
                async for record, _ in following:  # the last one is the answer
                    if record.needs_input:
                        break  # interrupted: a person must answer before it goes on
        limit = (
            params.configuration.history_length
            if params.configuration.HasField("history_length")
            else None
        )
        return to_task(record, history_length=limit)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[A2AEvent]:
        """The task as it stands (submitted), then its updates as the goal's events come, to
        its end."""
        record = await self._submit(params.message)
        yield to_task(record)
        async with aclosing(self._follow(record)) as following:
            async for _, sent in following:
                for update in sent:
                    yield update

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[A2AEvent]:
        """The task as it stands, then its updates until it ends."""
        record = await self._record(params.id)
        if record.finished:
            raise UnsupportedOperationError(
                message=f"task {params.id} has ended ({_state_name(record)}): GetTask returns it"
            )
        yield to_task(record)
        async with aclosing(self._follow(record)) as following:
            async for _, sent in following:
                for update in sent:
                    yield update

    async def _follow(
        self, record: TaskRecord
    ) -> AsyncGenerator[tuple[TaskRecord, list[TaskStatusUpdateEvent | TaskArtifactUpdateEvent]]]:
        """The task after each of the goal's events after those ``record`` includes, and what a
        stream sends for each, until the goal ends."""
        if record.finished:
            return
        skipping = bool(record.status_id)  # up to and including the event it was read at
        current = record
        with _as_internal_error():
            async for event in _events(self._client.follow(record.goal_id)):
                if skipping:
                    skipping = event.event_id != record.status_id
                    continue
                before, current = current, evolve(current, event)
                self._sent.pop(record.goal_id, None)
                yield current, updates(before, current)
                if current.finished:
                    return

    # -- cancelling one ------------------------------------------------------------------

    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        record = await self._record(params.id)
        if record.finished:
            raise TaskNotCancelableError(
                message=f"task {params.id} has already ended ({_state_name(record)})"
            )
        with _as_internal_error():
            sent = await self._client.cancel(params.id, reason=CANCEL_REASON)
            try:
                answer = await self._client.answer(sent, timeout_s=self._cancel_wait_s)
            except CommandTimeoutError:
                answer = None  # recorded: the planner cancels it once it runs
        if isinstance(answer, CommandRejected):
            raise TaskNotCancelableError(message=answer.reason)
        if isinstance(answer, GoalCancelled):
            return to_task(await self._record(params.id))
        return to_task(record)

    # -- what agora does not offer ----------------------------------------------------------

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError


def _events(events: AsyncIterator[Event]) -> AsyncGenerator[Event, None]:
    # follow is an async generator; closing it unsubscribes at once when a stream ends early.
    assert isinstance(events, AsyncGenerator)
    return events


def _state_name(record: TaskRecord) -> str:
    return TaskState.Name(record.state).removeprefix("TASK_STATE_").lower()
