"""The reaper's readings of /proc: whose process it is, which cgroup this process is in."""

from __future__ import annotations

from services.executor.sandbox_reaper import _own_cgroup, uid_of_status

V1 = "9:name=systemd:/\n8:pids:/agora\n4:memory:/x/y\n1:cpu,cpuacct:/\n0::/\n"
V2 = "0::/user.slice/agora.service\n"


def test_the_real_uid_is_the_first_of_the_uid_line() -> None:
    status = "Name:\tpython3\nUid:\t2000000003\t2000000003\t2000000003\t2000000003\nGid:\t0\n"
    assert uid_of_status(status) == 2_000_000_003
    assert uid_of_status("Name:\tkthreadd\n") is None
    assert uid_of_status("Uid:\n") is None


def test_the_pids_hierarchy_is_found_in_v1_and_the_unified_one_in_v2() -> None:
    assert _own_cgroup("pids", V1) == "/agora"
    assert _own_cgroup("memory", V1) == "/x/y"
    assert _own_cgroup("cpu", V1) is None  # "cpu,cpuacct" is another hierarchy's name
    assert _own_cgroup("", V1) == "/"
    assert _own_cgroup("", V2) == "/user.slice/agora.service"
    assert _own_cgroup("pids", V2) is None
