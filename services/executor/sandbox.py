"""Runs untrusted code in a confined, separate process: the mechanism behind code tools.

Each run gets a fresh temporary directory as its working directory, an empty environment
(no credentials, no AGORA_* paths), CPU-time, memory, process-count, file-size and
open-file limits, a wall-clock timeout, and, where the kernel allows it, new network, mount
and PID namespaces: no network at all, agora's data directory (with the NATS credentials)
hidden. When agora runs as root, each concurrent run gets a uid of its own (a lock file per
uid says which are taken, across executor processes), so the process limit is per run, and
a fresh cgroup caps and tracks every process the run starts. ``sandbox_launcher.py`` does
the confining inside the new process; what it could not do is reported back and logged as a
warning, never skipped silently. When a run ends, for whatever reason, everything it
started is killed (``sandbox_reaper.py``): its PID namespace, its cgroup, its uid.

At most ``concurrency`` runs go at once per Sandbox; more wait for a free slot. The
executor's event loop only waits on pipes, so other tasks keep running meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from infra.logging import get_logger
from services.executor.sandbox_launcher import REPORT_PREFIX
from services.executor.sandbox_reaper import (
    CGROUP_PREFIX,
    RunCgroup,
    cgroup_root,
    kill_namespace_init,
    kill_uids,
    remove_stale_cgroups,
)

__all__ = ["Sandbox", "SandboxLimits", "SandboxResult"]

MiB = 1024 * 1024
LAUNCHER = Path(__file__).with_name("sandbox_launcher.py")
NOBODY = 65534
# Per-run uids (as root): far above any account's uid and any usual subordinate-id range.
RUN_UID_BASE = 2_000_000_000
RUN_UIDS = 4096
UID_LOCKS = Path(tempfile.gettempdir()) / "agora-sandbox-uids"
log = get_logger("agora.sandbox")


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    cpu_s: int = 5
    memory_bytes: int = 512 * MiB
    processes: int = 16
    file_bytes: int = 16 * MiB
    open_files: int = 64
    # Per tmpfs (/tmp, /var/tmp, /dev/shm, the working directory) when namespaces exist.
    scratch_bytes: int = 64 * MiB
    wall_s: float = 10.0
    output_bytes: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class SandboxResult:
    exit_code: int  # 128 + N: killed by signal N (e.g. 137 SIGKILL, 152 SIGXCPU)
    stdout: str
    stderr: str
    timed_out: bool
    isolation: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def describe_failure(self) -> str:
        """What stopped the program, in words a plan author can act on."""
        if self.timed_out:
            return "killed: wall-clock timeout"
        signals = {
            128 + signal.SIGKILL: "killed (SIGKILL: CPU-time limit or killed)",
            128 + signal.SIGXCPU: "killed: CPU-time limit",
            128 + signal.SIGXFSZ: "killed: file-size limit",
            128 + signal.SIGSEGV: "crashed (SIGSEGV)",
        }
        reason = signals.get(self.exit_code, f"exited with code {self.exit_code}")
        tail = self.stderr.strip().splitlines()[-1:] or [""]
        return f"{reason}{': ' + tail[0] if tail[0] else ''}"


class Sandbox:
    """Runs programs confined. ``hide``: paths the program must not see (data dir, secrets)."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        hide: Iterable[Path] = (),
        python: Path | None = None,
        concurrency: int = 64,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.hide = tuple(str(Path(p).resolve()) for p in hide)
        # The base interpreter (a venv's python is a symlink to it); with -I -S it sees the
        # standard library only, never agora's installation or its .pth files.
        self.python = (python or Path(sys.executable)).resolve()
        self._warned: set[str] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._root = os.geteuid() == 0
        self._cgroups, self.cgroup_state = cgroup_root()
        if self._cgroups is not None:
            # Runs of an executor that died (SIGKILL) are killed here, not left running.
            removed = remove_stale_cgroups(self._cgroups, os.getpid())
            if removed:
                log.warning("sandbox_leftovers_killed", cgroups=removed)

    async def run_python(self, code: str, *, stdin: str = "") -> SandboxResult:
        return await self.run({"main.py": code}, "main.py", stdin=stdin)

    async def run(self, files: dict[str, str], program: str, *, stdin: str = "") -> SandboxResult:
        workdir = await asyncio.to_thread(_fresh_workdir, files)
        try:
            return await self._run_in(workdir, program, stdin.encode())
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)

    def _config(self, program: str, uid: int, cgroup: RunCgroup | None) -> str:
        limits = self.limits
        return json.dumps(
            {
                "python": str(self.python),
                "python_home": str(Path(sys.base_prefix).resolve()),
                "hide": list(self.hide),
                "program": program,
                "scratch_bytes": limits.scratch_bytes,
                "uid": uid,
                "gid": NOBODY,
                "cgroup": str(cgroup.path) if cgroup else None,
                "cgroup_state": self.cgroup_state,
                "limits": {
                    "cpu_s": limits.cpu_s,
                    "memory_bytes": limits.memory_bytes,
                    "processes": limits.processes,
                    "file_bytes": limits.file_bytes,
                    "open_files": limits.open_files,
                },
            }
        )

    async def _run_in(self, workdir: Path, program: str, stdin: bytes) -> SandboxResult:
        async with self._slots:
            uid, lock = await _take_uid() if self._root else (os.getuid(), None)
            try:
                cgroup = await asyncio.to_thread(self._cgroup_for, uid)
                try:
                    return await self._launch(workdir, program, stdin, uid, cgroup)
                finally:
                    await asyncio.to_thread(self._reap, uid, cgroup)
            finally:
                if lock is not None:
                    os.close(lock)

    def _cgroup_for(self, uid: int) -> RunCgroup | None:
        if self._cgroups is None:
            return None
        name = f"{CGROUP_PREFIX}{os.getpid()}-{uid}-{os.urandom(4).hex()}"
        # The launcher and its threads count too: a few beyond the program's own limit.
        try:
            return RunCgroup.create(self._cgroups, name, self.limits.processes + 4)
        except OSError as exc:
            self.cgroup_state = f"cgroup refused ({exc.strerror})"
            self._cgroups = None
            return None

    def _reap(self, uid: int, cgroup: RunCgroup | None) -> None:
        """Whatever the run left behind dies: its cgroup's members, then its uid's processes."""
        if cgroup is not None:
            cgroup.kill_all()
            cgroup.remove()
        if self._root:
            kill_uids(range(uid, uid + 1))

    async def _launch(
        self, workdir: Path, program: str, stdin: bytes, uid: int, cgroup: RunCgroup | None
    ) -> SandboxResult:
        process = await asyncio.create_subprocess_exec(
            str(self.python),
            "-I",
            "-S",
            "-B",
            str(LAUNCHER),
            self._config(program, uid, cgroup),
            cwd=workdir,
            env={},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: the timeout kills all of it
        )
        assert process.stdout is not None
        assert process.stderr is not None
        timed_out = False
        try:
            async with asyncio.timeout(self.limits.wall_s):
                stdout, stderr, _ = await asyncio.gather(
                    _read_capped(process.stdout, self.limits.output_bytes + 4096),
                    _read_capped(process.stderr, self.limits.output_bytes),
                    _feed(process, stdin),
                )
                await process.wait()
        except TimeoutError:
            timed_out = True
            stdout, stderr = b"", b""
        finally:
            # PID 1 of the run's namespace first (the kernel then kills the namespace), while
            # the launcher still names it as its child; then the launcher's group.
            kill_namespace_init(process.pid)
            _kill_group(process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        isolation, stdout = _split_report(stdout)
        self._warn_unless_isolated(isolation)
        return SandboxResult(
            exit_code=process.returncode if process.returncode is not None else -1,
            stdout=stdout.decode(errors="replace")[: self.limits.output_bytes],
            stderr=stderr.decode(errors="replace"),
            timed_out=timed_out,
            isolation=isolation,
        )

    def _warn_unless_isolated(self, isolation: dict[str, object]) -> None:
        if not isolation:
            return
        for aspect, wanted in (("network", "isolated"), ("proc", "private")):
            got = str(isolation.get(aspect, "unknown"))
            if got != wanted and aspect not in self._warned:
                self._warned.add(aspect)
                log.warning("sandbox_not_isolated", aspect=aspect, state=got)
        if str(isolation.get("user", "")).startswith("root") and "user" not in self._warned:
            self._warned.add("user")
            log.warning("sandbox_runs_as_root", state=isolation["user"])


async def _take_uid() -> tuple[int, int]:
    """A uid no other run holds (here or in another executor), and the lock that holds it."""
    while True:
        taken = await asyncio.to_thread(_try_take_uid)
        if taken is not None:
            return taken
        await asyncio.sleep(0.05)  # every uid of the range busy: wait for a run to end


def _try_take_uid() -> tuple[int, int] | None:
    UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
    for uid in range(RUN_UID_BASE, RUN_UID_BASE + RUN_UIDS):
        fd = os.open(UID_LOCKS / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        # A holder that died (SIGKILL) released the lock but may have left processes.
        kill_uids(range(uid, uid + 1))
        return uid, fd
    return None


def _fresh_workdir(files: dict[str, str]) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="agora-sandbox-"))
    for name, text in files.items():
        (workdir / name).write_text(text)
    workdir.chmod(0o755)
    return workdir


def _split_report(stdout: bytes) -> tuple[dict[str, object], bytes]:
    """The launcher's report (its first line) and the program's own output after it."""
    first, _, rest = stdout.partition(b"\n")
    if first.startswith(REPORT_PREFIX.encode()):
        with contextlib.suppress(ValueError):
            report: dict[str, object] = json.loads(first[len(REPORT_PREFIX) :])
            return report, rest
    return {}, stdout


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> bytes:
    """Up to ``limit`` bytes; the rest is read and dropped so the writer never blocks."""
    kept = bytearray()
    while chunk := await stream.read(64 * 1024):
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    return bytes(kept)


async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
    assert process.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        if data:
            process.stdin.write(data)
            await process.stdin.drain()
        process.stdin.close()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
