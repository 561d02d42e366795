# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""A skorch callback that tunes torch's thread count while a CPU fit runs."""

import time

import torch
from skorch.callbacks import Callback

from skfeat.utils import ThreadTuner, system_idle_cpus


class AdaptiveThreads(Callback):
    """Time every training step and let a :class:`~skfeat.utils.ThreadTuner` choose.

    The caller's ``torch.get_num_threads()`` at the start of the fit is the
    upper bound, and it is restored when the fit ends.  The tuner reads the
    machine's idle CPUs (:func:`~skfeat.utils.system_idle_cpus`) before it
    probes more threads.

    Parameters
    ----------
    **tuner_params
        Passed to :class:`~skfeat.utils.ThreadTuner` (``probe_steps``, ...).
    """

    def __init__(self, **tuner_params):
        self.tuner_params = tuner_params

    def get_params(self, deep=True):
        """Return the tuner's parameters (skorch clones callbacks by them)."""
        return {"tuner_params": self.tuner_params}

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Start a fresh tuner at one thread."""
        self.caller_threads_ = torch.get_num_threads()
        self.tuner_ = ThreadTuner(
            self.caller_threads_,
            **{"idle_cpus": system_idle_cpus(), **self.tuner_params},
        )
        torch.set_num_threads(self.tuner_.n_threads)
        self.started_ = None

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        """Note when a training step starts."""
        if training:
            self.started_ = time.perf_counter()

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        """Record the step's wall time; the tuner may switch the count."""
        if training and self.started_ is not None:
            self.tuner_.record_step(time.perf_counter() - self.started_)
            self.started_ = None

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Restore the caller's thread count."""
        torch.set_num_threads(self.caller_threads_)
