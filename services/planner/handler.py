"""The planner's imperative shell: one goal's decisions over its ports.

Two inputs (services/planner/manifest.py), three handlers:

- :class:`GoalIntake` admits goal commands. Any replica may run it: it validates the untrusted
  command (``accept_goal``, pure) and appends ``goal_accepted`` or ``goal_rejected`` guarded as
  the goal's first event, so a resent command never admits a goal twice. It decides nothing
  else.
- :class:`CommandIntake` records steering commands (cancel, pause, resume) on their goal, as
  requests; any replica may run it too (``services.planner.control``).
- :class:`ApprovalIntake` records answers to approval requests on their goal
  (``services.planner.approvals``); any replica may run it too. :class:`MessageIntake` records
  messages for goals that run (``services.planner.messages``) the same way.
  :class:`DeadlineKeeper` stores,
  for every ``approval_requested``, the deny that nats-server delivers at its deadline.
- :class:`GoalPlanner` takes every decision after that, on the active replica only (the pinned
  consumer; its appends are fenced by the replica's lease). Its state cache is authoritative
  (services/planner/cache.py): on a trigger it folds the event, decides (``decide_next``,
  pure), appends the decision's events in one round trip and folds them in; while a decision
  waits for a model it asks through ``recorded_call`` (answered from the goal's record when it
  can) and decides again with the answer.

The live service, ``agora rerun`` and the unit tests all drive these same classes; they
differ only in the ports they pass in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

import structlog

from events.approval_commands import (
    DeadlineMessage,
    InvalidAnswer,
    ParsedAnswer,
    deadline_message,
    parse_approval_answer,
)
from events.approvals import ApprovalPolicy
from events.catalog import ApprovalRequested, CancelRequested, GoalAccepted
from events.commands import ParsedGoal, RejectedGoal, parse_goal_command
from events.control_commands import parse_control_command
from events.errors import EventTooLargeError, GoalExistsError, LlmError, LlmNotRecordedError
from events.message_commands import InvalidMessage, ParsedMessage, parse_message_command
from events.model import Event, Stamp
from services.llm.messages import LlmRequest
from services.llm.port import LlmPort
from services.llm.recording import recorded_call
from services.planner.approvals import record_answer
from services.planner.cache import GoalStates
from services.planner.control import record_command
from services.planner.decide import COMMAND_RECORDS, decide_next, llm_failure, unwritable_failure
from services.planner.flow_gate import FlowGate
from services.planner.intake import Tools, accept_goal
from services.planner.llm_plan import LlmPlanning
from services.planner.messages import record_message
from services.planner.ports import (
    Append,
    AppendNewGoal,
    AppendRequest,
    ForkOrigin,
    GoalExists,
    GoalRecord,
)
from services.planner.state import PlannerState, evolve

__all__ = [
    "ApprovalIntake",
    "CommandIntake",
    "DeadlineKeeper",
    "GoalIntake",
    "GoalPlanner",
    "MessageIntake",
    "Outcome",
]

log = structlog.get_logger("agora.planner")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What admitting one command did: the events appended, or that the goal existed."""

    goal_id: str
    appended: tuple[Event, ...] = ()
    existed: bool = False


@dataclass
class GoalIntake:
    append_new_goal: AppendNewGoal
    fork_origin: ForkOrigin
    tools: Tools
    producer: str
    now: Callable[[], datetime]
    max_bytes: int
    # Re-reads the tool catalogue: called before a command naming a tool it does not hold
    # is decided, so a tool listed a moment ago is not refused for a stale catalogue.
    refresh_tools: Callable[[], Awaitable[None]] | None = None
    # The platform's approval policy (AGORA_APPROVAL_POLICY); a goal's intake adds to it.
    policy: ApprovalPolicy | None = None

    async def admit(
        self, data: bytes, *, fallback_command_id: str, traceparent: str | None = None
    ) -> Outcome:
        """Admit or reject one command; a DecodeError (no goal to blame) propagates.
        ``traceparent``: the message's W3C trace context header, if any."""
        parsed = parse_goal_command(
            data, fallback_command_id=fallback_command_id, max_bytes=self.max_bytes
        )
        if self.refresh_tools is not None and isinstance(parsed, ParsedGoal):
            named = {step.tool for step in parsed.command.steps or ()}
            if any(tool not in self.tools for tool in named):
                await self.refresh_tools()
        outputs = accept_goal(
            parsed,
            None,
            tools=self.tools,
            now=self.now(),
            producer=self.producer,
            origin=await self._origin(parsed),
            policy=self.policy,
            traceparent=traceparent,
        )
        try:
            await self.append_new_goal(outputs)
        except GoalExistsError:
            return Outcome(parsed.goal_id, existed=True)
        return Outcome(parsed.goal_id, tuple(outputs))

    async def _origin(self, parsed: ParsedGoal | RejectedGoal) -> Sequence[Event]:
        if isinstance(parsed, RejectedGoal) or parsed.command.forked_from is None:
            return ()
        fork = parsed.command.forked_from
        return await self.fork_origin(fork.goal_id, fork.at_seq)


