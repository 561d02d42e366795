"""
=========================================================
How SeA's perturbation strength changes low-shot accuracy
=========================================================

Few-shot features with a nuisance subspace shared by all classes (the
synthetic task of skfeat's test suite): a linear probe fitted on five samples
per class latches onto the nuisance directions.  SeA moves each training
feature toward the most confusable other example while keeping its label,
which teaches the probe to ignore them.  ``eta=0`` is the same training loop
without augmentation.
"""

# %%
# Data and a baseline
# -------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from skfeat import SeAClassifier
from skfeat.datasets import make_lowshot_features

etas = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.6]
scores, baseline = [], []
for seed in range(3):
    X_train, X_test, y_train, y_test = make_lowshot_features(random_state=seed)
    # C chosen by 5-fold cross-validation, as LogisticRegressionCV would.
    lr = GridSearchCV(
        LogisticRegression(), {"C": np.logspace(-3, 4, 8)}, cv=5, scoring="accuracy"
    ).fit(X_train, y_train)
    baseline.append(lr.score(X_test, y_test))
    scores.append(
        [
            SeAClassifier(eta=eta, max_epochs=30, random_state=seed)
            .fit(X_train, y_train)
            .score(X_test, y_test)
            for eta in etas
        ]
    )

# %%
# Accuracy against eta
# --------------------
mean = 100 * np.mean(scores, axis=0)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(etas, mean, marker="o", label="SeAClassifier")
ax.axhline(
    100 * np.mean(baseline), color="gray", linestyle="--", label="tuned LR (C by CV)"
)
ax.set_xlabel("eta")
ax.set_ylabel("test accuracy (%)")
ax.legend()
fig.tight_layout()
print({eta: round(m, 1) for eta, m in zip(etas, mean)})
