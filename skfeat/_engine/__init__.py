# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Private skorch engines: training loops behind the public estimators.

Engines subclass ``skorch.NeuralNet`` and override only its sanctioned hooks
(``train_step_single``, ``train_step``, ``get_loss``, ``get_iterator``,
``validation_step``, ``evaluation_step``, ``initialize_module``).  Users never
see them: facades hold one as ``net_``.  Torch modules they train live in
:mod:`skfeat.nn`.
"""

from skfeat._engine._batches import GroupedBatch, GroupedBatches, TensorBatches
from skfeat._engine._checkpoint import EpochCheckpoint, load_checkpoint_file
from skfeat._engine._equivariant import EquivariantNet
from skfeat._engine._feature import FeatureNet
from skfeat._engine._progress import BatchProgressBar, EpochProgressBar
from skfeat._engine._sea import SeAMultiHeadNet, SeANet
from skfeat._engine._ssl import SSLNet, TrainingImages, ssl_callbacks
from skfeat._engine._threads import AdaptiveThreads

__all__ = [
    "AdaptiveThreads",
    "BatchProgressBar",
    "EpochCheckpoint",
    "EpochProgressBar",
    "EquivariantNet",
    "FeatureNet",
    "GroupedBatch",
    "GroupedBatches",
    "SSLNet",
    "SeAMultiHeadNet",
    "SeANet",
    "TensorBatches",
    "TrainingImages",
    "load_checkpoint_file",
    "ssl_callbacks",
]
