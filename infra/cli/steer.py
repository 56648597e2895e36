"""``agora cancel``, ``agora pause``, ``agora resume`` and ``agora message``: steer a goal that
runs, or send it input."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from infra.cli.common import app, connect, err, load_settings, out, run

if TYPE_CHECKING:
    from events.catalog import ControlAction

__all__ = ["EXIT_NO_ANSWER", "EXIT_REJECTED", "cancel", "message", "pause", "resume"]

EXIT_REJECTED = 1
EXIT_NO_ANSWER = 3

GoalArgument = Annotated[str, typer.Argument(help="the goal's id")]
ReasonOption = Annotated[str, typer.Option("--reason", help="why (recorded with the answer)")]
CommandIdOption = Annotated[
    str | None,
    typer.Option("--command-id", help="the command's id; sending it again changes nothing"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the answer as JSON")]
TimeoutOption = Annotated[float, typer.Option(help="seconds to wait for the answer")]


def _steer(
    action: ControlAction | Literal["message"],
    goal_id: str,
    *,
    reason: str,
    command_id: str | None,
    as_json: bool,
    timeout: float,
) -> None:
    from events.catalog import CommandRejected, MessageRejected
    from events.codec import to_builtins
    from events.summary import summarize
    from infra.clients.goals import AgoraClient, CommandSent, CommandTimeoutError, check_goal_id

    check_goal_id(goal_id)
    settings = load_settings()

    async def send(client: AgoraClient) -> CommandSent:
        if action == "message":  # the message's text comes as ``reason``
            return await client.message(goal_id, reason, command_id=command_id)
        steer = {"cancel": client.cancel, "pause": client.pause, "resume": client.resume}
        return await steer[action](goal_id, reason=reason, command_id=command_id)

    async def work() -> int:
        client = AgoraClient(await connect(settings, f"agora-{action}"))
        try:
            answer = await client.answer(await send(client), timeout_s=timeout)
        finally:
            await client.close()
        rejected = isinstance(answer, CommandRejected | MessageRejected)
        if as_json:
            print(json.dumps(to_builtins(answer), default=str), flush=True)
        elif isinstance(answer, CommandRejected | MessageRejected):
            err.print(f"[red]agora: {action} {goal_id} rejected: {answer.reason}[/]")
        else:
            out.print(f"goal [bold]{goal_id}[/] {summarize(answer)}")
        return EXIT_REJECTED if rejected else 0

    try:
        code: int = run(work())
    except CommandTimeoutError as exc:
        err.print(f"[yellow]agora: {exc}[/]")
        raise typer.Exit(EXIT_NO_ANSWER) from None
    raise typer.Exit(code)


@app.command()
def cancel(
    goal_id: GoalArgument,
    reason: ReasonOption = "",
    command_id: CommandIdOption = None,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Cancel a goal: its running tasks stop, nothing new is scheduled, goal_cancelled ends
    it. Exit 0 cancelled, 1 rejected (unknown or finished goal), 3 no answer in time."""
    _steer(
        "cancel", goal_id, reason=reason, command_id=command_id, as_json=as_json, timeout=timeout
    )


@app.command()
def pause(
    goal_id: GoalArgument,
    reason: ReasonOption = "",
    command_id: CommandIdOption = None,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Pause a goal: nothing new is scheduled until it is resumed (a running step finishes).
    Exit 0 paused, 1 rejected (unknown, finished or already paused goal), 3 no answer."""
    _steer("pause", goal_id, reason=reason, command_id=command_id, as_json=as_json, timeout=timeout)


@app.command()
def resume(
    goal_id: GoalArgument,
    reason: ReasonOption = "",
    command_id: CommandIdOption = None,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Resume a paused goal from where it stopped. Exit 0 resumed, 1 rejected (the goal is
    not paused), 3 no answer in time."""
    _steer(
        "resume", goal_id, reason=reason, command_id=command_id, as_json=as_json, timeout=timeout
    )


@app.command()
def message(
    goal_id: GoalArgument,
    text: Annotated[str, typer.Argument(help="the input for the goal")],
    command_id: CommandIdOption = None,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Send input to a goal that runs. The goal's on_message policy decides: queued for the
    revision after the current iteration, or the iteration interrupted and revised now. Exit
    0 queued or interrupted, 1 rejected (policy reject, unknown or finished goal), 3 no answer."""
    _steer("message", goal_id, reason=text, command_id=command_id, as_json=as_json, timeout=timeout)
