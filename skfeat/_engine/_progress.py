# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Progress bars of skorch fits: over the epochs, or over every batch."""

import re

from skorch.callbacks import Callback, PrintLog
from tqdm.auto import tqdm


class EpochProgressBar(Callback):
    """One tqdm bar per fit, advanced each epoch, showing the training loss.

    The bar's total is the net's ``max_epochs``; a fit that stops early
    closes it where it stopped.

    Parameters
    ----------
    desc : str
        Label in front of the bar, e.g. the estimator's name.
    heads : int, default=1
        Number of heads whose losses the training loss sums; above 1 the
        bar shows the mean loss per head, labelled so.
    """

    def __init__(self, desc, heads=1):
        self.desc = desc
        self.heads = heads

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Open the bar."""
        self.bar_ = tqdm(total=net.max_epochs, desc=self.desc, unit="epoch")

    def on_epoch_end(self, net, **kwargs):
        """Advance one epoch and show its mean training loss."""
        loss = net.history[-1, "train_loss"] / self.heads
        label = "loss" if self.heads == 1 else "mean loss per head"
        self.bar_.set_postfix({label: f"{loss:.4g}"}, refresh=False)
        self.bar_.update()

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Close the bar and drop it, so that the net still pickles."""
        self.bar_.close()
        del self.bar_


class BatchProgressBar(Callback):
    """One labelled tqdm bar per fit over all its batches, for long epochs.

    The postfix shows the epoch and the running mean of its training loss.
    It replaces skorch's unlabelled per-epoch batch bar and its coloured
    per-epoch table, whose ANSI codes end up raw in piped output.

    Parameters
    ----------
    desc : str
        Label in front of the bar.
    """

    def __init__(self, desc):
        self.desc = desc

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Open the bar over the epochs still to run."""
        self.epochs_ = max(net.max_epochs - len(net.history), 1)  # after a resume
        per_epoch = len(net.get_iterator(X, training=True))
        self.bar_ = tqdm(total=self.epochs_ * per_epoch, desc=self.desc, unit="batch")
        self.epoch_, self.losses_ = 0, []

    def on_epoch_begin(self, net, **kwargs):
        """Start a new epoch's running loss."""
        self.epoch_ += 1
        self.losses_ = []

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        """Advance one batch and show the epoch's running mean loss."""
        if not training:
            return
        self.losses_.append(float(net.history[-1, "batches", -1, "train_loss"]))
        self.bar_.set_postfix(
            {
                "epoch": f"{self.epoch_}/{self.epochs_}",
                "loss": f"{sum(self.losses_) / len(self.losses_):.4g}",
            },
            refresh=False,
        )
        self.bar_.update()

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Close the bar and drop it, so that the net still pickles."""
        self.bar_.close()
        del self.bar_


class PlainPrintLog(PrintLog):
    """Skorch's per-epoch table without colour codes, printed at verbose >= 2.

    At ``verbose=1`` the fits show only a progress bar; the table's ANSI
    colours would end up raw in piped output and log files.
    """

    def format_row(self, row, key, color):
        """Format one cell of the table without its colour codes."""
        return re.sub(r"\x1b\[[0-9;]*m", "", super().format_row(row, key, color))

    def _sink(self, text, verbose):
        if verbose >= 2:
            print(text, flush=True)
