# ruff: noqa: E501, ASYNC240
"""Record a small event log with the platform as it was before the hot-path redesign.

Run from a checkout of that code: python record_history.py OUT.json
Writes every AGORA_EVENTS message (seq, subject, headers, payload) and the views it projects to.
"""

import asyncio
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, ".")
from infra.bus.connection import connect
from infra.bus.reader import StreamReader
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.clients.query import ask as query
from infra.clients.query import projector_caught_up
from infra.platform.embedded import EmbeddedNats
from infra.settings import Settings
from tests.conftest import InProcessPlatform

GOALS = [
    {
        "command_id": "h-standard",
        "goal_id": "h-standard",
        "text": "three echoes",
        "steps": [{"tool": "echo", "args": {"text": f"step {i}"}} for i in range(3)],
        "expect": {"contains": "step 2"},
    },
    {
        "command_id": "h-dag",
        "goal_id": "h-dag",
        "text": "a DAG with references",
        "steps": [
            {"id": "a", "tool": "calculator", "args": {"expression": "17*23"}},
            {"id": "b", "tool": "calculator", "args": {"expression": "2**10"}},
            {
                "id": "c",
                "tool": "echo",
                "depends_on": ["a", "b"],
                "args": {"text": "{{steps.a.output}} and {{steps.b.output}}"},
            },
        ],
        "expect": {"contains": ["391", "1024"]},
    },
    {
        "command_id": "h-revised",
        "goal_id": "h-revised",
        "text": "slow first, then fine",
        "steps": [{"tool": "sleep", "args": {"seconds": 0.3}, "timeout_s": 0.2}],
        "max_iterations": 3,
    },
    {
        "command_id": "h-failed",
        "goal_id": "h-failed",
        "text": "never matches",
        "steps": [{"tool": "echo", "args": {"text": "hello"}}],
        "expect": {"equals": "goodbye"},
        "max_iterations": 2,
    },
    {"command_id": "h-decomposed", "goal_id": "h-decomposed", "text": "compute 6*7 then summarize"},
    {
        "command_id": "h-files",
        "goal_id": "h-files",
        "text": "write then read",
        "steps": [
            {"id": "w", "tool": "write_file", "args": {"path": "notes/h.txt", "content": "kept"}},
            {"id": "r", "tool": "read_file", "depends_on": ["w"], "args": {"path": "notes/h.txt"}},
        ],
        "expect": {"equals": "kept"},
    },
    {
        "command_id": "h-rejected",
        "goal_id": "h-rejected",
        "text": "bad tool",
        "steps": [{"tool": "teleport", "args": {}}],
    },
    {
        "command_id": "h-toolfail",
        "goal_id": "h-toolfail",
        "text": "division by zero",
        "steps": [{"tool": "calculator", "args": {"expression": "1/0"}}],
        "max_iterations": 1,
    },
]
VIEWS = {
    "goals": "SELECT goal_id, text, status, iterations, score, result FROM goals ORDER BY goal_id",
    "tasks": "SELECT goal_id, task_id, iteration, tool, status, attempts, output FROM tasks ORDER BY goal_id, iteration, task_id",
    "facts": "SELECT goal_id, key, value FROM facts ORDER BY goal_id, key",
    "trajectory": "SELECT goal_id, step, type, actor, summary FROM trajectory ORDER BY goal_id, step",
}


async def main(out: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    with EmbeddedNats(tmp / "nats", durability="os") as server:
        settings = replace(Settings(), nats_urls=(server.url,), data_dir=tmp, workspace=tmp / "ws")
        nc = await connect(settings, "recorder")
        await provision(nc.jetstream(), settings)
        platform = InProcessPlatform(settings)
        platform.start()
        client = AgoraClient(nc)
        for goal in GOALS:
            await client.submit(goal)
            await client.wait_for_outcome(goal["goal_id"], timeout_s=60)
        await asyncio.sleep(2.0)  # memory's last observations, the projector's batch
        await projector_caught_up(nc, timeout_s=30)
        views = {}
        for name, sql in VIEWS.items():
            reply = await query(nc, sql)
            views[name] = {"columns": reply.columns, "rows": reply.rows}
        await platform.stop()
        reader = await StreamReader(nc, "AGORA_EVENTS", "agora.events.>", wire=False).open()
        messages = []
        js = nc.jetstream()
        info = await js.stream_info("AGORA_EVENTS")
        for seq in range(1, info.state.last_seq + 1):
            m = await js.get_msg("AGORA_EVENTS", seq)
            messages.append(
                {
                    "seq": seq,
                    "subject": m.subject,
                    "headers": dict(m.headers or {}),
                    "payload": m.data.decode(),
                }
            )
        await reader.close()
        await nc.close()
    Path(out).write_text(
        json.dumps(
            {
                "recorded_with": sys.argv[2] if len(sys.argv) > 2 else "",
                "commands": GOALS,
                "messages": messages,
                "views": views,
            },
            indent=1,
        )
    )
    print(len(messages), "messages")


asyncio.run(main(sys.argv[1]))
