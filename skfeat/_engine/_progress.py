# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Progress bar over the epochs of a skorch fit."""

from skorch.callbacks import Callback
from tqdm.auto import tqdm


class EpochProgressBar(Callback):
    """One tqdm bar per fit, advanced each epoch, showing the training loss.

    The bar's total is the net's ``max_epochs``; a fit that stops early
    closes it where it stopped.

    Parameters
    ----------
    desc : str
        Label in front of the bar, e.g. the estimator's name.
    """

    def __init__(self, desc):
        self.desc = desc

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Open the bar."""
        self.bar_ = tqdm(total=net.max_epochs, desc=self.desc, unit="epoch")

    def on_epoch_end(self, net, **kwargs):
        """Advance one epoch and show its mean training loss."""
        self.bar_.set_postfix(
            loss=f"{net.history[-1, 'train_loss']:.4g}", refresh=False
        )
        self.bar_.update()

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Close the bar and drop it, so that the net still pickles."""
        self.bar_.close()
        del self.bar_
