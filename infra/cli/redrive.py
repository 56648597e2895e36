"""``agora redrive``: a recorded goal through the current code, differences printed."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from events.errors import AgoraError, ConfigurationError
from events.subjects import SUBJECT_TOKEN, goal_events_filter
from infra.bus.connection import connect
from infra.bus.history import read_events
from infra.cli.common import app, load_settings, out, run
from infra.platform.runner import producer_name, utc_now
from infra.settings import Settings
from services.planner.main import planning_from_settings
from services.redrive import (
    REDRIVERS,
    RedriveOptions,
    RedriveReport,
    evaluator_used_llm,
    planner_used_llm,
)

__all__ = ["redrive", "redrive_goal"]


async def redrive_goal(
    settings: Settings, goal_id: str, *, service: str = "planner", live_llm: bool = False
) -> RedriveReport:
    """Read ``goal_id``'s recorded events and re-drive ``service`` over them (read-only)."""
    if service not in REDRIVERS:
        raise ConfigurationError(
            f"re-drive of {service!r} is not available; re-drivable: {', '.join(REDRIVERS)}"
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
    nc = await connect(settings, "agora-redrive")
    try:
        history = [event async for _, event in read_events(nc, goal_events_filter(goal_id))]
        if not history:
            raise AgoraError(f"goal {goal_id} has no recorded events; check the id")
        # The LLM strategies are on when an LLM is configured, or when the recorded goal
        # used them (their answers are in the record: no LLM is needed to re-drive it).
        used = {"planner": planner_used_llm, "evaluator": evaluator_used_llm}.get(service)
        enabled = bool(settings.llm_endpoints) or (used is not None and used(history))
        # Imported here: the executor's composition root is heavy for every other command.
        from services.evaluator.main import judge_prompt
        from services.executor.main import react_prompt

        options = RedriveOptions(
            planning=planning_from_settings(settings) if enabled else None,
            port=port,
            producer=producer_name(service),
            llm_strategies=enabled,
            judge_prompt=judge_prompt(),
            react_prompt=react_prompt(),
            react_max_steps=settings.react_max_steps,
        )
        return await REDRIVERS[service](history, options, utc_now())
    finally:
        await nc.close()
        if port is not None:
            await port.aclose()


def _print(report: RedriveReport) -> None:
    verdict = "[green]no differences[/]" if report.identical else "[red]differences[/]"
    out.print(
        f"goal {report.goal_id}, {report.service}: {report.inputs} input(s) re-driven, "
        f"{report.recorded} recorded decision(s), {report.redriven} decided now, "
        f"{report.llm_answers_reused} LLM answer(s) from the record, "
        f"{report.llm_calls} live LLM call(s): {verdict}"
    )
    if report.stopped_early:
        out.print(
            "[yellow]stopped at a request the recorded goal never asked; "
            "re-drive with --live-llm to go on[/]"
        )
    if report.differences:
        table = Table(title_justify="left")
        for column in ("kind", "type", "event_id", "detail"):
            table.add_column(column, overflow="fold")
        for d in report.differences:
            table.add_row(d.kind, d.type, d.event_id, d.detail)
        out.print(table)


@app.command()
def redrive(
    goal_id: Annotated[str, typer.Argument(help="the recorded goal to re-drive")],
    service: Annotated[
        str, typer.Option(help="whose decisions to re-drive: planner, executor or evaluator")
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
    if not SUBJECT_TOKEN.match(goal_id):
        raise typer.BadParameter("a goal id has only letters, digits, - and _")
    settings = load_settings()
    report: RedriveReport = run(redrive_goal(settings, goal_id, service=service, live_llm=live_llm))
    if as_json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        _print(report)
    if not report.identical:
        raise typer.Exit(1)