@dataclass
class CommandIntake:
    """Records steering commands (cancel, pause, resume): any replica may run it. It decides
    nothing about the goal: the active planner answers the recorded request."""

    append: AppendRequest
    goal_exists: GoalExists
    producer: str
    now: Callable[[], datetime]

    async def admit(
        self, subject: str, data: bytes, *, fallback_command_id: str
    ) -> tuple[Event, ...]:
        """Record one command (its request, or its rejection); a DecodeError (bytes that are
        not a JSON object) propagates."""
        command = parse_control_command(subject, data, fallback_command_id=fallback_command_id)
        # A goal never stops existing (the log only grows), so the answer cannot go stale.
        exists = bool(command.goal_id) and await self.goal_exists(command.goal_id)
        events = record_command(command, goal_exists=exists, now=self.now(), producer=self.producer)
        await self.append(events)
        return tuple(events)


class _NamesGoal(Protocol):
    @property
    def goal_id(self) -> str: ...


Command = TypeVar("Command", bound=_NamesGoal)


@dataclass
class _RecordingIntake(Generic[Command]):
    """Records one kind of untrusted command on the goal it names, or its rejection: any
    replica may run it. The active planner decides on the recorded command."""

    append: AppendRequest
    goal_exists: GoalExists
    producer: str
    now: Callable[[], datetime]
    max_bytes: int

    def _parse(self, data: bytes, fallback_command_id: str) -> Command:
        raise NotImplementedError

    def _record(self, command: Command, *, goal_exists: bool) -> list[Event]:
        raise NotImplementedError

    async def admit(self, data: bytes, *, fallback_command_id: str) -> tuple[Event, ...]:
        """Record one command (or its rejection); a DecodeError (bytes that are not a JSON
        object) propagates."""
        command = self._parse(data, fallback_command_id)
        # A goal never stops existing (the log only grows), so the answer cannot go stale.
        exists = bool(command.goal_id) and await self.goal_exists(command.goal_id)
        events = self._record(command, goal_exists=exists)
        await self.append(events)
        return tuple(events)


@dataclass
class ApprovalIntake(_RecordingIntake[ParsedAnswer | InvalidAnswer]):
    """Records answers to approval requests (``agora.intake.approval``) on their goal."""

    def _parse(self, data: bytes, fallback_command_id: str) -> ParsedAnswer | InvalidAnswer:
        return parse_approval_answer(
            data, fallback_command_id=fallback_command_id, max_bytes=self.max_bytes
        )

    def _record(self, command: ParsedAnswer | InvalidAnswer, *, goal_exists: bool) -> list[Event]:
        return record_answer(
            command, goal_exists=goal_exists, now=self.now(), producer=self.producer
        )


@dataclass
class MessageIntake(_RecordingIntake[ParsedMessage | InvalidMessage]):
    """Records messages for goals that run (``agora.intake.message``) on their goal; the
    active planner answers each by the goal's policy."""

    def _parse(self, data: bytes, fallback_command_id: str) -> ParsedMessage | InvalidMessage:
        return parse_message_command(
            data, fallback_command_id=fallback_command_id, max_bytes=self.max_bytes
        )

    def _record(self, command: ParsedMessage | InvalidMessage, *, goal_exists: bool) -> list[Event]:
        return record_message(
            command, goal_exists=goal_exists, now=self.now(), producer=self.producer
        )


@dataclass
class DeadlineKeeper:
    """Stores the deny of every recorded approval request, scheduled for its deadline, on the
    intake stream: nats-server delivers it then, whatever runs or restarts meanwhile. It
    handles the planner's own ``approval_requested`` from the log, so a crash between the
    request and its schedule is made good by the redelivery; the message's bytes and id are the
    same each time, so storing it again changes nothing. A ReAct step's request comes from the
    executor: ``noted`` hands it to the planner's state first (``GoalPlanner.note_request``)."""

    store: Callable[[DeadlineMessage], Awaitable[None]]
    now: Callable[[], datetime]
    noted: Callable[[ApprovalRequested], None] | None = None

    async def keep(self, request: ApprovalRequested) -> None:
        if self.noted is not None:
            self.noted(request)
        await self.store(deadline_message(request, now=self.now()))


