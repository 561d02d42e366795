# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Choose torch's thread count for a training loop by timing its own steps."""

import os
import statistics

import torch

# Seconds of steps a reading of idle CPUs must span: /proc/stat counts in
# ticks of 10 ms, so a shorter window reads mostly rounding.
IDLE_WINDOW_SECONDS = 0.1
# Recent steps of the running count kept as the reference of a probe.
REFERENCE_STEPS = 32


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
    time counts as probing cost).  On a busy machine one probe of more
    threads can cost more than a short fit gains, so with ``idle_cpus`` the
    tuner probes more threads only when at least half a CPU was idle while
    it ran on fewer (read over at least ``IDLE_WINDOW_SECONDS`` of steps),
    and otherwise reads again: after the next window before the first probe
    (the pool's threads of a previous fit can keep a CPU busy for a moment),
    at the next recheck after it.

    Parameters
    ----------
    max_threads : int, default=None
        The largest count to use; None is the caller's
        ``torch.get_num_threads()``.  With 1 nothing is tuned.
    probe_steps : int, default=3
        Fewest timed steps per candidate in a probe.
    min_probe_seconds : float, default=0.05
        Shortest time a probe runs, so that steps of a few milliseconds,
        whose times scatter by tens of percent, are compared by the medians
        of many.
    explore_share : float, default=0.05
        Largest share of the time spent re-probing the other candidate.
    min_recheck_seconds : float, default=1.0
        Shortest time between two probes.
    idle_cpus : callable, default=None
        Returns the number of CPUs idle since its previous call, or None
        when unknown (then the probe is timed all the same), such as
        :func:`system_idle_cpus`.  None probes without asking.

    Attributes
    ----------
    n_threads : int
        The thread count of the next step.
    history : list of tuple
        ``(n_threads, seconds)`` of every timed step.

    Examples
    --------
    >>> from skfeat.utils import ThreadTuner
    >>> tuner = ThreadTuner(max_threads=2, probe_steps=2, min_probe_seconds=0)
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
        min_probe_seconds=0.05,
        explore_share=0.05,
        min_recheck_seconds=1.0,
        idle_cpus=None,
    ):
        self.max_threads = max_threads or torch.get_num_threads()
        self.probe_steps = probe_steps
        self.min_probe_seconds = min_probe_seconds
        self.explore_share = explore_share
        self.min_recheck_seconds = min_recheck_seconds
        self.idle_cpus = idle_cpus
        self.candidates = sorted({1, self.max_threads})
        self.n_threads = 1
        self.history = []
        self._recent = {n: [] for n in self.candidates}
        self._skip_next = True
        self._probing = len(self.candidates) > 1  # 1 first, then the other
        self._since_probe = 0.0
        self._since_idle_reading = 0.0
        self._probe_cost = 0.0
        self._probed = [0, 0.0]  # timed steps and seconds of the current count

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
        self._since_idle_reading += seconds
        times = self._recent[current]
        times.append(seconds)
        del times[:-REFERENCE_STEPS]
        self._probed[0] += 1
        self._probed[1] += seconds
        if len(self.candidates) == 1:
            return
        other = self._other(current)
        if self._probing:
            self._probe_cost += seconds
            reference = self._recent[other]
            clear_loser = len(reference) >= self.probe_steps and (
                seconds > 2 * statistics.median(reference)
            )
            steps, elapsed = self._probed
            short = steps < self.probe_steps or elapsed < self.min_probe_seconds
            if short and not clear_loser:
                return
            if not self._recent[other]:  # the first probe of the fit
                room = self._room_for_more()
                if room:
                    self._switch(other, apply)
                elif room is not None:  # busy: read again after another window
                    self._probe_cost = 0.0
                return
            self._probing = False
            self._since_probe = 0.0
            faster = min(self.candidates, key=self._median)
            if faster != current:
                self._switch(faster, apply)
            return
        self._since_probe += seconds
        wait = max(self.min_recheck_seconds, self._probe_cost / self.explore_share)
        if self._since_probe < wait:
            return
        if other > current and not self._room_for_more():
            self._since_probe = 0.0  # no CPU to spare now: ask again later
            return
        self._probing = True
        self._probe_cost = 0.0
        self._recent[other] = []
        self._switch(other, apply)

    def _room_for_more(self):
        """Whether to probe more threads: True, False, or None (wait for a reading).

        True without ``idle_cpus``, or when it cannot tell; None while the
        steps since the last reading span less than ``IDLE_WINDOW_SECONDS``.
        """
        if self.idle_cpus is None:
            return True
        if self._since_idle_reading < IDLE_WINDOW_SECONDS:
            return None
        self._since_idle_reading = 0.0
        idle = self.idle_cpus()
        return idle is None or idle >= 0.5

    def _other(self, n_threads):
        return self.candidates[self.candidates.index(n_threads) - 1]

    def _median(self, n_threads):
        times = self._recent[n_threads]
        return statistics.median(times) if times else float("inf")

    def _switch(self, n_threads, apply):
        self.n_threads = n_threads
        self._skip_next = True
        self._probed = [0, 0.0]
        if apply:
            torch.set_num_threads(n_threads)


def system_idle_cpus(path="/proc/stat"):
    """Return a reader of the CPUs idle between its calls, or None off Linux.

    The reader returns the average number of idle CPUs of the whole machine
    since its previous call (since its creation for the first), from the
    kernel's counters in ``/proc/stat``, or None when no time has passed.

    Parameters
    ----------
    path : str, default="/proc/stat"
        The kernel's CPU counters.

    Returns
    -------
    reader : callable or None
        None where ``path`` cannot be read.

    Examples
    --------
    >>> from skfeat.utils import system_idle_cpus
    >>> reader = system_idle_cpus()
    >>> reader is None or reader() is None or reader() >= 0
    True
    """
    reader = _IdleCPUs(path)
    return None if reader.last is None else reader


class _IdleCPUs:
    """Callable reader of ``/proc/stat``'s idle ticks (picklable, unlike a closure)."""

    def __init__(self, path):
        self.path = path
        self.n_cpus = os.cpu_count() or 1
        self.last = self._read()

    def _read(self):
        try:
            with open(self.path) as stat:
                fields = stat.readline().split()
        except OSError:
            return None
        if len(fields) < 5 or fields[0] != "cpu":
            return None
        # user nice system idle iowait irq softirq steal (guest time is in user)
        ticks = [int(value) for value in fields[1:9]]
        return ticks[3] + ticks[4], sum(ticks)

    def __call__(self):
        now = self._read()
        if now is None or now[1] <= self.last[1]:
            return None
        idle, total = now[0] - self.last[0], now[1] - self.last[1]
        self.last = now
        return self.n_cpus * idle / total
