"""Wall-clock timing for benchmarks and the comparison table: best of a few runs, after one warm-up."""
import time


def best_time(fn, repeats: int = 3) -> float:
    """Seconds of the fastest of `repeats` calls of fn() (one untimed warm-up call first)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
