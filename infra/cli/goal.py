"""``agora goal`` and ``agora tail``: submit goals and follow the log as it grows."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infra.cli.common import app, connect, err, load_settings, out, run, stop_on_signals

if TYPE_CHECKING:
    from events.model import Event
    from infra.clients.goals import AgoraClient

__all__ = ["EXIT_WAIT_TIMED_OUT", "goal", "goal_command", "parse_step", "tail"]

EXIT_WAIT_TIMED_OUT = 3
# [ID[<DEP,DEP…]=]TOOL[:JSON_ARGS], e.g.  calculator:{"expression": "2+2"}  or
# b<a=echo:{"text": "{{steps.a.output}}"}  (step b, after step a).
_STEP = re.compile(
    r"^(?:(?P<id>[A-Za-z0-9_-]+)(?:<(?P<deps>[A-Za-z0-9_,-]+))?=)?(?P<tool>[A-Za-z0-9_][A-Za-z0-9_.-]*)"
    r"(?::(?P<args>.*))?$",
    re.DOTALL,
)
STEP_HELP = (
    '[ID[<DEP,…]=]TOOL:JSON_ARGS, e.g. calculator:{"expression":"2+2"}; name steps and '
    'their dependencies for a DAG: a=calculator:{…}  b<a=echo:{"text":"{{steps.a.output}}"}'
)


def parse_step(raw: str) -> dict[str, Any]:
    """One ``--step`` as an intake step object."""
    match = _STEP.match(raw.strip())
    if match is None:
        raise typer.BadParameter(f"--step {raw!r}: expected {STEP_HELP}")
    args_text = match["args"] or ""
    try:
        args = json.loads(args_text) if args_text.strip() else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--step {raw!r}: arguments must be JSON ({exc})") from None
    if not isinstance(args, dict):
        raise typer.BadParameter(f"--step {raw!r}: arguments must be a JSON object")
    step: dict[str, Any] = {"tool": match["tool"], "args": args}
    if match["id"]:
        step["id"] = match["id"]
    if match["deps"]:
        step["depends_on"] = [d for d in match["deps"].split(",") if d]
    return step


def _parse_expect(raw: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return {"contains": raw}
    return parsed if isinstance(parsed, dict) else {"contains": raw}


def _read_command_file(source: str) -> dict[str, Any]:
    """The intake JSON from a file, or from stdin for ``-``."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"--file {source}: {exc.strerror}") from None
    try:
        command = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--file {source} is not JSON: {exc}") from None
    if not isinstance(command, dict):
        raise typer.BadParameter(f"--file {source} must hold one JSON object (the intake command)")
    return command


def _check_goal_id(goal_id: str) -> str:
    from infra.clients.goals import InvalidGoalIdError, check_goal_id

    try:
        return check_goal_id(goal_id)
    except InvalidGoalIdError as exc:
        raise typer.BadParameter(str(exc), param_hint="--goal-id") from None


def _line(event: Event) -> str:
    from events.model import event_type
    from events.summary import summarize

    return f"{event.occurred_at:%H:%M:%S.%f}"[:-3] + f" {event_type(event):<22} {summarize(event)}"


def _note(event: Event) -> str | None:
    """What a user should know about an event beyond its line."""
    from events.catalog import PlanCreated

    if isinstance(event, PlanCreated) and event.strategy == "decomposed":
        return (
            "no planner model is configured (AGORA_LLM_BASE_URL): the rule planner split the "
            "text into steps and echoes the ones that name no tool; the result is that echo, "
            "not an answer"
        )
    return None


async def _follow(client: AgoraClient, goal_id: str, *, as_json: bool, timeout_s: float) -> int:
    """Print the goal's events as they come; 0 completed, 1 failed or rejected."""
    import asyncio

    from events.catalog import GoalCompleted
    from events.codec import to_builtins
    from infra.clients.goals import GoalTimeoutError

    live = out.is_terminal and not as_json
    status = out.status(f"{goal_id}: waiting for the first event") if live else None
    started = time.monotonic()
    last: Event | None = None
    try:
        if status is not None:
            status.start()
        async with asyncio.timeout(timeout_s):
            async for event in client.follow(goal_id):
                last = event
                if as_json:
                    print(json.dumps(to_builtins(event), default=str), flush=True)
                    continue
                out.print(_line(event))
                if (note := _note(event)) is not None:
                    out.print(f"[yellow]  note: {note}[/]")
                if status is not None:
                    elapsed = time.monotonic() - started
                    status.update(f"{goal_id}: running for {elapsed:.0f}s, last {_line(event)}")
    except TimeoutError:
        raise GoalTimeoutError(goal_id, timeout_s, last) from None
    except asyncio.CancelledError:
        err.print(f"stopped following goal {goal_id}; it keeps running")
        raise
    finally:
        if status is not None:
            status.stop()
    return 0 if isinstance(last, GoalCompleted) else 1


def goal_command(
    *,
    text: str | None,
    file: str | None,
    step: list[str] | None,
    expect: str | None,
    goal_id: str | None,
    max_iterations: int | None,
    max_tokens: int | None,
    max_cost_usd: float | None,
    allow: list[str] | None,
    priority: int | None = None,
    on_message: str | None = None,
    **_unused: object,
) -> dict[str, Any]:
    """The intake command ``agora goal``'s options describe (``agora schedule add`` too)."""
    command: dict[str, Any] = _read_command_file(file) if file else {}
    if text is not None:
        command["text"] = text
    if "text" not in command:
        raise typer.BadParameter("give the goal's TEXT, or --file with a JSON command")
    if step:
        command["steps"] = [parse_step(s) for s in step]
    if expect:
        command["expect"] = _parse_expect(expect)
    if allow:
        command["allowed_tools"] = list(dict.fromkeys(allow))
    if goal_id:
        command["goal_id"] = goal_id
    if isinstance(command.get("goal_id"), str):
        _check_goal_id(command["goal_id"])
    for name, value in (
        ("max_iterations", max_iterations),
        ("max_tokens", max_tokens),
        ("max_cost_usd", max_cost_usd),
        ("priority", priority),
        ("on_message", on_message),
    ):
        if value is not None:
            command[name] = value
    return command


