"""The Python client of agora: submit goals, follow them, read what they recorded, wait,
steer them (cancel, pause, resume), send them input while they run, query. The CLI uses it too.

Public as :mod:`agora.client` (docs/clients.md). It speaks only the documented wire contract
(``agora schema --asyncapi``): JetStream publishes on ``agora.intake.goal`` and
``agora.intake.cancel`` / ``.pause`` / ``.resume``, ordered consumers on
``agora.events.<goal_id>.>``, requests on ``agora.query``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self, TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from events.approval_commands import goal_of_approval
from events.catalog import (
    ApprovalDecision,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRejected,
    CommandRejected,
    ControlAction,
    GoalCancelled,
    GoalCompleted,
    GoalFailed,
    GoalPaused,
    GoalRejected,
    GoalResumed,
    IterationInterrupted,
    MessageQueued,
    MessageRejected,
)
from events.codec import decode_event
from events.errors import AgoraError
from events.ids import goal_id_for_command
from events.model import Event
from events.subjects import (
    COMMANDS_GOAL_ID,
    EVENTS_STREAM,
    INTAKE_APPROVAL,
    INTAKE_CANCEL,
    INTAKE_GOAL,
    INTAKE_MESSAGE,
    INTAKE_PAUSE,
    INTAKE_RESUME,
    INTAKE_STREAM,
    goal_events_filter,
    is_subject_token,
)
from events.trace_context import TRACEPARENT_HEADER, parse_traceparent
from infra.bus.outputs import OutputStore
from infra.settings import Settings
from projections.protocol import QueryReply

__all__ = [
    "ANSWERS",
    "FOLLOW_CONSUMER_PREFIX",
    "TERMINAL",
    "AgoraClient",
    "CommandSent",
    "CommandTimeoutError",
    "GoalTimeoutError",
    "InvalidGoalIdError",
    "Outcome",
    "SubmitError",
    "Submitted",
    "check_goal_id",
    "is_terminal",
    "publish_with_retries",
]

TERMINAL = (GoalCompleted, GoalFailed, GoalRejected, GoalCancelled)
# What answers a steering command (each names the command's id).
ANSWERS = (
    GoalCancelled,
    GoalPaused,
    GoalResumed,
    CommandRejected,
    ApprovalGranted,
    ApprovalDenied,
    ApprovalRejected,
    MessageQueued,
    IterationInterrupted,
    MessageRejected,
)
_STEERING: dict[ControlAction, str] = {
    "cancel": INTAKE_CANCEL,
    "pause": INTAKE_PAUSE,
    "resume": INTAKE_RESUME,
}
# Consumers this client creates to follow the log are named <prefix><random hex>. agora's
# permissions let a client create named consumers of any name but the services' durables.
FOLLOW_CONSUMER_PREFIX = "follow_"
T = TypeVar("T")
TRAJECTORY_COLUMNS = (
    "step, stream_seq, occurred_at, type, actor, summary, duration_ms, tokens_in, tokens_out, "
    "cost_usd"
)


class InvalidGoalIdError(AgoraError):
    """A goal id that cannot be one subject token; nothing was sent."""


class SubmitError(AgoraError):
    """The intake stream never acknowledged a command; resending it with the same
    ``command_id`` is safe (it makes no second goal)."""


class GoalTimeoutError(AgoraError):
    """A goal did not finish in the time waited. It goes on running."""

    def __init__(self, goal_id: str, timeout_s: float, last: Event | None) -> None:
        last_type = type(last).__name__ if last is not None else "none yet"
        super().__init__(
            f"goal {goal_id} did not finish within {timeout_s:g}s (last event: {last_type}); "
            f"it keeps running: follow it with `agora tail --goal {goal_id}` or "
            f"`agora trajectory {goal_id}`"
        )
        self.goal_id = goal_id
        self.last = last


class CommandTimeoutError(AgoraError):
    """No answer to a steering command in the time waited. It is recorded and will be
    answered once the planner runs: resending it with the same command_id is safe."""

    def __init__(self, sent: CommandSent, timeout_s: float) -> None:
        super().__init__(
            f"no answer to {sent.action} {sent.goal_id} (command {sent.command_id}) within "
            f"{timeout_s:g}s; is the planner running? follow it with "
            f"`agora tail --goal {sent.goal_id}`"
        )
        self.sent = sent


def is_terminal(event: Event) -> bool:
    return isinstance(event, TERMINAL)


def check_goal_id(goal_id: str) -> str:
    if not is_subject_token(goal_id):
        raise InvalidGoalIdError(
            f"goal id {goal_id!r} is not one subject token: use 1-128 letters, digits, "
            "'-' or '_' (no dots or spaces)"
        )
    return goal_id


@dataclass(frozen=True, slots=True)
class Submitted:
    command_id: str
    goal_id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class CommandSent:
    """A steering command, an approval answer or a message the intake stream acknowledged
    (``duplicate``: sent before)."""

    action: ControlAction | ApprovalDecision | Literal["message"]
    command_id: str
    goal_id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """A goal's events up to and including its terminal one, and that event's stream seq."""

    events: tuple[Event, ...]
    last_seq: int

    @property
    def final(self) -> Event:
        return self.events[-1]

    @property
    def completed(self) -> bool:
        return isinstance(self.final, GoalCompleted)


async def publish_with_retries(
    publish: Callable[[], Awaitable[T]], *, attempts: int, command_id: str
) -> T:
    """``publish`` until the server acknowledges it. Every attempt carries the same
    ``Nats-Msg-Id``, so an attempt whose ack was lost is dropped as a duplicate."""
    for attempt in range(1, attempts + 1):
        try:
            return await publish()
        except nats.errors.NoRespondersError:
            raise SubmitError(
                f"no JetStream stream takes {INTAKE_GOAL}: is `agora up` running "
                "(and its streams provisioned)?"
            ) from None
        except nats.errors.TimeoutError:
            if attempt == attempts:
                break
            await asyncio.sleep(min(0.1 * 2**attempt, 2.0))  # backoff between resends
    raise SubmitError(
        f"command {command_id} was not acknowledged after {attempts} attempts; it may have "
        "been accepted: resend it with the same command_id, which makes no second goal"
    )


@dataclass
class AgoraClient:
    """A connection to agora as the ``client`` identity. Use :meth:`connect`, or wrap an
    open nats-py connection whose identity may do what the calls need."""

    nc: NatsClient
    publish_timeout_s: float = 5.0
    submit_attempts: int = 4

    @classmethod
    async def connect(
        cls,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        user: str | None = None,
        password: str | None = None,
        name: str = "agora-client",
        give_up_after_s: float = 10.0,
    ) -> AgoraClient:
        """Connect from ``settings`` (default: the ``AGORA_*`` environment, as ``agora env``
        prints it), optionally overriding the server URL and the credentials. Raises
        ``ConfigurationError`` when no server answers within ``give_up_after_s``."""
        from infra.bus.connection import connect
        from infra.logging import configure_logging, logging_configured

        settings = Settings.from_env() if settings is None else settings
        if not logging_configured():  # a program's own logging configuration wins
            configure_logging(settings.log_level, settings.log_format, defer=True)
        if url is not None:
            settings = dataclasses.replace(settings, nats_urls=(url,))
        if user is not None:
            settings = dataclasses.replace(settings, nats_user=user, nats_password=password)
        return cls(await connect(settings, name, give_up_after_s=give_up_after_s))

    async def close(self) -> None:
        await self.nc.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    @functools.cached_property
    def outputs(self) -> OutputStore:
        """Where large outputs are read back from (events refer to them)."""
        return OutputStore(self.js, threshold=0)

    # -- goals ---------------------------------------------------------------------------

    async def submit(
        self, command: Mapping[str, Any], *, traceparent: str | None = None
    ) -> Submitted:
        """Publish a goal command (the intake JSON); ids default as the planner would choose
        them. Idempotent by ``command_id``: a lost ack is resent, never a second goal.
        ``traceparent``: your W3C trace context (``00-<trace id>-<span id>-<flags>``); the
        goal's trace becomes a child of that span (``agora traces``)."""
        headers = {"Nats-Msg-Id": ""}
        if traceparent is not None:
            if parse_traceparent(traceparent) is None:
                raise SubmitError(
                    f"traceparent {traceparent!r} is not W3C trace context: "
                    "00-<32 hex trace id>-<16 hex span id>-<2 hex flags>, ids not all zero"
                )
            headers[TRACEPARENT_HEADER] = traceparent
        body = dict(command)
        body.setdefault("command_id", f"c-{uuid.uuid4()}")
        command_id = str(body["command_id"])
        goal_id = check_goal_id(str(body.setdefault("goal_id", goal_id_for_command(command_id))))
        data = msgspec.json.encode(body)
        headers["Nats-Msg-Id"] = command_id
        ack = await publish_with_retries(
            lambda: self.js.publish(
                INTAKE_GOAL,
                data,
                stream=INTAKE_STREAM,
                headers=headers,
                timeout=self.publish_timeout_s,
            ),
            attempts=self.submit_attempts,
            command_id=command_id,
        )
        return Submitted(command_id, goal_id, bool(ack.duplicate))

    async def follow_with_seq(
        self, goal_id: str, *, until_terminal: bool = True
    ) -> AsyncIterator[tuple[int, Event]]:
        """A goal's events from its first, live, in stream order, with their stream seqs."""
        sub = await self.js.subscribe(
            goal_events_filter(check_goal_id(goal_id)),
            stream=EVENTS_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            config=_named_reader(),
        )
        try:
            async for msg in sub.messages:
                # A large output comes back in full, read from the outputs store.
                event = await self.outputs.resolve(decode_event(msg.data))
                yield msg.metadata.sequence.stream, event
                if until_terminal and is_terminal(event):
                    return
        finally:
            await sub.unsubscribe()

    async def recorded(self, goal_id: str) -> list[tuple[int, Event]]:
        """The goal's events stored so far, in stream order, with their stream seqs (empty:
        no such goal, or its command not yet read by the planner). Read from the log, so
        the answer is as current as the log, whatever the projections' lag."""
        from infra.bus.history import read_events

        filter_subject = goal_events_filter(check_goal_id(goal_id))
        return [pair async for pair in read_events(self.nc, filter_subject, outputs=self.outputs)]

    async def follow(self, goal_id: str, *, until_terminal: bool = True) -> AsyncIterator[Event]:
        """A goal's events from its first, live, in stream order."""
        async for _, event in self.follow_with_seq(goal_id, until_terminal=until_terminal):
            yield event

    async def wait(self, goal_id: str, timeout_s: float = 60.0) -> Outcome:
        """Every event of the goal up to its terminal one. Raises :class:`GoalTimeoutError`
        (the goal keeps running) when it takes longer than ``timeout_s``."""
        events: list[Event] = []
        last_seq = 0

        async def collect() -> None:
            nonlocal last_seq
            async for seq, event in self.follow_with_seq(goal_id):
                events.append(event)
                last_seq = seq

        try:
            await asyncio.wait_for(collect(), timeout_s)
        except TimeoutError:
            raise GoalTimeoutError(goal_id, timeout_s, events[-1] if events else None) from None
        return Outcome(tuple(events), last_seq)

    async def wait_for_outcome(self, goal_id: str, timeout_s: float = 60.0) -> list[Event]:
        """:meth:`wait`, as a list of the events."""
        return list((await self.wait(goal_id, timeout_s)).events)

    async def tail(
        self, subject: str = "agora.events.>", *, new_only: bool = True
    ) -> AsyncIterator[tuple[int, Event]]:
        sub = await self.js.subscribe(
            subject,
            stream=EVENTS_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW if new_only else DeliverPolicy.ALL,
            config=_named_reader(),
        )
        try:
            async for msg in sub.messages:
                yield msg.metadata.sequence.stream, decode_event(msg.data)
        finally:
            await sub.unsubscribe()

    # -- the projections -----------------------------------------------------------------

    async def query(
        self,
        sql: str,
        *,
        max_rows: int = 10_000,
        min_seq: int = 0,
        timeout_s: float = 30.0,
        params: Sequence[str | int | float | bool | None] = (),
    ) -> QueryReply:
        """Read-only SQL over the views. ``min_seq``: answer once the views include that
        stream sequence (e.g. :attr:`Outcome.last_seq`). ``params``: the values of the
        statement's ``?`` placeholders."""
        from infra.clients.query import ask

        return await ask(
            self.nc, sql, max_rows=max_rows, min_seq=min_seq, timeout_s=timeout_s, params=params
        )

    async def trajectory(self, goal_id: str, *, min_seq: int = 0) -> QueryReply:
        """The goal's steps in stream order, with durations and costs."""
        # The goal id is checked to be one subject token: no quote can reach the SQL.
        where = f"WHERE goal_id = '{check_goal_id(goal_id)}' ORDER BY step"
        sql = f"SELECT {TRAJECTORY_COLUMNS} FROM trajectory {where}"  # noqa: S608
        return await self.query(sql, min_seq=min_seq)

    # -- steering a goal that runs --------------------------------------------------------

    async def cancel(
        self, goal_id: str, *, reason: str = "", command_id: str | None = None
    ) -> CommandSent:
        """Ask for the goal to be cancelled (``agora.intake.cancel``): its running tasks are
        stopped, nothing new is scheduled, ``goal_cancelled`` ends it. Idempotent by
        ``command_id``. :meth:`answer` waits for the planner's answer."""
        return await self._steer("cancel", goal_id, reason=reason, command_id=command_id)

    async def pause(
        self, goal_id: str, *, reason: str = "", command_id: str | None = None
    ) -> CommandSent:
        """Ask for the goal to be paused (``agora.intake.pause``): nothing new is scheduled
        until it is resumed."""
        return await self._steer("pause", goal_id, reason=reason, command_id=command_id)

    async def resume(
        self, goal_id: str, *, reason: str = "", command_id: str | None = None
    ) -> CommandSent:
        """Ask for a paused goal to go on from where it stopped (``agora.intake.resume``)."""
        return await self._steer("resume", goal_id, reason=reason, command_id=command_id)

    async def _steer(
        self, action: ControlAction, goal_id: str, *, reason: str, command_id: str | None
    ) -> CommandSent:
        command_id = command_id or f"c-{uuid.uuid4()}"
        body: dict[str, Any] = {"command_id": command_id, "goal_id": check_goal_id(goal_id)}
        if reason:
            body["reason"] = reason
        duplicate = await self._send_command(
            _STEERING[action], msgspec.json.encode(body), command_id
        )
        return CommandSent(action, command_id, goal_id, duplicate)

    async def answer_approval(
        self,
        approval_id: str,
        decision: ApprovalDecision,
        *,
        reason: str = "",
        args: Mapping[str, Any] | None = None,
        by: str = "",
        command_id: str | None = None,
    ) -> CommandSent:
        """Approve (with edited ``args``, if given) or deny a tool call that waits
        (``agora.intake.approval``). Idempotent by ``command_id``. :meth:`answer` waits for the
        planner's decision."""
        command_id = command_id or f"c-{uuid.uuid4()}"
        body: dict[str, Any] = {
            "command_id": command_id,
            "approval_id": approval_id,
            "decision": decision,
        }
        body |= {k: v for k, v in (("reason", reason), ("by", by)) if v}
        if args is not None:
            body["args"] = dict(args)
        await self._send_command(INTAKE_APPROVAL, msgspec.json.encode(body), command_id)
        # An id that names no goal is rejected on _intake, which answer() reads too.
        goal_id = goal_of_approval(approval_id) or COMMANDS_GOAL_ID
        return CommandSent(decision, command_id, goal_id, duplicate=False)

    async def message(
        self, goal_id: str, text: str, *, command_id: str | None = None
    ) -> CommandSent:
        """Send input to a goal that runs (``agora.intake.message``); the goal's ``on_message``
        policy decides what it does. Idempotent by ``command_id``. :meth:`answer` waits for
        ``message_queued``, ``iteration_interrupted`` or ``message_rejected``."""
        command_id = command_id or f"c-{uuid.uuid4()}"
        body = {"command_id": command_id, "goal_id": check_goal_id(goal_id), "text": text}
        duplicate = await self._send_command(INTAKE_MESSAGE, msgspec.json.encode(body), command_id)
        return CommandSent("message", command_id, goal_id, duplicate)

    async def _send_command(self, subject: str, data: bytes, command_id: str) -> bool:
        """Publish one intake command; True when the stream had it already (a resend)."""
        ack = await publish_with_retries(
            lambda: self.js.publish(
                subject,
                data,
                stream=INTAKE_STREAM,
                headers={"Nats-Msg-Id": command_id},
                timeout=self.publish_timeout_s,
            ),
            attempts=self.submit_attempts,
            command_id=command_id,
        )
        return bool(ack.duplicate)

    async def answer(self, sent: CommandSent, timeout_s: float = 10.0) -> Event:
        """The planner's answer to a steering command, an approval answer or a message:
        ``goal_cancelled``, ``goal_paused``, ``goal_resumed``, ``approval_granted``,
        ``approval_denied``, ``message_queued``, ``iteration_interrupted``, or
        ``command_rejected`` / ``approval_rejected`` / ``message_rejected`` with the reason.
        Raises
        :class:`CommandTimeoutError` when none came within ``timeout_s``."""

        async def first(events: AsyncIterator[tuple[int, Event]]) -> Event:
            async for _, event in events:
                if isinstance(event, ANSWERS) and event.command_id == sent.command_id:
                    return event
            raise AgoraError(f"the log ended before {sent.command_id} was answered")

        # On the goal when it exists, else with the rejections of commands for no known goal.
        unknown = goal_events_filter(COMMANDS_GOAL_ID)
        readers = [
            asyncio.ensure_future(first(self.follow_with_seq(sent.goal_id, until_terminal=False))),
            asyncio.ensure_future(first(self.tail(unknown, new_only=False))),
        ]
        try:
            done, _ = await asyncio.wait(
                readers, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        if not done:
            raise CommandTimeoutError(sent, timeout_s)
        return next(iter(done)).result()


def _named_reader() -> ConsumerConfig:
    """A fresh consumer name: agora's permissions allow creating named consumers only (an
    unnamed create could name, and so change, another service's durable consumer)."""
    return ConsumerConfig(
        name=f"{FOLLOW_CONSUMER_PREFIX}{uuid.uuid4().hex}", inactive_threshold=60.0
    )
