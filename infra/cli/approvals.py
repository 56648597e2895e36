"""``agora approvals``, ``agora approve`` and ``agora deny``: tool calls that wait for a person."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infra.cli.answers import Format, ask, print_answer
from infra.cli.common import app, connect, err, load_settings, out, run
from infra.cli.steer import (
    EXIT_NO_ANSWER,
    EXIT_REJECTED,
    CommandIdOption,
    JsonOption,
    TimeoutOption,
)

if TYPE_CHECKING:
    from events.catalog import ApprovalDecision

__all__ = ["approvals", "approve", "deny"]

ApprovalArguments = Annotated[
    list[str], typer.Argument(help="approval ids, as `agora approvals` lists them")
]
ByOption = Annotated[
    str, typer.Option("--by", help="who answers (recorded; the policy may require it)")
]


@app.command()
def approvals(
    limit: Annotated[int, typer.Option()] = 100,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """The tool calls that wait for a person's approval, oldest first."""
    from infra.dashboard.queries import waiting_approvals_statement

    settings = load_settings()
    waiting = waiting_approvals_statement(limit=limit)
    bounded = max(1, limit)
    print_answer(run(ask(settings, waiting.sql, bounded, params=waiting.params)), fmt)


def _answer(
    approval_ids: list[str],
    decision: ApprovalDecision,
    *,
    reason: str,
    args: dict[str, Any] | None,
    by: str,
    command_id: str | None,
    as_json: bool,
    timeout: float,
) -> None:
    """Send one answer per id, then print each decision; exit 1 if any was rejected."""
    from events.catalog import ApprovalRejected
    from events.codec import to_builtins
    from events.summary import summarize
    from infra.clients.goals import AgoraClient, CommandTimeoutError

    if command_id is not None and len(approval_ids) > 1:
        raise typer.BadParameter("--command-id names one answer: give one approval id with it")
    settings = load_settings()

    async def work() -> int:
        client = AgoraClient(await connect(settings, f"agora-{decision}"))
        try:
            sent = [
                await client.answer_approval(
                    approval_id, decision, reason=reason, args=args, by=by, command_id=command_id
                )
                for approval_id in approval_ids
            ]
            answers = [await client.answer(one, timeout_s=timeout) for one in sent]
        finally:
            await client.close()
        rejected = 0
        for approval_id, answer in zip(approval_ids, answers, strict=True):
            if as_json:
                print(json.dumps(to_builtins(answer), default=str), flush=True)
            elif isinstance(answer, ApprovalRejected):
                err.print(f"[red]agora: {decision} {approval_id} rejected: {answer.reason}[/]")
            else:
                out.print(f"approval [bold]{approval_id}[/]: {summarize(answer)}")
            rejected += isinstance(answer, ApprovalRejected)
        return EXIT_REJECTED if rejected else 0

    try:
        code: int = run(work())
    except CommandTimeoutError as exc:
        err.print(f"[yellow]agora: {exc}[/]")
        raise typer.Exit(EXIT_NO_ANSWER) from None
    raise typer.Exit(code)


def _edited_args(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"--edit is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter("--edit must be a JSON object: the call's arguments")
    return value


@app.command()
def approve(
    approval_ids: ApprovalArguments,
    edit: Annotated[
        str | None,
        typer.Option("--edit", help="run with these arguments instead (a JSON object)"),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="why (recorded)")] = "",
    by: ByOption = "",
    command_id: CommandIdOption = None,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Approve waiting tool calls (with --edit, run the one named with other arguments, checked
    against the tool's schema). Exit 0 granted, 1 any rejected (unknown, already answered, a
    bad edit), 3 no answer in time."""
    if edit is not None and len(approval_ids) > 1:
        raise typer.BadParameter("--edit applies to one call: give one approval id with it")
    _answer(
        approval_ids,
        "approve",
        reason=reason,
        args=_edited_args(edit),
        by=by,
        command_id=command_id,
        as_json=as_json,
        timeout=timeout,
    )


@app.command()
def deny(
    approval_ids: ApprovalArguments,
    reason: Annotated[str, typer.Option("--reason", help="why: the task fails with it")],
    by: ByOption = "",
    command_id: CommandIdOption = None,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Deny waiting tool calls: they never run, their tasks fail with the reason. Exit 0
    denied, 1 any rejected (unknown or already answered), 3 no answer in time."""
    _answer(
        approval_ids,
        "deny",
        reason=reason,
        args=None,
        by=by,
        command_id=command_id,
        as_json=as_json,
        timeout=timeout,
    )
