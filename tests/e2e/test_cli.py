"""The `agora` command as a user runs it: real processes, real server, real exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

AGORA = [sys.executable, "-m", "infra.cli"]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    return {
        **env,
        "AGORA_DATA_DIR": str(data_dir),
        "AGORA_DURABILITY": "os",
        "AGORA_NATS_PORT": "0",  # tests never take the well-known port
        "AGORA_UI": "off",  # the dashboard's own tests start it (test_dashboard_browser.py)
    }


def _agora(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGORA, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def into_a_closed_pipe(*args: str, env: dict[str, str]) -> tuple[int, bytes]:
    """Run ``agora ARGS`` with its stdout's reader gone before it writes (`| head` that has
    already left): its exit code and stderr."""
    with subprocess.Popen(
        [*AGORA, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as piped:
        assert piped.stdout is not None
        piped.stdout.close()
        _, stderr = piped.communicate(timeout=30)
    return piped.returncode, stderr


def test_schema_prints_json_schema_of_intake_events_and_tools(tmp_path: Path) -> None:
    result = _agora("schema", env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    intake = schema["intake"]["agora.intake.goal"]
    assert "text" in json.dumps(schema["intake"])
    assert intake
    assert {"goal_accepted", "task_completed", "goal_failed"} <= set(schema["events"]["types"])
    assert set(schema["tools"]) >= {
        "calculator",
        "echo",
        "sleep",
        "http_get",
        "read_file",
        "write_file",
    }


def test_goal_without_a_running_platform_says_how_to_start_one(tmp_path: Path) -> None:
    result = _agora("goal", "compute 1+1", env=_env(tmp_path))
    assert result.returncode == 2
    assert "agora up" in result.stderr


@pytest.mark.slow
def test_demo_runs_three_sample_goals_and_exits_zero(tmp_path: Path) -> None:
    result = _agora("demo", env=_env(tmp_path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every sample goal completed" in result.stdout
    assert result.stdout.count("goal_completed") >= 3
    assert "plan_revised" in result.stdout  # the third sample goes through a revision
    assert "no LLM configured" in result.stdout


@pytest.fixture
def running_platform(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = _env(tmp_path)
    up = subprocess.Popen([*AGORA, "up"], env=env, stdout=subprocess.DEVNULL)
    discovery = tmp_path / "nats" / "server.json"
    deadline = time.monotonic() + 30
    while not discovery.exists():
        assert up.poll() is None, "agora up exited early"
        assert time.monotonic() < deadline, "agora up did not start its server"
        time.sleep(0.05)
    # Up once its projector answers queries (tests query right after submitting).
    while _agora("query", "SELECT 1", env=env).returncode != 0:
        assert up.poll() is None, "agora up exited early"
        assert time.monotonic() < deadline, "agora up's projector never answered a query"
    yield env
    up.send_signal(signal.SIGINT)
    assert up.wait(30) == 0
    assert not discovery.exists(), "the embedded server was not stopped cleanly"


@pytest.mark.slow
def test_up_then_goal_wait_follows_the_goal_to_completion(
    running_platform: dict[str, str],
) -> None:
    result = _agora(
        "goal",
        "multiply then report",
        "--step",
        'calculator:{"expression": "17*23"}',
        "--step",
        'echo:{"text": "answer {{steps.s1.output}}"}',
        "--expect",
        "391",
        "--wait",
        "--json",
        env=running_platform,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert "goal_id" in lines[0]
    assert lines[-1]["type"] == "goal_completed"
    assert lines[-1]["result"] == "answer 391"

    failing = _agora(
        "goal",
        "impossible",
        "--step",
        'echo:{"text": "no"}',
        "--expect",
        "yes",
        "--max-iterations",
        "1",
        "--wait",
        env=running_platform,
    )
    assert failing.returncode == 1
    assert "goal_failed" in failing.stdout


@pytest.mark.slow
def test_query_goals_trajectory_replay_export_time_travel(
    running_platform: dict[str, str], tmp_path: Path
) -> None:
    env = running_platform
    for n in (1, 2):
        done = _agora(
            "goal",
            f"compute {n}+{n}",
            "--goal-id",
            f"cli-{n}",
            "--expect",
            str(2 * n),
            "--wait",
            env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    # The projector catches up within moments; ask until it has both goals.
    deadline = time.monotonic() + 30
    while True:
        counted = _agora(
            "query",
            "SELECT count(*) AS n FROM goals WHERE status = 'completed'",
            "--format",
            "json",
            env=env,
        )
        assert counted.returncode == 0, counted.stderr
        if json.loads(counted.stdout) == [{"n": 2}]:
            break
        assert time.monotonic() < deadline, counted.stdout
        time.sleep(0.1)

    listed = _agora("goals", "--format", "csv", env=env)
    assert listed.returncode == 0
    assert "cli-1" in listed.stdout
    assert "completed" in listed.stdout

    timeline = _agora("trajectory", "cli-2", "--format", "json", env=env)
    steps = json.loads(timeline.stdout)
    assert steps[0]["type"] == "goal_accepted"
    # Memory may record the last task's observation after the goal completed: both are true.
    types = [s["type"] for s in steps]
    assert types.count("goal_completed") == 1
    assert set(types[types.index("goal_completed") + 1 :]) <= {"memory_stored"}
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))

    refused = _agora("query", "DROP TABLE goals", env=env)
    assert refused.returncode == 2
    assert "DROP statements are not allowed" in refused.stderr

    # Time travel: as of the first goal's last event, the second goal does not exist yet.
    first_end = _agora(
        "query",
        "SELECT max(stream_seq) AS s FROM events WHERE goal_id = 'cli-1'",
        "--format",
        "json",
        env=env,
    )
    as_of = json.loads(first_end.stdout)[0]["s"]
    then = _agora(
        "query",
        "SELECT goal_id FROM goals ORDER BY goal_id",
        "--as-of-seq",
        str(as_of),
        "--format",
        "json",
        env=env,
    )
    assert then.returncode == 0, then.stderr
    assert json.loads(then.stdout) == [{"goal_id": "cli-1"}]

    rebuilt = tmp_path / "copy.duckdb"
    replayed = _agora("replay", "--to", str(rebuilt), env=env)
    assert replayed.returncode == 0, replayed.stderr
    import duckdb

    with duckdb.connect(str(rebuilt), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM goals").fetchone() == (2,)
    again = _agora("replay", "--to", str(rebuilt), env=env)
    assert again.returncode == 2
    assert "--force" in again.stderr

    exported = _agora("export", "--parquet", str(tmp_path / "parquet"), env=env)
    assert exported.returncode == 0, exported.stderr
    with duckdb.connect() as db:
        rows = db.execute(
            f"SELECT count(*) FROM read_parquet('{tmp_path / 'parquet' / 'tasks.parquet'}')"
        ).fetchone()
    assert rows == (2,)

    live = _agora("replay", "--rebuild", env=env)
    assert live.returncode == 0, live.stdout + live.stderr
    recounted = _agora("query", "SELECT count(*) AS n FROM goals", "--format", "json", env=env)
    assert json.loads(recounted.stdout) == [{"n": 2}]
