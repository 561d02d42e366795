"""Timing helpers shared by the benchmarks."""

import contextlib
import subprocess
import sys
import time


def best_of(fits, rounds):
    """Run every callable ``rounds`` times, interleaved; keep each one's best time.

    Interleaving spreads the machine's noise over all contenders, and the best
    of several runs is the most repeatable estimate on a shared machine.

    Returns ``(seconds, results)``: the best wall-clock time and the last
    return value of each callable, by name.
    """
    seconds, results = {}, {}
    for _ in range(rounds):
        for name, fit in fits.items():
            start = time.perf_counter()
            results[name] = fit()
            seconds[name] = min(
                seconds.get(name, float("inf")), time.perf_counter() - start
            )
    return seconds, results


@contextlib.contextmanager
def busy_process():
    """Run one CPU-bound busy loop in another process for the block."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start spinning
        yield
    finally:
        process.kill()
        process.wait()
