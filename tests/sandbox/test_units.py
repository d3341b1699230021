"""Pure pieces of the sandbox, without launching anything: the seccomp program, cgroup files
(on a fake cgroupfs, so cgroup v2 is covered too on hosts without it), mount detection,
spec validation, the mount plan, event line framing and uid allocation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workers.sandbox import SandboxSpec, seccomp
from workers.sandbox.cgroups import CgroupLayout, CgroupLimits, JobCgroup, detect_layout
from workers.sandbox.sandbox import Sandbox
from workers.sandbox.uids import allocate_uid, uid_is_locked

pytestmark = pytest.mark.unit


def test_seccomp_program_builds():
    try:
        prog = seccomp.build_filter()
    except seccomp.SeccompUnavailable as e:
        pytest.skip(str(e))
    assert prog and len(prog) % 8 == 0  # struct sock_filter is 8 bytes
    assert seccomp.libseccomp_version()


def _fake_v2(tmp_path: Path) -> CgroupLayout:
    root = tmp_path / "cg2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    return CgroupLayout(root, ("cpu", "io", "memory", "pids"))


def test_cgroup_v2_is_preferred_and_written(tmp_path):
    layout = _fake_v2(tmp_path)
    layout = CgroupLayout(
        layout.v2_root, layout.v2_controllers, {"memory": tmp_path, "pids": tmp_path}
    )
    assert layout.version == "v2" and layout.controllers() == ("memory", "pids", "cpu")
    cg = JobCgroup(layout, "hub-jobs", "job-60001-x")
    cg.create(CgroupLimits(memory_bytes=1 << 30, pids=100, cpus=1.5))
    d = layout.v2_root / "hub-jobs" / "job-60001-x"
    assert (layout.v2_root / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (d / "memory.max").read_text() == str(1 << 30)
    assert (d / "pids.max").read_text() == "100"
    assert (d / "cpu.max").read_text() == "150000 100000"
    assert cg.procs_files() == [d / "cgroup.procs"]
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (d / "pids.events").write_text("max 7\n")
    (d / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    stats = cg.stats()
    assert stats["oom_kills"] == 1 and stats["pids_max_hits"] == 7
    assert stats["cpu_usage_s"] == pytest.approx(2.5)


def test_cgroup_v1_when_v2_lacks_memory(tmp_path):
    roots = {c: tmp_path / c for c in ("memory", "pids", "cpu", "cpuacct")}
    for r in roots.values():
        r.mkdir()
    layout = CgroupLayout(tmp_path / "unified", ("hugetlb",), roots)
    assert layout.version == "v1"
    cg = JobCgroup(layout, "hub-jobs", "job-1")
    cg.create(CgroupLimits(memory_bytes=1 << 29, pids=10, cpus=0.5))
    assert (roots["memory"] / "hub-jobs/job-1/memory.limit_in_bytes").read_text() == str(1 << 29)
    assert (roots["cpu"] / "hub-jobs/job-1/cpu.cfs_quota_us").read_text() == "50000"
    assert len(cg.procs_files()) == 4


def test_detect_layout_parses_mountinfo(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text(
        "30 23 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
        "31 30 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "32 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "33 30 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
        "34 30 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
        "35 30 0:27 /docker/abc /mnt/x rw - cgroup cgroup rw,memory\n"
    )
    layout = detect_layout(str(mi))
    assert layout.v1_roots["memory"] == Path("/sys/fs/cgroup/memory")
    assert (
        layout.v1_roots["cpu"] == layout.v1_roots["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    )
    assert layout.v2_root == Path("/sys/fs/cgroup/unified")


def test_spec_validation(tmp_path):
    ok = SandboxSpec(argv=["python"], job_dir=tmp_path)
    ok.validate()
    bad = [
        {"argv": []},
        {"env": {"HUB_SECRET_KEY": "x"}},
        {"env": {"hub_token": "x"}},
        {"env": {"BAD NAME": "x"}},
        {"ro_binds": {"relative": "/x"}},
        {"ro_binds": {str(tmp_path): "/job"}},
        {"ro_binds": {str(tmp_path / "missing"): "/data"}},
        {"event_fd": 1},
        {"memory_bytes": 0},
        {"gpus": [0, 0]},
        {"log_dir": tmp_path / "logs"},  # inside the job dir: the job could edit its logs
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            SandboxSpec(**{"argv": ["python"], "job_dir": tmp_path, **kw}).validate()


def test_plan_hides_secret_paths_inside_binds(tmp_path, monkeypatch):
    data = tmp_path / "srv" / "data"
    data.mkdir(parents=True)
    (tmp_path / "srv" / "token").write_text("t")
    monkeypatch.setenv("HUB_DATA_DIR", str(data))
    sb = Sandbox(
        SandboxSpec(
            argv=["x"],
            job_dir=tmp_path / "job",
            ro_binds={tmp_path / "srv": "/srv"},
            hide=[tmp_path / "srv" / "token", tmp_path / "elsewhere"],
        )
    )
    report = {"landlock": {"net": True, "scope": True}}
    plan = sb._plan(report, 60001)
    assert ("/srv/data", True) in plan.hides
    assert ("/srv/token", False) in plan.hides
    assert all(not t.startswith(str(tmp_path)) for t, _ in plan.hides)
    assert plan.env["HOME"] == "/job" and not any(k.startswith("HUB_") for k in plan.env)
    assert "/job" in plan.landlock["rw"] and plan.landlock["ro"] == ["/"]


def test_event_framing(tmp_path):
    sb = Sandbox(SandboxSpec(argv=["x"], job_dir=tmp_path))
    sb.config = type(sb.config)(max_event_line=10)
    r, w = os.pipe()
    os.set_blocking(r, False)
    buf, discarding = bytearray(), False
    for chunk in (b"ab", b"c\nd", b"e\n" + b"z" * 8, b"zzzz", b"zz\nok\n", b"0123456789\nlast"):
        os.write(w, chunk)
        eof, discarding = sb._read_event_chunk(r, buf, discarding)
        assert not eof
    os.close(w)
    eof, discarding = sb._read_event_chunk(r, buf, discarding)
    assert eof
    sb._flush_partial(buf, discarding)
    assert sb.read_events() == [b"abc", b"de", b"ok", b"0123456789", b"last"]
    assert sb._dropped == 1
    os.close(r)


def test_uid_allocation_is_exclusive(tmp_path):
    a = allocate_uid(tmp_path, "job-a", (62000, 62003))
    b = allocate_uid(tmp_path, "job-a", (62000, 62003))  # same hash start: must still differ
    assert a.uid != b.uid and uid_is_locked(tmp_path, a.uid)
    a.release()
    assert not uid_is_locked(tmp_path, a.uid)
    b.release()