@dataclass
class GoalPlanner:
    record: GoalRecord
    append: Append
    tools: Tools
    producer: str
    now: Callable[[], datetime]
    llm: LlmPort | None = None
    planning: LlmPlanning | None = None
    states: GoalStates = field(default_factory=GoalStates)
    # Cache misses that read a goal's history (after a takeover or an eviction).
    loads: int = 0
    # Flow control (services/planner/flow_gate.py); None: no flow policy, nothing held.
    flow: FlowGate | None = None

    def note_request(self, request: ApprovalRequested) -> None:
        """Fold an approval request another service recorded (a ReAct step's call, asked by
        the executor) into its goal's cached state, so that an answer finds it. A goal not in
        the cache reads it from the log when it is next needed."""
        if request.step and self.states.get(request.goal_id) is not None:
            self.states.apply(request.goal_id, [request])

    async def handle(self, event: Event, *, first_delivery: bool) -> None:
        """Fold ``event`` into its goal and append whatever is due.

        ``first_delivery``: the consumer delivers ``event`` for the first time. A goal's
        acceptance delivered for the first time has no decision recorded after it (the
        decisions are made only here, on its delivery), so its state is the event itself.
        """
        goal_id = event.goal_id
        flow = self.flow
        if isinstance(event, COMMAND_RECORDS):
            if flow is not None and isinstance(event, CancelRequested):
                flow.withdraw(goal_id)  # a waiting goal being cancelled must not start now
            # Answered even for a goal that ended or was never accepted: with a rejection.
            await self._decide(goal_id, await self._control_state(event), event)
        elif not self.states.is_finished(goal_id):
            state = await self._state_with(event, first_delivery=first_delivery)
            if state is None:
                return
            admitted = flow.admission(state, event) if flow is not None else []
            await self._decide(goal_id, state, event, admitted)
        if flow is not None:
            await flow.flush()

    async def _control_state(self, event: Event) -> PlannerState | None:
        """The goal's state with a steering request folded in (the request itself changes
        nothing; its answer does). A finished goal's state is gone from the cache: read."""
        goal_id = event.goal_id
        if self.states.get(goal_id) is not None:
            return self.states.apply(goal_id, [event])
        self.loads += 1
        history = await self.record(goal_id)
        return self.states.apply(goal_id, [*history, event])

    async def _state_with(self, event: Event, *, first_delivery: bool) -> PlannerState | None:
        goal_id = event.goal_id
        if goal_id in self.states or (isinstance(event, GoalAccepted) and first_delivery):
            return self.states.apply(goal_id, [event])
        self.loads += 1
        history = await self.record(goal_id)
        # The history holds the event itself; folding it again is a no-op.
        return self.states.apply(goal_id, [*history, event])

    async def _decide(
        self,
        goal_id: str,
        state: PlannerState | None,
        trigger: Event,
        admitted: Sequence[Event] = (),
    ) -> None:
        """``admitted``: the goal's flow event (taken its slots, or queued), recorded with the
        first decision, which it is folded into."""
        # The cached state the decision starts from, before the admission is folded in.
        base = state
        pending = list(admitted)
        for event in pending:
            state = evolve(state, event)
        while True:
            decision = decide_next(
                state,
                trigger,
                tools=self.tools,
                now=self.now(),
                producer=self.producer,
                planning=self.planning,
            )
            events = [*pending, *decision.events] if pending else decision.events
            pending = []
            if events:
                try:
                    folded = await self._append(
                        goal_id, events, decided_from=base, decided=decision.state
                    )
                except EventTooLargeError as exc:
                    log.warning("decision_unwritable", goal_id=goal_id, error=str(exc))
                    failed = unwritable_failure(
                        state, trigger, str(exc), now=self.now(), producer=self.producer
                    )
                    await self._append(goal_id, failed)
                    return
                if folded is None:
                    return
                state = folded
            if decision.llm_request is None:
                return
            assert state is not None  # only an accepted goal's decisions ask a model
            answer = await self._ask_model(goal_id, state, trigger, decision.llm_request)
            if answer is None:
                return
            folded = self.states.apply(goal_id, [answer])
            if folded is None:
                return
            state, trigger = folded, answer
            base = state

    async def _append(
        self,
        goal_id: str,
        events: Sequence[Event],
        *,
        decided_from: PlannerState | None = None,
        decided: PlannerState | None = None,
    ) -> PlannerState | None:
        """Append ``events`` and fold them into the cache. ``decided``: their decision's state
        with them folded in (from ``decided_from``), kept instead of folding them again."""
        try:
            await self.append(events)
        except BaseException:
            # Some events may be stored: the cached state no longer matches the log.
            self.states.evict(goal_id)
            raise
        folded = self.states.apply_decided(goal_id, events, base=decided_from, folded=decided)
        if self.flow is not None and folded is not None and folded.outcome is not None:
            self.flow.finished(goal_id, events[-1])  # its slots go to the goals that wait
        return folded

    async def _ask_model(
        self, goal_id: str, state: PlannerState, trigger: Event, request: LlmRequest
    ) -> Event | None:
        """The recorded answer to ``request`` (the next trigger), or None when the goal
        failed because no model could answer."""
        stamp = Stamp.caused_by(trigger, producer=self.producer, now=self.now())

        async def append_call(events: Sequence[Event]) -> None:
            await self._append(goal_id, events)

        try:
            _, responded = await recorded_call(
                self.llm,
                request,
                stamp=stamp,
                recorded=state.llm_answers,
                publish=append_call,
            )
        except LlmNotRecordedError:
            raise  # a rerun without a live model: stop here, decide nothing in its place
        except LlmError as exc:
            log.warning("llm_failed", goal_id=goal_id, error=str(exc))
            current = self.states.get(goal_id) or state
            failed = llm_failure(current, trigger, str(exc), now=self.now(), producer=self.producer)
            await self._append(goal_id, failed)
            return None
        return responded
