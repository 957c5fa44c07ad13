"""Wall-clock timing for benchmarks and the cost columns: torch.utils.benchmark's Timer, median of blocks."""
import logging

import torch

# torch.utils.benchmark imports cpp_extension, which warns on every CPU-only machine that it found no CUDA
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils import benchmark  # noqa: E402


def seconds(fn, min_run_time: float = 0.2) -> float:
    """Median seconds of one fn() call, from blocks of calls run for at least `min_run_time` in all.

    Timer warms up first and runs with the current thread setting; on a shared machine compare ratios
    measured in one run, not absolute numbers."""
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median
