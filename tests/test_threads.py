"""Thread defaults for shared machines: OMP_NUM_THREADS, then affinity capped by the container's quota."""
import pytest
import torch

from sr_lib import threads


def test_quota_file_formats(tmp_path):
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")
    assert threads.cpu_quota(quota) == 2  # 1.5 CPUs: rounded up
    quota.write_text("max 100000\n")
    assert threads.cpu_quota(quota) is None
    assert threads.cpu_quota(tmp_path / "missing") is None


def test_default_respects_omp_num_threads_then_affinity_and_quota(monkeypatch, tmp_path):
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # a quiet machine
    monkeypatch.setattr(threads, "own_load", lambda: 0.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    quota = tmp_path / "cpu.max"
    quota.write_text("100000 100000\n")
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", quota)
    assert threads.default_threads() == 1  # four CPUs allowed, one CPU of quota
    quota.write_text("max 100000\n")
    assert threads.default_threads() == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "garbage")
    assert threads.default_threads() == 4


def test_use_threads_sets_torch_and_refuses_zero():
    before = torch.get_num_threads()
    try:
        assert threads.use_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="--threads must be >= 1"):
        threads.use_threads(0)


def test_the_default_leaves_the_cpus_other_jobs_keep_busy(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "own_load", lambda: 0.0)
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    for load, expected in [(0.0, 2), (0.3, 2), (1.0, 1), (1.8, 1), (7.0, 1)]:  # another job on one core: 1
        monkeypatch.setattr(threads.os, "getloadavg", lambda load=load: (load, load, load))
        assert threads.default_threads() == expected, load
    monkeypatch.setattr(threads, "available_cpus", lambda: 4)  # a container of 4 on a host of 64, half busy
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (32.0, 32.0, 32.0))
    assert threads.default_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.default_threads() == 2  # an explicit setting wins


def test_a_busy_process_does_not_count_its_own_load_as_another_job(monkeypatch):
    """A test run that has kept one of two cores busy for a while sees a load of 1: its own."""
    import time
    end = time.process_time() + 0.5
    while time.process_time() < end:  # this process keeps busy for a moment
        pass
    assert threads.own_load() > 0
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "own_load", lambda: 1.0)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    assert threads.default_threads() == 2  # the load is ours: both cores
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (2.0, 2.0, 2.0))
    assert threads.default_threads() == 1  # ours and another job's
