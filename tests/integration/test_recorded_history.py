"""A log written by an older agora replays into the same views and its goals re-run.

tests/data/history-v1.json was recorded (tests/data/record_history.py) by the code before the
hot-path redesign: it holds task_started, tool_returned, observation memory_stored and context
round trips for explicit plans, and tool_called for calls of echo and calculator, which the
current code no longer writes. Its messages are
appended to a fresh stream exactly as they were stored (same ids, same order); the projector's
views must equal what the old projector made of them, and every goal re-runs through the
current code with only the documented differences.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from events.catalog import ToolCalled
from events.codec import decode_event
from events.model import Event
from events.subjects import EVENTS_STREAM
from events.tools import BUILTIN_TOOLS, CallRecord
from projections.replay import replay_into
from projections.store import ProjectionStore
from services.evaluator.main import judge_prompt
from services.executor.main import react_prompt
from services.rerun import RERUNNERS, RerunOptions

RECORDED = Path(__file__).parents[1] / "data" / "history-v1.json"
# What the current code no longer writes for such goals (docs/events.md, migration notes).
NO_LONGER_WRITTEN = {"context_requested", "task_started", "tool_returned"}
# A permanent tool failure now says so on its task_failed (older events read as transient).
NOW_PERMANENT = "transient: true -> false"


def _same_view_row(now: list[Any], then: list[Any]) -> bool:
    """Equal, or a goal_rejected summary that now shows more of its reason than the old cut."""
    if now == then:
        return True
    if len(now) != 5 or now[:4] != then[:4] or now[2] != "goal_rejected":
        return False
    old_summary = str(then[4])
    return old_summary.endswith("…") and str(now[4]).startswith(old_summary[:-1])


@pytest.fixture
def recorded() -> dict[str, Any]:
    return json.loads(RECORDED.read_text())


async def _append_as_stored(nc: NatsClient, messages: list[dict[str, Any]]) -> None:
    js = nc.jetstream()
    for message in messages:
        ack = await js.publish(
            message["subject"],
            message["payload"].encode(),
            stream=EVENTS_STREAM,
            headers={"Nats-Msg-Id": message["headers"]["Nats-Msg-Id"]},
        )
        assert ack.seq == message["seq"]  # the same positions as in the recorded stream


async def test_an_older_log_projects_into_the_same_views(
    nc: NatsClient, recorded: dict[str, Any], tmp_path: Path
) -> None:
    await _append_as_stored(nc, recorded["messages"])
    store = ProjectionStore.open(tmp_path / "replayed.duckdb")
    try:
        progress = await replay_into(store, nc)
        assert progress.applied == len(recorded["messages"])
        for name, view in recorded["views"].items():
            sql = {
                "goals": "SELECT goal_id, text, status, iterations, score, result FROM goals "
                "ORDER BY goal_id",
                "tasks": "SELECT goal_id, task_id, iteration, tool, status, attempts, output "
                "FROM tasks ORDER BY goal_id, iteration, task_id",
                "facts": "SELECT goal_id, key, value FROM facts ORDER BY goal_id, key",
                "trajectory": "SELECT goal_id, step, type, actor, summary FROM trajectory "
                "ORDER BY goal_id, step",
            }[name]
            rows = [list(row) for row in store.connection.execute(sql).fetchall()]
            assert len(rows) == len(view["rows"]), name
            changed = [
                (now, then)
                for now, then in zip(rows, view["rows"], strict=True)
                if not _same_view_row(now, then)
            ]
            assert changed == [], name
    finally:
        store.close()


def _goals(recorded: dict[str, Any]) -> dict[str, list[Event]]:
    goals: dict[str, list[Event]] = {}
    for message in recorded["messages"]:
        event = decode_event(message["payload"].encode())
        goals.setdefault(event.goal_id, []).append(event)
    return goals


@pytest.mark.parametrize("service", sorted(RERUNNERS))
async def test_every_recorded_goal_reruns_through_the_current_code(
    recorded: dict[str, Any], service: str
) -> None:
    from datetime import UTC, datetime

    options = RerunOptions(
        planning=None,
        producer=f"{service}@rerun",
        judge_prompt=judge_prompt(),
        react_prompt=react_prompt(),
    )
    for goal_id, history in _goals(recorded).items():
        report = await RERUNNERS[service](history, options, datetime.now(UTC))
        assert not report.stopped_early, (goal_id, service)
        # An instant tool without side effects no longer writes tool_called (its outcome
        # records the call); every other tool still does.
        unrecorded = {
            e.event_id
            for e in history
            if isinstance(e, ToolCalled)
            and e.step == 0  # a ReAct step's calls are recorded first, whichever the tool
            and BUILTIN_TOOLS[e.tool].call_record is CallRecord.BY_OUTCOME
        }
        unexpected = [
            d
            for d in report.differences
            if not (d.kind == "missing" and d.type in NO_LONGER_WRITTEN)
            and not (d.kind == "missing" and d.event_id in unrecorded)
            and not (d.kind == "changed" and d.type == "task_failed" and d.detail == NOW_PERMANENT)
        ]
        assert unexpected == [], (goal_id, service, unexpected)
