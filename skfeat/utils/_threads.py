# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Choose torch's thread count for a training loop by timing its own steps."""

import statistics

import torch


class ThreadTuner:
    """Pick the faster of one thread and the caller's thread count, step by step.

    Whether a training step runs faster on one torch thread or on several
    depends on the size of its products and on what else the machine runs,
    which can change while a fit runs (issue 19).  So the loop measures: it
    times ``probe_steps`` steps at each candidate, keeps the faster (by the
    median step time) and probes the other candidate again from time to
    time, often enough to notice a process that starts or stops beside the
    fit and rarely enough that probing costs at most about ``explore_share``
    of the time.  A probe of a candidate stops at its first step slower than
    twice the current candidate's median, so a loser costs little even on a
    busy machine.

    The first step of a fit and the first step after a switch are not
    timed: they pay for allocations and for waking the thread pool (their
    time counts as probing cost).  Steps shorter than ``min_parallel_step``
    on one thread are never probed on more: their products are too small
    to split, and on a busy machine the probe alone would cost more than
    the fit gains.

    Parameters
    ----------
    max_threads : int, default=None
        The largest count to use; None is the caller's
        ``torch.get_num_threads()``.  With 1 nothing is tuned.
    probe_steps : int, default=3
        Timed steps per candidate in a probe.
    explore_share : float, default=0.05
        Largest share of the time spent re-probing the other candidate.
    min_recheck_seconds : float, default=1.0
        Shortest time between two probes.
    min_parallel_step : float, default=0.005
        Median one-thread step time, in seconds, below which only one thread
        is used.

    Attributes
    ----------
    n_threads : int
        The thread count of the next step.
    history : list of tuple
        ``(n_threads, seconds)`` of every timed step.

    Examples
    --------
    >>> from skfeat.utils import ThreadTuner
    >>> tuner = ThreadTuner(max_threads=2, probe_steps=2)
    >>> for seconds in [0.1, 0.02, 0.02, 0.1, 0.01, 0.01]:
    ...     tuner.record_step(seconds, apply=False)
    >>> tuner.n_threads
    2
    """

    def __init__(
        self,
        max_threads=None,
        *,
        probe_steps=3,
        explore_share=0.05,
        min_recheck_seconds=1.0,
        min_parallel_step=0.005,
    ):
        self.max_threads = max_threads or torch.get_num_threads()
        self.probe_steps = probe_steps
        self.explore_share = explore_share
        self.min_recheck_seconds = min_recheck_seconds
        self.min_parallel_step = min_parallel_step
        self.candidates = sorted({1, self.max_threads})
        self.n_threads = 1
        self.history = []
        self._recent = {n: [] for n in self.candidates}
        self._skip_next = True
        self._probing = len(self.candidates) > 1  # 1 first, then the other
        self._since_probe = 0.0
        self._probe_cost = 0.0

    def record_step(self, seconds, apply=True):
        """Record the duration of one step and choose the next step's count.

        Parameters
        ----------
        seconds : float
            Wall time of the step just run at :attr:`n_threads`.
        apply : bool, default=True
            Call :func:`torch.set_num_threads` when the count changes.
        """
        if self._skip_next:
            self._skip_next = False
            self._probe_cost += seconds
            return
        current = self.n_threads
        self.history.append((current, seconds))
        times = self._recent[current]
        times.append(seconds)
        del times[: -self.probe_steps]
        if len(self.candidates) == 1:
            return
        other = self._other(current)
        if self._probing:
            self._probe_cost += seconds
            reference = self._recent[other]
            clear_loser = len(reference) == self.probe_steps and (
                seconds > 2 * statistics.median(reference)
            )
            if len(times) < self.probe_steps and not clear_loser:
                return
            if not self._recent[other]:  # the first probe of the fit
                if self._median(1) < self.min_parallel_step:
                    self.candidates = [1]  # too small to split
                    return
                self._switch(other, apply)
                return
            self._probing = False
            self._since_probe = 0.0
            faster = min(self.candidates, key=self._median)
            if faster != current:
                self._switch(faster, apply)
            return
        self._since_probe += seconds
        wait = max(self.min_recheck_seconds, self._probe_cost / self.explore_share)
        if self._since_probe >= wait:
            self._probing = True
            self._probe_cost = 0.0
            self._recent[other] = []
            self._switch(other, apply)

    def _other(self, n_threads):
        return self.candidates[self.candidates.index(n_threads) - 1]

    def _median(self, n_threads):
        times = self._recent[n_threads]
        return statistics.median(times) if times else float("inf")

    def _switch(self, n_threads, apply):
        self.n_threads = n_threads
        self._skip_next = True
        if apply:
            torch.set_num_threads(n_threads)
