"""Acceptance 2 of issue 8: the sandbox contains what a ``python`` tool call may try.

Real processes, real limits, a real nats-server with generated credentials: a fork bomb, a
2 GB allocation and a busy loop are stopped; the program cannot read the NATS credentials
nor connect to the server; meanwhile the executor keeps running other tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from events.catalog import GoalCompleted, GoalFailed
from infra.bus.connection import connect
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.platform.auth import ADMIN, credentials_path, load_credentials
from infra.settings import Settings
from services.executor.sandbox import Sandbox, SandboxLimits
from tests.conftest import InProcessPlatform
from tests.support import wait_until

QUICK = SandboxLimits(cpu_s=1, memory_bytes=256 * 1024 * 1024, processes=16, wall_s=20.0)


async def test_a_program_runs_with_an_empty_environment_in_a_fresh_directory() -> None:
    result = await Sandbox(QUICK).run_python(
        "import os, sys\nprint(sorted(os.environ), os.listdir('.'), sys.stdin.read())",
        stdin="hello",
    )
    assert result.ok, result.stderr
    # LC_CTYPE: set by the interpreter itself (PEP 538), not inherited.
    assert result.stdout.strip() in ("[] ['main.py'] hello", "['LC_CTYPE'] ['main.py'] hello")


async def test_a_fork_bomb_is_contained_and_cleaned_up() -> None:
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    limits = replace(QUICK, wall_s=3.0)
    started = time.monotonic()
    result = await Sandbox(limits).run_python(bomb)
    assert not result.ok
    assert result.timed_out or result.exit_code != 0
    assert time.monotonic() - started < limits.wall_s + 5
    # Nothing of it survives: the launcher's PID namespace died with it.
    probe = await Sandbox(QUICK).run_python("import os; print(len(os.listdir('/proc')))")
    assert probe.ok, probe.stderr


async def test_a_2gb_allocation_fails_inside_the_program() -> None:
    result = await Sandbox(QUICK).run_python("data = bytearray(2 * 1024**3)\nprint('got it')")
    assert not result.ok
    assert "got it" not in result.stdout
    assert "MemoryError" in result.describe_failure()


async def test_a_10s_busy_loop_is_killed_by_the_cpu_limit() -> None:
    program = (
        "import time\nend = time.time() + 10\nwhile time.time() < end:\n    pass\nprint('done')"
    )
    result = await Sandbox(QUICK).run_python(program)
    assert not result.ok
    assert not result.timed_out, "the CPU limit, not the wall clock, should stop it"
    assert result.exit_code in (128 + 9, 128 + 24), result.describe_failure()
    assert result.stdout == ""


async def test_the_wall_clock_stops_a_sleeping_program() -> None:
    result = await Sandbox(replace(QUICK, wall_s=1.0)).run_python("import time; time.sleep(30)")
    assert result.timed_out
    assert result.describe_failure() == "killed: wall-clock timeout"


async def test_written_files_are_capped_and_leave_nothing_behind() -> None:
    marker = f"agora-sandbox-leak-{uuid.uuid4().hex}"
    program = f"""
import os
for directory in ("/tmp", "/dev/shm", "."):
    try:
        with open(os.path.join(directory, {marker!r}), "wb") as handle:
            for _ in range(100):
                handle.write(b"x" * 1024 * 1024)
        print("wrote 100 MiB to", directory)
    except OSError as exc:
        print("stopped in", directory, exc.errno)
"""
    limits = replace(QUICK, file_bytes=1024**3, scratch_bytes=8 * 1024 * 1024)
    result = await Sandbox(limits).run_python(program)
    assert result.ok, result.stderr
    assert "wrote" not in result.stdout
    assert result.stdout.count("stopped in") == 3
    assert result.isolation.get("scratch"), result.isolation
    assert not _left_on_host(marker)


def _left_on_host(name: str) -> list[Path]:
    return [p for p in (Path("/tmp") / name, Path("/dev/shm") / name) if p.exists()]


async def test_the_program_cannot_read_nats_credentials_or_reach_the_server(
    secure_settings: Settings,
) -> None:
    assert secure_settings.nats_urls is not None
    port = int(secure_settings.nats_urls[0].rsplit(":", 1)[1])
    secret_file = credentials_path(secure_settings.nats_dir, "executor")
    secret = load_credentials(secret_file).password
    sandbox = Sandbox(QUICK, hide=[secure_settings.data_dir])
    program = f"""
import socket
for path in [{str(secret_file)!r}, {str(secret_file.parent / "admin.json")!r}]:
    try:
        print("READ", open(path).read())
    except OSError as exc:
        print("refused read:", type(exc).__name__)
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    print("CONNECTED")
except OSError as exc:
    print("refused connect:", exc)
