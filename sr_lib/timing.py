"""Wall-clock timing for benchmarks and the cost columns: torch.utils.benchmark's Timer, median of blocks."""
import logging
import statistics

import torch

# torch.utils.benchmark imports cpp_extension, which warns on every CPU-only machine that it found no CUDA
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils import benchmark  # noqa: E402


def seconds(fn, min_run_time: float = 0.2, blocks: int = 1) -> float:
    """Median seconds of one fn() call, from blocks of calls run for at least `min_run_time` in all and at
    least `blocks` blocks (a slow fn fills `min_run_time` with one block, whose time a busy moment decides).

    Timer warms up first and runs with the current thread setting; on a shared machine compare ratios
    measured in one run, not absolute numbers."""
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    times = list(measurement.times)
    while len(times) < blocks:
        times += timer.timeit(measurement.number_per_run).times
    return statistics.median(times)
