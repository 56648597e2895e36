"""Ends a sandboxed run completely: every process it started, whatever the program did.

Killing the launcher's process group is not enough: a program can leave the group
(``os.setsid()``), and its parent-death signal is cleared by the change of uid (and the
program may clear it itself). Three walls, each enough on its own where it exists:

1. **The PID namespace.** The program is PID 1 of a fresh PID namespace; killing it makes the
   kernel kill every process in that namespace. Its host pid is the launcher's child
   (``/proc/<launcher>/task/<launcher>/children``), read before the launcher is killed.
2. **The run's cgroup** (cgroup v1 ``pids`` hierarchy, or v2 with the ``pids`` controller):
   the launcher joins a fresh cgroup before anything else, so every descendant is in it;
   ``pids.max`` caps the run's processes and tasks, and the reaper kills whatever is listed
   until the group is empty, then removes it.
3. **The run's own uid** (when agora runs as root): each concurrent run has a uid of its own,
   so a sweep of every process with that uid catches anything the other two missed, and the
   process limit counts that run's processes only.

Host-side only; the confining happens in ``sandbox_launcher.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CGROUP_PREFIX",
    "RunCgroup",
    "cgroup_root",
    "kill_namespace_init",
    "kill_uids",
    "remove_stale_cgroups",
    "uid_of_status",
]

CGROUP_PREFIX = "agora-sandbox-"
_CGROUP_FS = Path("/sys/fs/cgroup")


def _own_cgroup(hierarchy: str, proc_cgroup: str) -> str | None:
    """This process's path in ``hierarchy`` ("pids" for v1, "" for the v2 unified tree)."""
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers.split(",") == [hierarchy] or (hierarchy == "" and controllers == ""):
            return path
    return None


def cgroup_root(fs: Path = _CGROUP_FS) -> tuple[Path | None, str]:
    """Where run cgroups can be made (and which kind), or None and why not."""
    try:
        mine = Path("/proc/self/cgroup").read_text()
    except OSError as exc:
        return None, f"no cgroups ({exc.strerror})"
    v1 = _own_cgroup("pids", mine)
    if v1 is not None and (fs / "pids").is_dir():
        parent = fs / "pids" / v1.lstrip("/")
        if os.access(parent, os.W_OK):
            return parent, "cgroup v1 pids"
        return None, f"cgroup v1 pids: {parent} is not writable"
    v2 = _own_cgroup("", mine)
    if v2 is not None and (fs / "cgroup.controllers").exists():
        parent = fs / v2.lstrip("/")
        controllers = (parent / "cgroup.subtree_control").read_text().split()
        if "pids" in controllers and os.access(parent, os.W_OK):
            return parent, "cgroup v2"
        return None, f"cgroup v2: no delegated pids controller at {parent}"
    return None, "no pids cgroup hierarchy"


@dataclass(frozen=True, slots=True)
class RunCgroup:
    path: Path

    @classmethod
    def create(cls, parent: Path, name: str, max_pids: int) -> RunCgroup:
        path = parent / name
        with contextlib.suppress(FileExistsError):
            path.mkdir()
        (path / "pids.max").write_text(str(max_pids))
        return cls(path)

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def kill_all(self, rounds: int = 1000) -> bool:
        """SIGKILL every member until none is left (pids.max bounds how many can appear)."""
        kill_file = self.path / "cgroup.kill"  # v2: the kernel does it atomically
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        for _ in range(rounds):
            members = self.pids()
            if not members:
                return True
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os.sched_yield()
        return not self.pids()

    def remove(self) -> None:
        for _ in range(1000):
            try:
                self.path.rmdir()
            except FileNotFoundError:
                return
            except OSError:  # EBUSY: the last members are still exiting
                self.kill_all(rounds=1)
                os.sched_yield()
            else:
                return


def remove_stale_cgroups(parent: Path, owner_pid: int) -> list[str]:
    """Kill and remove run cgroups no live executor owns (names carry the owner's pid)."""
    removed = []
    for path in sorted(parent.glob(f"{CGROUP_PREFIX}*")):
        owner = path.name.removeprefix(CGROUP_PREFIX).split("-", 1)[0]
        if owner.isdigit() and int(owner) != owner_pid and Path(f"/proc/{owner}").exists():
            continue  # another live executor's run
        group = RunCgroup(path)
        group.kill_all()
        group.remove()
        removed.append(path.name)
    return removed


def kill_namespace_init(launcher_pid: int) -> None:
    """SIGKILL the launcher's children: PID 1 of the run's namespace, so the whole namespace."""
    try:
        children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text()
    except OSError:
        return
    for pid in children.split():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(pid), signal.SIGKILL)


def uid_of_status(status: str) -> int | None:
    """The real uid in a ``/proc/<pid>/status`` text."""
    for line in status.splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
    return None


def kill_uids(uids: range) -> list[int]:
    """SIGKILL every process whose real uid is in ``uids``; the pids killed."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid = uid_of_status((entry / "status").read_text())
        except OSError:
            continue
        if uid is not None and uid in uids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed
