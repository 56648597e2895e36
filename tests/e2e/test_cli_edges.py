"""The `agora` command where users hit rough edges: Ctrl-C, time-outs, pipes, a server that is
down, bad ids, cut results. Real processes against a real `agora up`; a pty where the
terminal matters (Ctrl-C is the terminal's ^C, the spinner only shows on a terminal)."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_cli import AGORA, _agora, _env, into_a_closed_pipe, running_platform

__all__ = ["running_platform"]  # the fixture, shared with test_cli

SLOW_GOAL = ["goal", "sleep a while", "--step", 'sleep:{"seconds": 4}', "--wait"]


class Terminal:
    """A command on a pseudo-terminal of its own: what a user at a shell runs."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its controlling terminal
            os.execvpe(args[0], args, env)
        self.screen = b""

    def read_until(self, text: str, timeout_s: float = 30.0, *, times: int = 1) -> str:
        deadline = time.monotonic() + timeout_s
        while self.screen.count(text.encode()) < times:
            assert time.monotonic() < deadline, f"no {text!r} on screen:\n{self.screen.decode()}"
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    self.screen += os.read(self.fd, 65536)
                except OSError:  # the command exited and its terminal closed
                    break
        return self.screen.decode(errors="replace")

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def exit_code(self, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.read_until("", 0.1)
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            assert time.monotonic() < deadline, "the command did not exit"
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                with contextlib.suppress(OSError):  # its terminal closed as it exited
                    self.screen += os.read(self.fd, 65536)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_goal_id_with_dots_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    started = time.monotonic()
    result = _agora("goal", "hi", "--goal-id", "g.with.dots", "--wait", env=_env(tmp_path))
    assert result.returncode == 2
    assert "no dots or spaces" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 10


def test_a_server_that_is_down_is_reported_not_retried_for_ever(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "AGORA_NATS_URL": f"nats://127.0.0.1:{_free_port()}"}
    started = time.monotonic()
    result = _agora("goals", env=env, timeout=60)
    assert result.returncode == 2
    assert "cannot reach the NATS server" in result.stderr
    assert "agora up" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30


@pytest.mark.slow
def test_wait_timing_out_says_the_goal_keeps_running(running_platform: dict[str, str]) -> None:
    result = _agora(*SLOW_GOAL, "--goal-id", "g-slow", "--timeout", "1", env=running_platform)
    assert result.returncode == 3, result.stderr
    assert "g-slow did not finish within 1s" in result.stderr
    assert "keeps running" in result.stderr
    assert "Traceback" not in result.stderr
    # It did keep running: following it again (a resend of the goal id changes nothing)
    # sees it complete.
    followed = _agora(*SLOW_GOAL, "--goal-id", "g-slow", "--json", env=running_platform)
    assert followed.returncode == 0, followed.stderr
    assert json.loads(followed.stdout.splitlines()[-1])["type"] == "goal_completed"


@pytest.mark.slow
def test_ctrl_c_on_goal_wait_and_tail_ends_without_a_traceback(
    running_platform: dict[str, str],
) -> None:
    waiting = Terminal([*AGORA, *SLOW_GOAL, "--goal-id", "g-interrupted"], running_platform)
    waiting.read_until("g-interrupted: running for")  # the spinner, with the elapsed time
    waiting.type(b"\x03")
    assert waiting.exit_code() == 130
    assert "stopped following goal g-interrupted; it keeps running" in waiting.screen.decode()
    assert b"Traceback" not in waiting.screen

    for command in (["goals"], ["status"]):
        watching = Terminal([*AGORA, *command, "--watch", "0.5"], running_platform)
        watching.read_until("g-interru" if command == ["goals"] else "consumers")
        watching.read_until("refreshed", times=3)  # it does refresh
        watching.type(b"\x03")
        assert watching.exit_code() == 0, watching.screen.decode()
        assert b"Traceback" not in watching.screen

    tailing = Terminal([*AGORA, "tail", "--all"], running_platform)
    tailing.read_until("g-interrupted")
    tailing.type(b"\x03")
    assert tailing.exit_code() == 0
    assert b"Traceback" not in tailing.screen


@pytest.mark.slow
def test_closed_pipes_cut_rows_dags_files_and_whole_reasons(
    running_platform: dict[str, str], tmp_path: Path
) -> None:
    env = running_platform
    dag = _agora(
        "goal",
        "a dag",
        "--goal-id",
        "g-dag",
        "--step",
        'a=calculator:{"expression": "6*7"}',
        "--step",
        'b<a=echo:{"text": "answer {{steps.a.output}}"}',
        "--expect",
        "answer 42",
        "--wait",
        env=env,
    )
    assert dag.returncode == 0, dag.stdout + dag.stderr
    command = {
        "goal_id": "g-file",
        "text": "from a file",
        "steps": [
            {"id": "x", "tool": "echo", "args": {"text": "one"}},
            {"id": "y", "tool": "echo", "args": {"text": "two"}},
            {
                "id": "z",
                "tool": "echo",
                "args": {"text": "{{steps.x.output}}+{{steps.y.output}}"},
                "depends_on": ["x", "y"],
            },
        ],
        "expect": {"equals": "one+two"},
    }
    from_stdin = subprocess.run(
        [*AGORA, "goal", "--file", "-", "--wait"],
        input=json.dumps(command),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert from_stdin.returncode == 0, from_stdin.stdout + from_stdin.stderr
    (tmp_path / "goal.json").write_text(json.dumps({**command, "goal_id": "g-file-2"}))
    from_file = _agora("goal", "--file", str(tmp_path / "goal.json"), "--wait", env=env)
    assert from_file.returncode == 0, from_file.stderr

    # A rejection's reason is whole: the part that says what to fix is at its end.
    bad = _agora(
        "goal", "x", "--goal-id", "g-bad", "--expect", '{"contians": "391"}', "--wait", env=env
    )
    assert bad.returncode == 1
    assert "contians" in bad.stdout
    assert "…" not in bad.stdout

    # Rows cut at --max-rows are never silent in csv or json.
    for fmt in ("csv", "json"):
        cut = _agora("query", "SELECT * FROM events", "--format", fmt, "--max-rows", "2", env=env)
        assert cut.returncode == 1, cut.stderr
        assert "more than the 2 row(s) printed" in cut.stderr

    # The trajectory shows each event's stream sequence, what `agora fork --at-seq` takes.
    shown = _agora("trajectory", "g-dag", "--format", "json", env=env)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert all(isinstance(row["seq"], int) for row in rows)
    assert [row["seq"] for row in rows] == sorted(row["seq"] for row in rows)

    # A reader that goes away: `agora tail --all | head -1`.
    with subprocess.Popen(
        [*AGORA, "tail", "--all"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as tail:
        assert tail.stdout is not None
        assert tail.stdout.readline()
        tail.stdout.close()  # what head does after its first line
        tail.send_signal(signal.SIGWINCH)  # harmless; the next write meets the closed pipe
        _, stderr = tail.communicate(timeout=30)
    assert tail.returncode == 141, stderr
    assert b"Traceback" not in stderr

    # Rows to a reader that has gone (closed before the command could have written): 141 in
    # every format, the plain `agora query` as the one typer reads (--as-of-seq).
    many = ["query", "SELECT repeat('x', 100) AS x FROM range(2000)", "--max-rows=2000"]
    for args in (["--format=json"], ["--format=csv"], ["--format=json", "--as-of-seq", "1"]):
        code, stderr = into_a_closed_pipe(*many, *args, env=env)
        assert code == 141, (args, stderr)
        assert b"Traceback" not in stderr
