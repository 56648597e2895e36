"""The projector's DuckDB views agree with the event log, survive SIGKILL, replay exactly."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen

import pytest
from nats.aio.client import Client as NatsClient

from events.model import event_type
from events.subjects import is_reserved_goal_id
from infra.bus.reader import stream_last_seq
from infra.clients.goals import AgoraClient
from infra.clients.query import QueryFailedError, ask, projector_caught_up
from infra.settings import Settings
from projections.replay import replay_into
from projections.service import database_path
from projections.store import ProjectionStore
from tests.conftest import InProcessPlatform
from tests.support import wait_until

VIEWS_CHECKED = ("goals", "tasks", "facts", "trajectory", "events")


def _goal(i: int) -> dict[str, object]:
    return {
        "goal_id": f"p-{i}",
        "text": f"projected goal {i}",
        "steps": [
            {"tool": "calculator", "args": {"expression": f"{i}+{i}"}},
            {"tool": "echo", "args": {"text": "twice is {{steps.s1.output}}"}},
        ],
        "expect": {"contains": f"twice is {2 * i}"},
    }


async def _submit_and_finish(client: AgoraClient, nc: NatsClient, goals: range) -> None:
    await asyncio.gather(*(client.submit(_goal(i)) for i in goals))
    js = nc.jetstream()

    async def finished() -> bool:
        info = await js.stream_info("AGORA_EVENTS", subjects_filter="agora.events.*.goal_completed")
        return len(info.state.subjects or {}) >= len(goals) + goals.start

    await wait_until(finished, timeout_s=90, what="the goals to complete")


async def _rebuilt_checksums(
    nc: NatsClient, path: Path, until_seq: int | None = None, batch: int | None = None
) -> dict[str, str]:
    with ProjectionStore.open(path, locked=False) as store:
        if batch is None:
            await replay_into(store, nc, until_seq=until_seq)
        else:
            await replay_into(store, nc, until_seq=until_seq, batch=batch)
        # Nothing left in the write-ahead log: the rebuild is in the file itself.
        assert _wal_bytes(path) == 0
        return {view: store.checksums()[view] for view in VIEWS_CHECKED}


def _wal_bytes(path: Path) -> int:
    wal = Path(f"{path}.wal")
    return wal.stat().st_size if wal.exists() else 0


def _stop(projector: Popen[bytes]) -> None:
    """SIGTERM: the projector drains and closes its database cleanly."""
    projector.terminate()
    assert projector.wait(15) == 0


def _file_checksums(path: Path) -> dict[str, str]:
    with ProjectionStore.open(path) as store:
        return {view: store.checksums()[view] for view in VIEWS_CHECKED}


@pytest.mark.slow
async def test_views_agree_with_the_event_log_after_200_goals(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    await _submit_and_finish(client, nc, range(200))
    await projector_caught_up(nc)

    from tests.support import all_events

    log = await all_events(nc)
    per_goal_type = Counter((e.goal_id, event_type(e)) for e in log)
    reply = await ask(
        nc, "SELECT goal_id, type, count(*) FROM events GROUP BY ALL", max_rows=100_000
    )
    assert {(g, t): n for g, t, n in reply.rows} == dict(per_goal_type)

    goals = await ask(
        nc, "SELECT status, count(*), min(iterations), max(score) FROM goals GROUP BY status"
    )
    assert goals.rows == [["completed", 200, 1, 1.0]]
    tasks = await ask(
        nc,
        "SELECT status, count(*), max(attempts), count(DISTINCT goal_id) FROM tasks GROUP BY ALL",
    )
    assert tasks.rows == [["completed", 400, 1, 200]]
    result = await ask(nc, "SELECT result FROM goals WHERE goal_id = 'p-21'")
    assert result.rows == [["twice is 42"]]

    # trajectory: step n of a goal is its n-th event in stream order, with the same type.
    steps = await ask(
        nc,
        "SELECT goal_id, step, stream_seq, type FROM trajectory ORDER BY goal_id, step",
        max_rows=100_000,
    )
    by_goal: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for goal_id, step, seq, kind in steps.rows:
        by_goal[goal_id].append((step, seq, kind))
    expected: dict[str, list[str]] = defaultdict(list)
    for event in log:
        if not is_reserved_goal_id(event.goal_id):  # the planner's lease is no goal
            expected[event.goal_id].append(event_type(event))
    assert set(by_goal) == set(expected)
    for goal_id, rows in by_goal.items():
        assert [step for step, _, _ in rows] == list(range(1, len(rows) + 1))
        seqs = [seq for _, seq, _ in rows]
        assert seqs == sorted(seqs)
        assert [kind for _, _, kind in rows] == expected[goal_id]


async def _kill_mid_backlog(
    nc: NatsClient, projector: Popen[bytes], start: int, target: int
) -> int:
    """SIGKILL the projector once its checkpoint moved past ``start``; returns where it was."""
    from infra.clients.query import projector_status

    seq = 0

    async def working() -> bool:
        nonlocal seq
        try:
            seq = int(str((await projector_status(nc))["last_seq"]))
        except QueryFailedError:
            return False  # not answering yet
        return seq > start or seq >= target

    await wait_until(working, timeout_s=30, what="the projector to work on its backlog")
    projector.send_signal(signal.SIGKILL)
    assert projector.wait(10) == -signal.SIGKILL
    return seq


@pytest.mark.slow
async def test_projector_sigkilled_mid_batch_loses_and_doubles_nothing(
    tmp_path: Path,
    settings: Settings,
    nc: NatsClient,
    client: AgoraClient,
    agents: InProcessPlatform,
    spawn_service: Callable[..., Popen[bytes]],
) -> None:
    await _submit_and_finish(client, nc, range(150))
    await agents.stop()
    target = await stream_last_seq(nc, "AGORA_EVENTS")
    db = database_path(settings)

    # A backlog of thousands of events in small batches: kill while it is being worked off.
    killed_at = [0]
    for _ in range(3):
        projector = spawn_service("projector", AGORA_PROJECTOR_BATCH="100")
        killed_at.append(await _kill_mid_backlog(nc, projector, killed_at[-1], target))
    assert any(0 < seq < target for seq in killed_at), f"no kill mid-backlog: {killed_at}"
    projector = spawn_service("projector")
    assert await projector_caught_up(nc) == target
    _stop(projector)

    live = _file_checksums(db)
    rebuilt = await _rebuilt_checksums(nc, tmp_path / "rebuilt.duckdb")
    assert live == rebuilt
    assert int(live["events"].split(":")[0]) == target


@pytest.mark.slow
async def test_rebuilds_are_identical_and_until_seq_equals_the_live_state_then(
    tmp_path: Path,
    settings: Settings,
    nc: NatsClient,
    client: AgoraClient,
    agents: InProcessPlatform,
    spawn_service: Callable[..., Popen[bytes]],
) -> None:
    await _submit_and_finish(client, nc, range(20))
    projector = spawn_service("projector")
    at_n = await projector_caught_up(nc)
    _stop(projector)
    live_at_n = _file_checksums(database_path(settings))
    await _submit_and_finish(client, nc, range(20, 40))
    assert await stream_last_seq(nc, "AGORA_EVENTS") > at_n

    first = await _rebuilt_checksums(nc, tmp_path / "one.duckdb")
    # Small batches, each gathered from several pulls that end mid-batch, build the same.
    second = await _rebuilt_checksums(nc, tmp_path / "two.duckdb", batch=50)
    assert first == second
    assert await _rebuilt_checksums(nc, tmp_path / "at_n.duckdb", until_seq=at_n) == live_at_n
    assert live_at_n != first


HOSTILE = {
    "INSERT INTO goals (goal_id) VALUES ('x')": "INSERT statements are not allowed",
    "CREATE TABLE t AS SELECT 1": "CREATE statements are not allowed",
    "DROP TABLE goals": "DROP statements are not allowed",
    "ATTACH '/tmp/other.duckdb' AS other": "ATTACH statements are not allowed",
    "COPY goals TO '/tmp/goals.csv'": "COPY statements are not allowed",
    "INSTALL httpfs": "INSTALL/LOAD statements are not allowed",
    "SET enable_external_access = true": "SET statements are not allowed",
    "SELECT * FROM read_csv('/etc/passwd')": "file system operations are disabled",
    "SELECT 1; DROP TABLE goals": "found 2 statements",
}


async def test_query_refuses_anything_but_one_read_only_select_and_survives_runaways(
    settings: Settings, nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    await _submit_and_finish(client, nc, range(3))
    await projector_caught_up(nc)
    before = await ask(nc, "SELECT count(*) FROM goals")

    for sql, mentions in HOSTILE.items():
        with pytest.raises(QueryFailedError) as refused:
            await ask(nc, sql)
        message = str(refused.value)
        assert message, sql
        assert mentions in message, f"{sql!r} refused with {message!r}"

    runaway = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    )
    with pytest.raises(QueryFailedError, match="time limit"):
        await ask(nc, runaway, timeout_s=settings.query_timeout_s + 20)
    after = await ask(nc, "SELECT count(*) FROM goals")
    assert after.rows == before.rows == [[3]]


async def test_queries_while_the_projector_writes_are_all_answered(
    nc: NatsClient, client: AgoraClient, platform: InProcessPlatform
) -> None:
    """Queries run on their own cursors; a batch being written never makes one fail."""
    await projector_caught_up(nc)  # the projector is up and answering
    goals = asyncio.ensure_future(_submit_and_finish(client, nc, range(150)))
    answered = 0
    while not goals.done():
        replies = await asyncio.gather(
            *(ask(nc, "SELECT count(*) FROM events", timeout_s=10) for _ in range(4))
        )
        answered += len(replies)
    await goals
    assert answered >= 8


async def test_a_query_with_min_seq_waits_for_the_views_to_include_it(
    client: AgoraClient, platform: InProcessPlatform
) -> None:
    submitted = await client.submit(
        {"text": "echo once", "steps": [{"tool": "echo", "args": {"text": "x"}}]}
    )
    outcome = await client.wait(submitted.goal_id, timeout_s=30)
    # Asked the moment the goal ended: the answer already includes its last event.
    reply = await client.trajectory(submitted.goal_id, min_seq=outcome.last_seq)
    assert reply.last_seq >= outcome.last_seq
    assert reply.rows[-1][1] == outcome.last_seq
    assert reply.rows[-1][3] == "goal_completed"
    # A sequence the log never reaches: an answer that says so, within the time limit.
    with pytest.raises(QueryFailedError, match="not min_seq"):
        await client.query("SELECT 1", min_seq=outcome.last_seq + 1_000_000)
