"""How many CPU threads torch uses: what this process may really run on, never more.

torch starts one thread per core it can see. On a shared machine (a JupyterHub course server, CI) that
oversubscribes, and OpenMP's threads wait for each other at every layer: with another job busy on one of
two cores, 30 SR training steps took 13.4 s with two threads and 8.3 s with one (README). We therefore
respect, in this order: `OMP_NUM_THREADS` when set; else the CPUs the process is allowed on (its affinity
mask) capped by its container's CPU quota (cgroup `cpu.max`), which torch itself does not read, less
the share other processes keep busy (the load average). The CLI's `--threads N` overrides all of it,
and the notebooks call `use_threads()` in their first cell; `bench` measures one thread against the
default in one run.
"""
import math
import os
from pathlib import Path

import torch

from .errors import UserError

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def cpu_quota(path: Path | None = None) -> int | None:
    """CPUs the container's quota allows (rounded up), or None without a quota."""
    path = CGROUP_CPU_MAX if path is None else path
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by the container's quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cpu_quota()
    return min(cpus, quota) if quota else cpus


def own_load() -> float:
    """This process's own share of the 1-minute load average (Linux; 0 elsewhere): the CPUs it kept busy
    on average since it started, as much of it as the average has seen, which is not another job's. A long test run or notebook kernel that
    sets its threads again must not count itself as the neighbour it makes room for."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        alive = uptime - int(fields[19]) / ticks
        rate = (int(fields[11]) + int(fields[12])) / ticks / max(alive, 1.0)
        return rate * (1 - math.exp(-alive / 60))  # the 1-minute average has seen only `alive` seconds of it
    except (OSError, ValueError, IndexError):
        return 0.0


def busy_share() -> float:
    """The share of the machine's CPUs other processes keep busy, from the 1-minute load average less this
    process's own load (0 where the system does not report one). In a container the load is the host's,
    so it is taken as a share."""
    try:
        others = max(0.0, os.getloadavg()[0] - own_load())
    except (AttributeError, OSError):
        return 0.0
    return min(1.0, others / (os.cpu_count() or 1))


def default_threads() -> int:
    """OMP_NUM_THREADS when it is a positive integer, else `available_cpus()` less the ones other
    processes are keeping busy (`busy_share`), at least one: with another job on one of two cores, one
    thread runs these small convolutions faster than two that wait for each other."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    cpus = available_cpus()
    return max(1, cpus - round(cpus * busy_share()))


def use_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (default: `default_threads()`); returns the number set."""
    threads = default_threads() if threads is None else threads
    if threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    return threads
