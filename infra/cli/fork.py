"""``agora fork``: a new goal starting from an old goal's state as of a stream sequence."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Annotated

import typer

from events.errors import AgoraError
from events.subjects import goal_events_filter, is_subject_token
from infra.cli.common import app, connect, load_settings, out, run

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

    from infra.clients.goals import Submitted

__all__ = ["fork", "fork_goal", "fork_id"]


def fork_id(goal_id: str, at_seq: int, text: str | None) -> str:
    """The fork's goal id: the same fork asked twice is one goal (the resend is ignored)."""
    base = f"{goal_id}-fork-{at_seq}"
    if text is None:
        return base
    return f"{base}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


async def fork_goal(
    nc: NatsClient, goal_id: str, at_seq: int, *, text: str | None = None
) -> Submitted:
    """Submit the fork of ``goal_id`` at ``at_seq`` (see services/planner/fork.py)."""
    from events.catalog import GoalAccepted
    from infra.bus.history import read_events
    from infra.clients.goals import AgoraClient, Submitted

    accepted = [
        event
        async for seq, event in read_events(nc, goal_events_filter(goal_id))
        if seq <= at_seq and isinstance(event, GoalAccepted)
    ]
    if not accepted:
        raise AgoraError(
            f"goal {goal_id} has no accepted goal at or before stream sequence {at_seq}; "
            f"see `agora trajectory {goal_id}` for its sequences"
        )
    new_id = fork_id(goal_id, at_seq, text)
    if [seq async for seq, _ in read_events(nc, goal_events_filter(new_id))]:
        # Asked before (whenever: the duplicate window may be long gone): the same fork.
        return Submitted(command_id=new_id, goal_id=new_id, duplicate=True)
    command = {
        "goal_id": new_id,
        "command_id": new_id,
        "text": accepted[0].text if text is None else text,
        "forked_from": {"goal_id": goal_id, "at_seq": at_seq},
    }
    return await AgoraClient(nc).submit(command)


@app.command()
def fork(
    goal_id: Annotated[str, typer.Argument(help="the goal to fork")],
    at_seq: Annotated[
        int, typer.Option("--at-seq", help="start from its state as of this stream sequence")
    ],
    text: Annotated[str | None, typer.Option(help="a new text for the goal")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait for the fork's outcome")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    timeout: Annotated[float, typer.Option(help="seconds --wait waits")] = 300.0,
) -> None:
    """Start a new goal from the state of GOAL_ID at event N; GOAL_ID is left untouched.

    The fork keeps the plan GOAL_ID had at N and the outputs of the tasks completed by then;
    the rest runs again. Forking before the plan plans anew (with --text, from the new text).
    """
    if not is_subject_token(goal_id):
        raise typer.BadParameter("a goal id has only letters, digits, - and _")
    if at_seq < 1:
        raise typer.BadParameter("--at-seq is a stream sequence, 1 or more")
    settings = load_settings()

    from events.catalog import GoalCompleted
    from infra.clients.goals import AgoraClient

    async def work() -> int:
        nc = await connect(settings, "agora-fork")
        try:
            submitted = await fork_goal(nc, goal_id, at_seq, text=text)
            if as_json:
                fork = {"goal_id": submitted.goal_id, "forked_from": goal_id}
                print(json.dumps({**fork, "already_existed": submitted.duplicate}))
            elif submitted.duplicate:
                out.print(
                    f"the fork of {goal_id} at sequence {at_seq} already exists: "
                    f"[bold]{submitted.goal_id}[/] (`agora trajectory {submitted.goal_id}`)"
                )
            else:
                out.print(f"forked {goal_id} at sequence {at_seq} as [bold]{submitted.goal_id}[/]")
            if not wait:
                return 0
            events = await AgoraClient(nc).wait_for_outcome(submitted.goal_id, timeout_s=timeout)
            outcome = events[-1]
            if not as_json:
                out.print(f"{submitted.goal_id}: {type(outcome).__name__}")
            return 0 if isinstance(outcome, GoalCompleted) else 1
        finally:
            await nc.close()

    code: int = run(work())
    if code:
        raise typer.Exit(code)
