"""
===========================================================
Self-supervised fine-tuning on several GPUs, nodes or cores
===========================================================

This script is not run when the documentation is built: start it with a
launcher, which runs one copy per process.  On one machine with 4 GPUs::

    torchrun --nproc_per_node 4 train_on_several_processes.py
    accelerate launch --multi_gpu --num_processes 4 train_on_several_processes.py

and on 2 CPU processes (the gloo backend), as skfeat's tests do::

    torchrun --nproc_per_node 2 train_on_several_processes.py --cpu

Every process runs the same code.  ``accelerator=`` splits each global batch
of ``batch_size`` images over the processes, scores the contrastive loss
against every process's views (``gather_negatives=True``) and normalises
batches over all of them (``sync_batchnorm=True``), so the fit equals a
one-process fit on the global batch.  Rank 0 alone writes the checkpoint and
the features; every process ends with the same fitted extractor.
"""

# %%
import argparse
import pickle

import numpy as np
from accelerate import Accelerator

from skfeat import AugSelfExtractor

parser = argparse.ArgumentParser()
parser.add_argument("--cpu", action="store_true", help="train on CPU processes")
parser.add_argument("--epochs", type=int, default=2)
args = parser.parse_args()

accelerator = Accelerator(cpu=args.cpu)
# Your images: any input DeepFeatureExtractor takes (paths, arrays, a Dataset).
images = np.random.RandomState(0).randint(0, 256, (64, 32, 32, 3), np.uint8)

# %%
# The global batch (here 16) must be a multiple of the number of processes.
extractor = AugSelfExtractor(
    "tiny_cnn",
    base="simclr",
    max_epochs=args.epochs,
    batch_size=16,
    head_hidden=16,
    checkpoint="augself-checkpoint",  # on a file system every process sees
    accelerator=accelerator,
    random_state=0,
    verbose=1,  # printed by rank 0 only
)
extractor.fit(images)

# %%
# Every process holds the same weights, so every process may extract; rank 0
# saves the fitted extractor, which loads in one process without Accelerate.
features = extractor.transform(images)
if accelerator.is_main_process:
    print(f"{accelerator.num_processes} processes, features {features.shape}")
    with open("augself-extractor.pkl", "wb") as file:
        pickle.dump(extractor, file)
