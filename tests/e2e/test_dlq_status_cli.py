"""`agora dlq …` and `agora status` as a user runs them: real processes against a real server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys

from nats.aio.client import Client as NatsClient

from events.subjects import INTAKE_GOAL
from infra.clients.dead_letters import list_dead_letters
from infra.clients.goals import AgoraClient
from infra.platform.stats import collect_stats
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.support import wait_until

BINARY = b"\xff\xfe\x00 not a command"


async def _agora(settings: Settings, *args: str) -> tuple[int, str, str]:
    """Without blocking this loop: the in-process services must keep answering meanwhile."""
    assert settings.nats_urls is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infra.cli",
        *args,
        env={
            **env,
            "AGORA_NATS_URL": settings.nats_urls[0],
            "AGORA_DATA_DIR": str(settings.data_dir),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_dlq_commands_and_status_from_the_command_line(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform, settings: Settings
) -> None:
    await nc.jetstream().publish(INTAKE_GOAL, BINARY, headers={"Nats-Msg-Id": "c-binary"})

    async def listed() -> bool:
        return len(await list_dead_letters(nc)) == 1

    await wait_until(listed, timeout_s=20, what="the binary intake listed")
    _, out, _ = await _agora(settings, "dlq", "list", "--json")
    [row] = json.loads(out)
    assert (row["consumer"], row["reason"], row["redriven"]) == ("planner", "undecodable", False)

    code, out, err = await _agora(settings, "dlq", "show", str(row["id"]), "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert base64.b64decode(shown["data_b64"]) == BINARY
    assert shown["data_text"] is None  # binary: no text rendering
    assert shown["headers"]["Nats-Msg-Id"] == "c-binary"
    assert (shown["stream"], shown["deliveries"]) == ("AGORA_INTAKE", 1)

    code, out, _ = await _agora(settings, "dlq", "show", str(row["id"]))
    assert code == 0
    assert "00000000  ff fe 00 20 6e 6f 74" in out  # the hex dump of the binary bytes
    assert "undecodable" in out

    async def all_answer() -> bool:
        return len(await collect_stats(nc, timeout_s=0.3)) == 5

    await wait_until(all_answer, timeout_s=10, what="every service's stats")
    code, out, _ = await _agora(settings, "status", "--json")
    assert code == 1  # a dead letter waits
    status = json.loads(out)
    assert status["dead_letters"]["records"] == 1
    code, out, _ = await _agora(settings, "status")
    assert "dead letters" in out
    assert "AGORA_EVENTS/executor" in out

    code, out, _ = await _agora(settings, "dlq", "redrive", str(row["id"]))
    assert code == 0
    assert f"dead letter {row['id']} redriven to planner" in out
    code, out, _ = await _agora(settings, "dlq", "redrive", str(row["id"]))
    assert code == 0
    assert "was redriven before" in out
    # Nothing was fixed: the planner cannot read the copy either, and says so in a new record.

    async def failed_again() -> bool:
        return len(await list_dead_letters(nc)) == 2

    await wait_until(failed_again, timeout_s=20, what="the unfixed redrive dead-lettered")
    [_, again] = await list_dead_letters(nc)
    assert again.letter is not None
    assert (again.letter.consumer, again.letter.reason) == ("redrive-planner", "undecodable")
    assert again.letter.data == BINARY
    code, out, _ = await _agora(settings, "dlq", "redrive", "--all", "--json")
    assert [r["id"] for r in json.loads(out)] == [again.seq]

    code, _, err = await _agora(settings, "dlq", "purge", "--older-than", "soon")
    assert code == 2
    assert "not a duration" in err
    code, out, _ = await _agora(settings, "dlq", "purge", "--older-than", "1h", "--json")
    assert json.loads(out)["purged"] == 0

    code, _, err = await _agora(settings, "dlq", "show", "4242")
    assert code == 2
    assert "no dead letter 4242" in err
