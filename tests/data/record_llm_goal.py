# ruff: noqa: ASYNC240
"""Record the event log of goals that exercise every kind of step, for the timeline and trace
tests: a model-planned goal with a ReAct task, an LLM judge and one revision, and a DAG of
explicit steps whose first two run in parallel.

Run from the repository root: python tests/data/record_llm_goal.py tests/data/llm-goal.json
The scripted model is the one of tests/integration/test_llm_goal.py, over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, ".")
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.platform.embedded import EmbeddedNats
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.integration.test_llm_goal import ACCEPT, BETTER_PLAN, REACT_PLAN, plans
from tests.llm_servers import ScriptedLlmServer, llm_settings

REVISE = {"score": 0.3, "verdict": "revise", "feedback": "say: the answer is N", "criteria": []}
GOALS = [
    {"command_id": "r-llm", "goal_id": "r-llm", "text": "what is 17*23? say the answer"},
    {
        "command_id": "r-dag",
        "goal_id": "r-dag",
        "text": "two sleeps side by side, then join",
        "steps": [
            {"id": "a", "tool": "sleep", "args": {"seconds": 0.2}},
            {"id": "b", "tool": "sleep", "args": {"seconds": 0.1}},
            {"id": "c", "tool": "echo", "depends_on": ["a", "b"], "args": {"text": "joined"}},
        ],
        "expect": {"contains": "joined"},
    },
]


async def main(out: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    with (
        EmbeddedNats(tmp / "nats", durability="os") as server,
        ScriptedLlmServer("openai") as model,
    ):
        model.set_script(plans(REACT_PLAN, BETTER_PLAN, verdicts=(REVISE, ACCEPT)))
        base = replace(Settings(), nats_urls=(server.url,), data_dir=tmp, workspace=tmp / "ws")
        settings = llm_settings(base, model)
        nc = await connect(settings, "recorder")
        await provision(nc.jetstream(), settings)
        platform = InProcessPlatform(settings)
        platform.start("planner", "executor", "memory", "evaluator")
        client = AgoraClient(nc)
        for goal in GOALS:
            await client.submit(goal)
            await client.wait_for_outcome(goal["goal_id"], timeout_s=60)
        await platform.stop()
        js = nc.jetstream()
        info = await js.stream_info("AGORA_EVENTS")
        messages = []
        for seq in range(1, info.state.last_seq + 1):
            m = await js.get_msg("AGORA_EVENTS", seq)
            if m.subject.split(".")[2] in {g["goal_id"] for g in GOALS}:
                messages.append({"seq": seq, "subject": m.subject, "payload": m.data.decode()})
        await nc.close()
    record = {"commands": GOALS, "messages": messages}
    Path(out).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(messages)} messages to {out}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
