"""Runs inside the sandbox's fresh process, before the untrusted program: confine, then exec.

Started by ``services/executor/sandbox.py`` as ``python -I -S sandbox_launcher.py CONFIG`` with
an empty environment in a fresh directory. Standard library only, no agora imports: it runs
before anything else and must not depend on the installation. Steps, each reported (never
silently skipped) on the first stdout line ``AGORA-SANDBOX {json}``:

1. new namespaces: network (only a downed loopback: nothing to connect to), mounts, PIDs
   (plus a user namespace when not root, which is what makes the others unprivileged);
2. hidden paths (agora's data dir with the NATS credentials, ...) covered by empty read-only
   tmpfs; a fresh /proc showing only the sandbox's own processes;
   fresh size-capped tmpfs for /tmp, /var/tmp, /dev/shm and the working directory;
3. resource limits: CPU seconds, address space, processes, file size, open files, no cores;
4. as root: the interpreter's installation made reachable, then setuid to ``nobody``
   (root ignores the process limit, and may signal or read anything);
5. no new privileges, then exec the interpreter on the program, as PID 1 of its namespace
   (when it ends, the kernel kills every process it left behind).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
REPORT_PREFIX = "AGORA-SANDBOX "

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _write(path: str, text: str) -> None:
    Path(path).write_text(text)


def _unshare(report: dict[str, object]) -> bool:
    """New namespaces; True when the mount namespace exists (hiding paths is possible)."""
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID
    if uid != 0:
        flags |= CLONE_NEWUSER
    try:
        _check(_libc.unshare(flags), "unshare")
    except OSError as exc:
        report["network"] = f"shared ({exc.strerror}): the kernel refused new namespaces"
        return False
    if uid != 0:  # keep our own uid inside, so file permissions mean what they meant outside
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    report["network"] = "isolated"
    return True


def _hide(paths: list[str], report: dict[str, object]) -> None:
    hidden = []
    for path in paths:
        if Path(path).is_dir():
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0555")
            hidden.append(path)
        elif Path(path).exists():
            _mount("/dev/null", path, None, MS_BIND)
            hidden.append(path)
    report["hidden"] = hidden


def _reachable_for_others(home: str) -> None:
    """Make ``home`` traversable for an unprivileged user, hiding the rest of its closed parent.

    The first ancestor others cannot enter (e.g. /root, mode 0700) is covered by a tmpfs in
    which only the path down to ``home`` exists, bound to the real ``home``.
    """
    home_path = Path(home).absolute()
    closed = next(
        (p for p in (*reversed(home_path.parents), home_path) if not p.stat().st_mode & 0o001),
        None,
    )
    if closed is None:
        return
    staging = Path.cwd() / ".python-home"
    staging.mkdir()
    _mount(str(home_path), str(staging), None, MS_BIND | MS_REC)
    _mount("tmpfs", str(closed), "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
    target = home_path  # the same path, now inside the fresh tmpfs
    target.mkdir(mode=0o755, parents=True, exist_ok=True)
    _mount(str(staging), str(target), None, MS_MOVE)
    staging.rmdir()


def _private_scratch(size: int, report: dict[str, object]) -> None:
    """Fresh, size-capped tmpfs for /tmp, /var/tmp, /dev/shm and the working directory.

    Whatever the program writes is bounded by ``size`` per mount and vanishes with the mount
    namespace: it can neither fill the host's disk or memory nor leave files behind.
    """
    program = {p.name: p.read_bytes() for p in Path.cwd().iterdir() if p.is_file()}
    options = f"size={size},mode=1777"
    for scratch in ("/tmp", "/var/tmp", "/dev/shm"):  # noqa: S108 - covering them, not using
        if Path(scratch).is_dir():
            _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, options)
    work = Path("/tmp/work")  # noqa: S108 - inside the fresh tmpfs just mounted
    work.mkdir(mode=0o755)
    for name, data in program.items():
        (work / name).write_bytes(data)
    os.chdir(work)
    report["scratch"] = f"private tmpfs, {size // (1024 * 1024)} MiB each"


def _limit(limits: dict[str, int]) -> None:
    pairs = {
        "cpu_s": resource.RLIMIT_CPU,
        "memory_bytes": resource.RLIMIT_AS,
        "processes": resource.RLIMIT_NPROC,
        "file_bytes": resource.RLIMIT_FSIZE,
        "open_files": resource.RLIMIT_NOFILE,
    }
    for name, which in pairs.items():
        value = int(limits[name])
        # The CPU hard limit a second later: SIGXCPU first (a readable death), then SIGKILL.
        hard = value + 1 if name == "cpu_s" else value
        resource.setrlimit(which, (value, hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _join_cgroup(config: dict[str, object], report: dict[str, object]) -> None:
    """Enter the run's cgroup before anything else: every descendant is then tracked by it."""
    path = config.get("cgroup")
    if not path:
        report["cgroup"] = f"none ({config.get('cgroup_state', 'unavailable')})"
        return
    try:
        _write(f"{path}/cgroup.procs", str(os.getpid()))
        report["cgroup"] = "own"
    except OSError as exc:
        report["cgroup"] = f"none ({exc.strerror})"


def main() -> None:
    config = json.loads(sys.argv[1])
    report: dict[str, object] = {}
    # The launcher dies with the executor that started it, and its child with it (below).
    _check(_libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "prctl(PDEATHSIG)")
    _join_cgroup(config, report)
    namespaces = _unshare(report)
    if namespaces:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _hide(config["hide"], report)
    drop = os.geteuid() == 0
    if drop:
        if namespaces:
            _reachable_for_others(config["python_home"])
        else:
            drop = False
            report["user"] = "root: no mount namespace to reach the interpreter as nobody"
    if namespaces:
        _private_scratch(config["scratch_bytes"], report)
    if drop:
        os.chown(".", config["uid"], config["gid"])
    # PID 1 of the new PID namespace is our child; we only wait for it and pass its status on.
    launcher = os.getpid()
    child = os.fork()
    if child:
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        os._exit(128 - code if code < 0 else code)  # killed by signal N: 128 + N, as shells do
    _check(_libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "prctl(PDEATHSIG)")
    if namespaces:
        try:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            report["proc"] = "private"
        except OSError as exc:
            report["proc"] = f"shared ({exc.strerror})"
    _limit(config["limits"])
    if drop:
        os.setgroups([])
        os.setgid(config["gid"])
        os.setuid(config["uid"])
        report["user"] = f"uid {config['uid']}"
        # Changing uid cleared the parent-death signal: set it again, and make sure the
        # launcher did not die in between. (The executor kills the namespace regardless.)
        _check(_libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "prctl(PDEATHSIG)")
        if os.getppid() != (0 if namespaces else launcher):  # 0: our parent is outside
            os._exit(137)
    report.setdefault("user", f"uid {os.getuid()}")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    sys.stdout.write(REPORT_PREFIX + json.dumps(report) + "\n")
    sys.stdout.flush()
    python = config["python"]
    os.execve(python, [python, "-I", "-S", "-B", config["program"]], {})  # noqa: S606 - no shell


if __name__ == "__main__":
    main()