@app.command()
def goal(
    text: Annotated[
        str | None, typer.Argument(help="what the goal should achieve (or give --file)")
    ] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", "-f", help="the intake JSON from a file, or - for stdin"),
    ] = None,
    step: Annotated[list[str] | None, typer.Option("--step", help=STEP_HELP)] = None,
    expect: Annotated[
        str | None,
        typer.Option(help='JSON like {"contains": "391"}, or text the result must contain'),
    ] = None,
    goal_id: Annotated[str | None, typer.Option("--goal-id")] = None,
    max_iterations: Annotated[int | None, typer.Option("--max-iterations")] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="LLM token budget of the goal")
    ] = None,
    max_cost_usd: Annotated[
        float | None, typer.Option("--max-cost-usd", help="LLM cost budget of the goal")
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(help="among goals waiting for the same flow limit, higher starts first"),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="follow the goal live to its outcome")
    ] = False,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow", help="grant the goal an untrusted (MCP) tool, e.g. time.get_current_time"
        ),
    ] = None,
    on_message: Annotated[
        str | None,
        typer.Option(
            "--on-message",
            help="what `agora message` does while the goal runs: reject (the default), "
            "enqueue (after the current iteration) or interrupt (stop it and revise now)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of text")] = False,
    timeout: Annotated[float, typer.Option(help="seconds --wait waits")] = 300.0,
    traceparent: Annotated[
        str | None,
        typer.Option(
            "--traceparent",
            help="W3C trace context (00-<trace id>-<span id>-<flags>): the goal's trace "
            "becomes a child of that span (default: TRACEPARENT)",
        ),
    ] = None,
) -> None:
    """Submit a goal. With --wait: exit 0 completed, 1 failed, rejected or cancelled, 3 still
    running when --timeout ran out (the goal goes on), 130 on Ctrl-C (the goal goes on)."""
    from events.trace_context import parse_traceparent
    from infra.clients.goals import AgoraClient

    settings = load_settings()
    given = traceparent is not None
    traceparent = traceparent if given else settings.traceparent
    if traceparent is not None and parse_traceparent(traceparent) is None:
        raise typer.BadParameter(
            "expected 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>, ids not all zero",
            param_hint="--traceparent" if given else "TRACEPARENT",
        )
    command = goal_command(
        text=text,
        file=file,
        step=step,
        expect=expect,
        goal_id=goal_id,
        max_iterations=max_iterations,
        max_tokens=max_tokens,
        max_cost_usd=max_cost_usd,
        allow=allow,
        priority=priority,
        on_message=on_message,
    )

    async def work() -> int:
        client = AgoraClient(await connect(settings, "agora-goal"))
        try:
            submitted = await client.submit(command, traceparent=traceparent)
            again = " (already submitted: the same command_id)" if submitted.duplicate else ""
            if as_json:
                ids = {"goal_id": submitted.goal_id, "command_id": submitted.command_id}
                print(json.dumps({**ids, "duplicate": submitted.duplicate}), flush=True)
            else:
                out.print(
                    f"submitted goal [bold]{submitted.goal_id}[/] "
                    f"(command {submitted.command_id}){again}"
                )
            if not wait:
                return 0
            return await _follow(client, submitted.goal_id, as_json=as_json, timeout_s=timeout)
        finally:
            await client.close()

    from infra.clients.goals import GoalTimeoutError

    try:
        code: int = run(work())
    except GoalTimeoutError as exc:
        err.print(f"[yellow]agora: {exc}[/]")
        raise typer.Exit(EXIT_WAIT_TIMED_OUT) from None
    raise typer.Exit(code)


@app.command()
def tail(
    goal_id: Annotated[str | None, typer.Option("--goal", help="only this goal")] = None,
    from_start: Annotated[bool, typer.Option("--all", help="replay from the first event")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Follow the event log live, step by step. Ctrl-C stops."""
    import asyncio

    from events.subjects import goal_events_filter
    from infra.clients.goals import AgoraClient, is_terminal

    if goal_id is not None:
        _check_goal_id(goal_id)
    settings = load_settings()

    async def work() -> None:
        from events.codec import to_builtins
        from events.model import event_type
        from events.summary import summarize

        client = AgoraClient(await connect(settings, "agora-tail"))
        stop = asyncio.Event()
        stop_on_signals(stop)
        subject = goal_events_filter(goal_id) if goal_id else "agora.events.>"

        async def follow() -> None:
            async for seq, event in client.tail(subject, new_only=not from_start):
                if as_json:
                    print(
                        json.dumps({"stream_seq": seq, **to_builtins(event)}, default=str),
                        flush=True,
                    )
                else:
                    terminal = is_terminal(event)
                    out.print(
                        f"{seq:>8} {event.goal_id:<20} {event_type(event):<22} {summarize(event)}",
                        style="bold" if terminal else "",
                    )

        following = asyncio.ensure_future(follow())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([following, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (following, stopped):
                task.cancel()
            await asyncio.gather(following, stopped, return_exceptions=True)
            await client.close()
        failure = following.exception() if not following.cancelled() else None
        if failure is not None:
            raise failure  # the reason tail stopped: a lost connection, an undecodable event

    run(work())