"""
    result = await sandbox.run_python(program)
    assert result.ok, result.stderr
    assert secret not in result.stdout
    assert "READ" not in result.stdout
    assert "CONNECTED" not in result.stdout
    assert result.stdout.count("refused read") == 2
    assert "refused connect" in result.stdout
    assert result.isolation.get("network") == "isolated", result.isolation


async def test_the_executor_keeps_serving_while_a_program_burns_cpu(
    secure_settings: Settings,
) -> None:
    admin = await connect(secure_settings, "test-admin", identity=ADMIN)
    await provision(admin.jetstream(), secure_settings)
    await admin.close()
    platform = InProcessPlatform(secure_settings)
    platform.start("planner", "executor", "memory", "evaluator")
    nc = await connect(secure_settings, "test-client")
    try:
        client = AgoraClient(nc)
        busy = await client.submit(
            {
                "text": "burn",
                "steps": [{"tool": "python", "args": {"code": "while True: pass"}}],
                "max_iterations": 1,
            }
        )
        quick = await client.submit(
            {
                "text": "compute",
                "steps": [{"tool": "python", "args": {"code": "print(17 * 23)"}}],
                "expect": {"contains": "391"},
            }
        )
        quick_events = await client.wait_for_outcome(quick.goal_id, timeout_s=30)
        assert isinstance(quick_events[-1], GoalCompleted), quick_events[-1]
        busy_events = await client.wait_for_outcome(busy.goal_id, timeout_s=60)
        # The busy goal ends after the quick one, and it ends as a readable failure.
        assert isinstance(busy_events[-1], GoalFailed), busy_events
        failed = [e for e in busy_events if type(e).__name__ == "TaskFailed"]
        assert failed, [type(e).__name__ for e in busy_events]
        assert "killed" in str(failed[0].error)  # type: ignore[attr-defined]
        # ... and the quick goal, submitted after it, was done while it was still burning.
        assert quick_events[-1].occurred_at < failed[0].occurred_at
    finally:
        await nc.close()
        await platform.stop()


def _alive_with(marker: str) -> list[int]:
    """Host pids whose command line carries ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def _escape(marker: str, how: str) -> str:
    """A program that leaves its process group (and more), then sleeps as ``marker``."""
    return (
        "import ctypes, os, sys, time\n"
        f"how = {how!r}\n"
        "if 'fork' in how and os.fork():\n"
        "    time.sleep(600)\n"
        "os.setsid()\n"
        "if 'pdeathsig' in how:\n"
        "    ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)\n"
        "os.execv(sys.executable,"
        f" [sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}])\n"
    )


@pytest.mark.parametrize("how", ["setsid", "setsid+pdeathsig", "fork+setsid+pdeathsig"])
async def test_nothing_a_program_starts_outlives_its_run(how: str) -> None:
    marker = f"agora-escape-{uuid.uuid4().hex}"
    result = await Sandbox(replace(QUICK, wall_s=1.0)).run_python(_escape(marker, how))
    assert result.timed_out
    leftovers = _alive_with(marker)
    for pid in leftovers:  # a failing run must not leave them for the next test
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert leftovers == []


@pytest.mark.skipif(
    os.geteuid() != 0, reason="a uid per run needs root; a user's runs share its process limit"
)
async def test_more_runs_than_one_uid_could_hold_all_succeed() -> None:
    # Each run forks: 24 runs of 2 processes each, over the per-run limit of 16 if they all
    # counted against one shared user.
    program = (
        "import os, time\npid = os.fork()\ntime.sleep(0.5)\n"
        "if pid:\n    os.waitpid(pid, 0)\n    print('ok')\n"
    )
    sandbox = Sandbox(QUICK)
    results = await asyncio.gather(*(sandbox.run_python(program) for _ in range(24)))
    failures = [r.describe_failure() for r in results if not r.ok]
    assert failures == []
    assert all(r.stdout.strip() == "ok" for r in results)
    assert len({str(r.isolation["user"]) for r in results}) == len(results)  # one uid each


async def test_runs_beyond_the_concurrency_wait_their_turn() -> None:
    sandbox = Sandbox(QUICK, concurrency=2)
    started = time.monotonic()
    results = await asyncio.gather(
        *(sandbox.run_python("import time; time.sleep(0.5); print('done')") for _ in range(4))
    )
    assert [r.stdout.strip() for r in results] == ["done"] * 4
    assert time.monotonic() - started >= 1.0  # two rounds of two


async def test_runs_of_an_executor_that_died_are_killed_by_the_next_one(tmp_path: Path) -> None:
    marker = f"agora-escape-{uuid.uuid4().hex}"
    program = tmp_path / "escape.py"
    program.write_text(_escape(marker, "setsid+pdeathsig"))
    runner = (
        "import asyncio, sys\n"
        "from dataclasses import replace\n"
        "from services.executor.sandbox import Sandbox, SandboxLimits\n"
        "code = open(sys.argv[1]).read()\n"
        "asyncio.run(Sandbox(replace(SandboxLimits(), wall_s=60.0)).run_python(code))\n"
    )
    executor = await asyncio.create_subprocess_exec(sys.executable, "-c", runner, str(program))
    try:

        async def program_running() -> bool:
            return bool(_alive_with(marker))

        await wait_until(program_running, timeout_s=20, what="the program to start")
        executor.kill()  # SIGKILL: the executor cleans up nothing itself
        await executor.wait()
        if not Sandbox(QUICK).cgroup_state.startswith("cgroup"):
            pytest.skip(f"no run cgroups here: {Sandbox(QUICK).cgroup_state}")

        async def program_gone() -> bool:
            return not _alive_with(marker)

        # The launcher died with the executor; the program, which cleared its own parent-death
        # signal, is gone once the next Sandbox has looked for runs nobody owns.
        await wait_until(program_gone, timeout_s=10, what="the orphaned run to be killed")
    finally:
        for pid in _alive_with(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if executor.returncode is None:
            executor.kill()
            await executor.wait()
