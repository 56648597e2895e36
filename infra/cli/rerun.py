"""``agora rerun``: a recorded goal through the current code, differences printed.

Not to be confused with ``agora dlq redrive``, which hands a dead letter back to the consumer
that gave up on it. ``agora redrive GOAL_ID`` is the old name of ``agora rerun`` (an alias
for one release).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from events.errors import AgoraError, ConfigurationError
from events.subjects import goal_events_filter, is_subject_token
from infra.cli.common import app, connect, err, load_settings, out, run

if TYPE_CHECKING:
    from infra.settings import Settings
    from services.rerun import RerunReport

__all__ = ["redrive", "rerun", "rerun_goal"]


async def rerun_goal(
    settings: Settings, goal_id: str, *, service: str = "planner", live_llm: bool = False
) -> RerunReport:
    """Read ``goal_id``'s recorded events and re-run ``service`` over them (read-only)."""
    from events.tool_catalogue import with_listed
    from infra.bus.history import read_events
    from infra.mcp.catalogue import read_listings
    from infra.platform.runner import producer_name, utc_now
    from services.planner.main import planning_from_settings
    from services.rerun import RERUNNERS, RerunOptions, evaluator_used_llm, planner_used_llm

    if service not in RERUNNERS:
        raise ConfigurationError(
            f"re-run of {service!r} is not available; re-runnable: {', '.join(RERUNNERS)}"
        )
    port = None
    if live_llm:
        from infra.llm import build_llm_port

        port = build_llm_port(settings)
        if port is None:
            raise ConfigurationError(
                "--live-llm needs an LLM: set AGORA_LLM_BASE_URL (and AGORA_LLM_MODEL, "
                "AGORA_LLM_API_KEY) or AGORA_LLM_PROVIDER"
            )
    nc = await connect(settings, "agora-rerun")
    try:
        recorded = [pair async for pair in read_events(nc, goal_events_filter(goal_id))]
        if not recorded:
            raise AgoraError(f"goal {goal_id} has no recorded events; check the id")
        history = [event for _, event in recorded]
        # The tools as the executor had listed them when the goal came in (docs/mcp.md):
        # nothing here connects to an MCP server.
        tools = with_listed(await read_listings(nc, before_seq=recorded[0][0]))
        # The LLM strategies are on when an LLM is configured, or when the recorded goal
        # used them (their answers are in the record: no LLM is needed to re-run it).
        used = {"planner": planner_used_llm, "evaluator": evaluator_used_llm}.get(service)
        enabled = bool(settings.llm_endpoints) or (used is not None and used(history))
        # Imported here: the executor's composition root is heavy for every other command.
        from services.evaluator.main import judge_prompt
        from services.executor.decide import Backoff
        from services.executor.main import react_prompt

        options = RerunOptions(
            planning=planning_from_settings(settings) if enabled else None,
            port=port,
            producer=producer_name(service),
            llm_strategies=enabled,
            judge_prompt=judge_prompt(),
            react_prompt=react_prompt(),
            react_max_steps=settings.react_max_steps,
            tools=tools,
            react_tools=tools,
            backoff=Backoff(settings.retry_backoff_s, settings.retry_backoff_max_s),
        )
        return await RERUNNERS[service](history, options, utc_now())
    finally:
        await nc.close()
        if port is not None:
            await port.aclose()


def _print(report: RerunReport) -> None:
    from rich.table import Table

    verdict = "[green]no differences[/]" if report.identical else "[red]differences[/]"
    out.print(
        f"goal {report.goal_id}, {report.service}: {report.inputs} input(s) re-run, "
        f"{report.recorded} recorded decision(s), {report.rerun_decisions} decided now, "
        f"{report.llm_answers_reused} LLM answer(s) from the record, "
        f"{report.llm_calls} live LLM call(s): {verdict}"
    )
    if report.stopped_early:
        out.print(
            "[yellow]stopped at a request the recorded goal never asked; "
            "re-run with --live-llm to go on[/]"
        )
    if report.differences:
        table = Table(title_justify="left")
        for column in ("kind", "type", "event_id", "detail"):
            table.add_column(column, overflow="fold")
        for d in report.differences:
            table.add_row(d.kind, d.type, d.event_id, d.detail)
        out.print(table)


@app.command()
def rerun(
    goal_id: Annotated[str, typer.Argument(help="the recorded goal to re-run")],
    service: Annotated[
        str, typer.Option(help="whose decisions to re-run: planner, executor or evaluator")
    ] = "planner",
    live_llm: Annotated[
        bool, typer.Option("--live-llm", help="ask the configured LLM what the record lacks")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
) -> None:
    """Feed a recorded goal through the current code; exit 1 when decisions differ.

    LLM calls are answered from the goal's recorded llm_responded events by request hash,
    so nothing reaches the network unless --live-llm is given.
    """
    if not is_subject_token(goal_id):
        raise typer.BadParameter("a goal id has only letters, digits, - and _")
    settings = load_settings()
    from infra.logging import apply_deferred_logging

    apply_deferred_logging()  # the services' handlers it drives log through structlog directly
    report: RerunReport = run(rerun_goal(settings, goal_id, service=service, live_llm=live_llm))
    if as_json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        _print(report)
    if not report.identical:
        raise typer.Exit(1)


@app.command(hidden=True, deprecated=True)
def redrive(
    goal_id: Annotated[str, typer.Argument(help="the recorded goal to re-run")],
    service: Annotated[str, typer.Option()] = "planner",
    live_llm: Annotated[bool, typer.Option("--live-llm")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The old name of `agora rerun` (dead letters: `agora dlq redrive`)."""
    err.print("[yellow]`agora redrive GOAL_ID` is now `agora rerun GOAL_ID`[/]")
    rerun(goal_id, service, live_llm, as_json)
