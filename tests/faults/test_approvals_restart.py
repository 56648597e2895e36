"""Goals waiting for approval while every agora process and nats-server are SIGKILLed and
restarted; then answered from the command line. Nothing waiting is lost, every approved call
runs exactly once (with the edit where one was made), no denied call ever runs, and the
deadline denies the goal nobody answered."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import ApprovalGranted, ApprovalRejected, GoalCompleted, GoalFailed, ToolCalled
from events.subjects import (
    COMMANDS_GOAL_ID,
    DLQ_STREAM,
    EVENTS_STREAM,
    INTAKE_APPROVAL,
    INTAKE_STREAM,
)
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.clients.query import ask
from infra.platform.embedded import EmbeddedNats
from infra.platform.runner import SERVICES
from infra.settings import Settings
from tests.faults.conftest import report
from tests.faults.harness import (
    CALLS_DIR,
    ServiceProcesses,
    fault_settings,
    kill_everything_and_restart,
    submit_all,
)
from tests.support import all_events, wait_until

DEADLINE_GOAL = "ap-deadline"


def waiting_goal(goal_id: str, *, deadline_s: float = 3600) -> dict[str, Any]:
    """A side effect that counts its runs and waits for approval, then a step after it."""
    return {
        "command_id": f"cmd-{goal_id}",
        "goal_id": goal_id,
        "text": f"approval goal {goal_id}",
        "steps": [
            {
                "tool": "append_line",
                "args": {"path": f"{CALLS_DIR}/{goal_id}.s1.txt", "line": "ran"},
            },
            {"tool": "echo", "args": {"text": "after {{steps.s1.output}}"}},
        ],
        "approval": {"require": ["append_line"], "deadline_s": deadline_s},
    }


async def _subjects(nc: NatsClient, stream: str, subjects: str) -> int:
    info = await nc.jetstream().stream_info(stream, subjects_filter=subjects)
    return len(info.state.subjects or {})


async def _agora(settings: Settings, *args: str) -> tuple[int, str, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AGORA_")},
        **settings.to_env(),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infra.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _waiting(settings: Settings) -> list[dict[str, Any]]:
    code, out, err = await _agora(settings, "approvals", "--format", "json", "--limit", "1000")
    assert code == 0, err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


@pytest.mark.parametrize(
    "goals", [pytest.param(6, id="reduced"), pytest.param(100, id="full", marks=pytest.mark.faults)]
)
async def test_waiting_goals_survive_every_process_and_the_server_killed_then_answered(
    tmp_path: Path, goals: int
) -> None:
    server = EmbeddedNats(tmp_path / "nats", durability="os").start()
    settings = fault_settings(tmp_path, server.url)
    nc = await connect(settings, "approvals-test")
    services = ServiceProcesses(settings, log_dir=tmp_path / "logs")
    ids = [f"ap-{n}" for n in range(goals)]
    try:
        await provision(nc.jetstream(), settings)
        for name in SERVICES:
            services.start(name)
        client = AgoraClient(nc)
        # The deadline falls after the restart: nats-server delivers the deny it stored.
        await submit_all(
            client, [*map(waiting_goal, ids), waiting_goal(DEADLINE_GOAL, deadline_s=15)]
        )

        async def all_asked() -> bool:
            requested = await _subjects(nc, EVENTS_STREAM, "agora.events.*.approval_requested")
            deadlines = await _subjects(nc, INTAKE_STREAM, "agora.intake.deadline.>")
            return requested == deadlines == goals + 1

        await wait_until(all_asked, timeout_s=60 + goals * 0.5, what="every approval requested")

        kill_everything_and_restart(services, server)

        answerable = {f"{g}/1/s1" for g in ids}

        async def all_listed() -> bool:
            # The deadline goal's wait may already have been denied on a slow box: its deny
            # is checked at the end; the others wait for an answer, whatever the load.
            try:
                return answerable <= {row["approval_id"] for row in await _waiting(settings)}
            except AssertionError:
                return False  # the projector is not back yet

        await wait_until(all_listed, timeout_s=90, what="agora approvals to list every wait")
        listed = {row["approval_id"]: row for row in await _waiting(settings)}
        assert answerable <= set(listed) <= {*answerable, f"{DEADLINE_GOAL}/1/s1"}
        assert {row["tool"] for row in listed.values()} == {"append_line"}
        statuses = await ask(
            nc, f"SELECT DISTINCT status FROM goals WHERE goal_id <> '{DEADLINE_GOAL}'"
        )
        assert statuses.rows == [["waiting_approval"]]
        # Nothing ran while they waited.
        assert not (settings.workspace / CALLS_DIR).exists()

        edited, *approved, denied = ids
        # An edit that does not fit the tool's schema is refused; the call still waits.
        code, _, err = await _agora(settings, "approve", f"{edited}/1/s1", "--edit", '{"path": 7}')
        assert code == 1
        assert "do not fit append_line's schema" in err
        edit = json.dumps({"path": f"{CALLS_DIR}/{edited}.s1.txt", "line": "edited"})
        code, out, err = await _agora(
            settings, "approve", f"{edited}/1/s1", "--edit", edit, "--by", "ada"
        )
        assert code == 0, err
        assert "approved with edited args" in out
        code, out, err = await _agora(settings, "approve", *(f"{g}/1/s1" for g in approved))
        assert code == 0, err
        code, out, err = await _agora(settings, "deny", f"{denied}/1/s1", "--reason", "not today")
        assert code == 0, err
        assert "denied: not today" in out

        # Answers that cannot apply: already answered, unknown, hostile bytes.
        code, _, err = await _agora(settings, "deny", f"{edited}/1/s1", "--reason", "too late")
        assert (code, "already granted" in err) == (1, True), err
        code, _, err = await _agora(settings, "approve", "ap-nope/1/s1")
        assert (code, "no goal ap-nope exists" in err) == (1, True), err
        js = nc.jetstream()
        dead_before = (await js.stream_info(DLQ_STREAM)).state.messages
        await js.publish(INTAKE_APPROVAL, b"{not json", headers={"Nats-Msg-Id": "junk-1"})
        huge = json.dumps(
            {
                "command_id": "huge-1",
                "approval_id": f"{denied}/1/s1",
                "decision": "approve",
                "args": {"line": "x" * (settings.max_intake_bytes + 1)},
            }
        ).encode()
        await js.publish(INTAKE_APPROVAL, huge, headers={"Nats-Msg-Id": "huge-1"})

        async def finished() -> bool:
            ended = 0
            for kind in ("goal_completed", "goal_failed"):
                ended += await _subjects(nc, EVENTS_STREAM, f"agora.events.*.{kind}")
            return ended == goals + 1

        await wait_until(finished, timeout_s=90 + goals * 0.5, what="every goal to end")

        async def hostile_recorded() -> bool:
            dead = (await js.stream_info(DLQ_STREAM)).state.messages
            log = await all_events(nc)
            return dead > dead_before and any(
                isinstance(e, ApprovalRejected) and e.command_id == "huge-1" for e in log
            )

        await wait_until(hostile_recorded, timeout_s=30, what="the hostile answers' records")

        log = await all_events(nc)
        outcomes: dict[str, list[type]] = {}
        for event in log:
            if isinstance(event, GoalCompleted | GoalFailed):
                outcomes.setdefault(event.goal_id, []).append(type(event))
        assert all(outcomes[g] == [GoalCompleted] for g in [edited, *approved]), outcomes
        assert outcomes[denied] == outcomes[DEADLINE_GOAL] == [GoalFailed]
        reasons = {e.goal_id: e.reason for e in log if isinstance(e, GoalFailed)}
        assert "approval denied: not today" in reasons[denied]
        assert "no answer by the deadline" in reasons[DEADLINE_GOAL]
        rejected = {e.command_id: e for e in log if isinstance(e, ApprovalRejected)}
        assert "the limit is" in rejected["huge-1"].reason
        assert any(e.goal_id == COMMANDS_GOAL_ID for e in rejected.values())

        # Every approved call ran exactly once, with the edit where there was one; no
        # denied call ever ran.
        calls = settings.workspace / CALLS_DIR
        for goal_id in approved:
            assert (calls / f"{goal_id}.s1.txt").read_text() == "ran\n", goal_id
        assert (calls / f"{edited}.s1.txt").read_text() == "edited\n"
        assert not (calls / f"{denied}.s1.txt").exists()
        assert not (calls / f"{DEADLINE_GOAL}.s1.txt").exists()

        # The trajectory shows the request, the edit and what ran.
        lines = await ask(
            nc,
            f"SELECT type, summary FROM trajectory WHERE goal_id = '{edited}' AND type IN "
            "('approval_requested', 'approval_granted', 'task_scheduled') ORDER BY step",
        )
        kinds = [row[0] for row in lines.rows]
        assert kinds[:3] == ["approval_requested", "approval_granted", "task_scheduled"], lines.rows
        assert "approved with edited args" in lines.rows[1][1]
        (granted,) = [e for e in log if isinstance(e, ApprovalGranted) and e.goal_id == edited]
        assert (granted.original_args["line"], granted.args["line"], granted.by) == (
            "ran",
            "edited",
            "ada",
        )
        ran = [
            e.args
            for e in log
            if isinstance(e, ToolCalled) and e.goal_id == edited and e.task_id == "s1"
        ]
        assert ran == [granted.args]
        report(f"approvals: {goals + 1} waiting goals through a full kill; all answered as asked")
    finally:
        services.stop_all()
        await nc.close()
        server.stop()
