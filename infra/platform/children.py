"""The supervisor's children die with it, and a new ``agora up`` names what an old one left.

``agora up`` killed with SIGKILL runs no clean-up, so its children are made to follow it by
the kernel: each is started through a tiny exec wrapper that sets ``PR_SET_PDEATHSIG``
(SIGTERM: the services drain, nats-server shuts down cleanly) and then execs the real
command; the signal survives ``execve``. The wrapper checks that its parent is still the
supervisor after setting it, closing the window where the supervisor died first.

Should something be left all the same (an older agora, a platform without
``PR_SET_PDEATHSIG``), :func:`find_leftovers` finds agora's own processes for a data dir (the
server, the services, the dashboard) by their command line and environment, so that a restart
can say which processes hold the port and how to stop them instead of only "port in use".
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Leftover", "classify", "describe_leftovers", "die_with_parent", "find_leftovers"]

# Runs as `python -c WRAPPER <supervisor pid> <argv...>`: standard library only, no agora.
_WRAPPER = (
    "import ctypes, os, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    ctypes.CDLL(None).prctl(1, {signal}, 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(0)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def die_with_parent(argv: Sequence[str], *, sig: int = signal.SIGTERM) -> list[str]:
    """``argv`` wrapped so the process gets ``sig`` when this process dies, however it dies."""
    return [sys.executable, "-c", _WRAPPER.format(signal=int(sig)), str(os.getpid()), *argv]


@dataclass(frozen=True, slots=True)
class Leftover:
    pid: int
    what: str  # "nats-server", "planner", ...


def classify(
    argv: Sequence[str], env: dict[str, str], data_dir: Path, nats_dir: Path
) -> str | None:
    """What agora process for ``data_dir`` this command line is, or None if none of ours."""
    if not argv:
        return None
    config = str(nats_dir / "nats-server.conf")
    if Path(argv[0]).name == "nats-server" and config in argv:
        return "nats-server"
    raw = env.get("AGORA_DATA_DIR", "")
    if "infra.cli" not in argv or not raw or Path(raw).resolve() != data_dir.resolve():
        return None
    command = argv[argv.index("infra.cli") + 1 :]
    if command[:1] == ["service"]:
        return command[1] if len(command) > 1 else "service"
    return "dashboard" if command[:1] == ["ui"] else None


def _read_argv(pid: str) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _read_env(pid: str) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (part.decode(errors="replace").partition("=") for part in raw.split(b"\0") if part)
    return {name: value for name, _, value in pairs if name.startswith("AGORA_")}


def find_leftovers(
    data_dir: Path, nats_dir: Path, *, exclude: Iterable[int] = ()
) -> list[Leftover]:
    """agora's own running processes for ``data_dir`` (none where /proc does not exist)."""
    skip = {os.getpid(), *exclude}
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in sorted(proc.iterdir(), key=lambda p: p.name):
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        with contextlib.suppress(OSError):
            argv, env = _read_argv(entry.name), _read_env(entry.name)
            what = classify(argv, env, data_dir, nats_dir)
            if what is not None:
                found.append(Leftover(int(entry.name), what))
    return found


def describe_leftovers(leftovers: Sequence[Leftover], data_dir: Path) -> str:
    """What a user reads: which of agora's processes still run, and how to stop them."""
    listed = ", ".join(f"{left.what} (pid {left.pid})" for left in leftovers)
    pids = " ".join(str(left.pid) for left in leftovers)
    return (
        f"agora processes from an earlier run still use {data_dir}: {listed}. "
        f"If no other `agora up` should be running, stop them with `kill {pids}` "
        "and start again"
    )
