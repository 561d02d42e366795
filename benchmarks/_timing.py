"""Timing helper shared by the benchmarks."""

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
