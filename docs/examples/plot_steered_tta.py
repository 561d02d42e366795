"""
=====================================================
Test-time augmentation in embedding space, steered
=====================================================

Test-time augmentation (TTA) averages a classifier's predictions over K
augmented copies of each image, which usually costs K encoder passes.
:class:`~skfeat.EquivariantExtractor` learns linear maps ``M(g)`` that
predict the embedding of an augmented image from the original one,
``f(T_g x) ~ M(g) f(x)``, so the K copies cost one encoder pass and K matrix
products (:class:`~skfeat.SteeredTTAClassifier`).

We use the offline EfficientNet-Lite0 weights with the default colour
steering (colour-bilinear embeddings of the frozen network, whose 3 x 3
colour maps ``fit`` learns in seconds), fit on scikit-learn's handwritten
digits at 32 pixels with brightness and contrast steered, and compare
steered TTA with TTA on the pixels: how well the two agree, how long each
takes and how accurate a probe is with plain, steered and input-space
predictions.  How well the maps steer (``equivariance_error_``) decides what
the agreement of the two TTAs means.
"""

# %%
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from skfeat import EquivariantExtractor, SteeredTTAClassifier
from skfeat.transforms import SteeredAugmentation

digits = load_digits()
gray = (digits.images / 16.0).astype(np.float32)
images = np.repeat(gray[..., None], 3, axis=-1)  # (n, 8, 8, 3) in [0, 1]
X_train, X_test, y_train, y_test = train_test_split(
    images,
    digits.target,
    train_size=400,
    test_size=300,
    random_state=0,
    stratify=digits.target,
)

# %%
# Fitting the colour maps
# -----------------------
# ``fit`` embeds the 400 training digits as they are and brightened or
# contrasted, and fits the maps to predict one from the other; it measures
# them on 40 digits held out of the fit.  The probe is a logistic regression
# on the fitted extractor's embeddings.  ``fit`` warns when the maps explain
# little of how the augmentations move the embeddings; we keep any warning
# to print it.
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", ConvergenceWarning)
    extractor = EquivariantExtractor(
        "efficientnet_lite0",
        weights="DEFAULT",
        steered=("brightness", "contrast"),
        image_size=32,
        batch_size=64,
        device="cpu",
        random_state=0,
    ).fit(X_train)
for warning in caught:
    print("fit warned:", warning.message)
error = extractor.equivariance_error_
for name, ratio in zip(error["params"], error["ratio"]):
    print(f"steered / unsteered error, {name}: {ratio:.3f}")

probe = LogisticRegression(max_iter=2000)
tta = SteeredTTAClassifier(extractor, probe, n_augmentations=20, random_state=0)
tta.fit(X_train, y_train)

# %%
# Steered against input-space TTA
# -------------------------------
# Both paths use the same K = 20 parameter vectors.  Input-space TTA
# brightens and contrasts the pixels and runs the encoder on every copy.
params = tta.params_list_
augmentation = SteeredAugmentation(extractor.steered)
pixels = torch.from_numpy(X_test).permute(0, 3, 1, 2)


def input_space_proba():
    probas = []
    for g in params:
        augmented = augmentation.apply(pixels, torch.from_numpy(g)[None])
        features = extractor.transform(augmented.permute(0, 2, 3, 1).numpy())
        probas.append(tta.classifier_.predict_proba(features))
    return np.mean(probas, axis=0)


start = time.perf_counter()
steered = tta.predict_proba(X_test)
steered_seconds = time.perf_counter() - start
start = time.perf_counter()
direct = input_space_proba()
direct_seconds = time.perf_counter() - start
plain = tta.classifier_.predict_proba(extractor.transform(X_test))

cosine = (steered * direct).sum(1) / (
    np.linalg.norm(steered, axis=1) * np.linalg.norm(direct, axis=1)
)
print(f"agreement of the TTA probabilities: mean cosine {cosine.mean():.3f}")
print(
    f"steered TTA {steered_seconds:.2f} s, input-space TTA {direct_seconds:.2f} s: "
    f"{direct_seconds / steered_seconds:.1f}x faster"
)
accuracy = {
    name: np.mean(tta.classes_[proba.argmax(1)] == y_test)
    for name, proba in [
        ("plain", plain),
        ("steered TTA", steered),
        ("input-space TTA", direct),
    ]
}
for name, value in accuracy.items():
    print(f"{name:>15}: accuracy {value:.3f}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
left.bar(list(accuracy), list(accuracy.values()), color=["grey", "C0", "C1"])
left.set_ylabel("test accuracy")
left.set_ylim(0, 1)
left.tick_params(axis="x", labelsize=8)
right.bar(
    ["steered", "input-space"], [steered_seconds, direct_seconds], color=["C0", "C1"]
)
right.set_ylabel(f"TTA time for {len(X_test)} images (s)")
fig.tight_layout()
plt.show()

# %%
# When this example was written (2 CPU cores), the steered error was 0.637
# times the unsteered one for brightness, 1.003 for contrast and 0.795 for
# both.  Brightness scales the digits' luma, which the colour part of the
# embedding follows linearly; a contrast change of a grey image leaves both
# the standardised lightness and the mean luma alone, so there is nothing to
# steer (the unsteered error is already small).  The two TTA paths agreed
# with a mean cosine of 0.983 between their probability vectors and the
# probe's accuracy was 0.767 plain, 0.770 with steered TTA and 0.760 with
# input-space TTA; steered TTA ran 12.7x faster (one encoder pass instead of
# K = 20).  The colour embedding costs some accuracy on these grey digits
# (plain Lite0 features: 0.807); the User Guide has the figures on colour
# photos, where the steering is at its best.
