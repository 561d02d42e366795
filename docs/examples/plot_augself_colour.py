"""
===========================================================
Fine-tuning on unlabeled photos: what colour jitter erases
===========================================================

Colour jitter teaches an invariance objective to ignore colour, so
self-supervised fine-tuning can erase an attribute that a downstream task
needs.  AugSelf adds a head that predicts the difference of the two views'
jitter parameters, which asks the backbone to keep colour.

We start from the offline EfficientNet-Lite0 weights and fine-tune briefly on
unlabeled 64-pixel crops of two photos, each crop hue-shifted by one of four
angles, with SimCLR alone (``aug_weights=0``) and with the AugSelf colour
head.  A logistic-regression probe then reads the hue shift from frozen,
SimCLR and AugSelf features.  Whatever wins is reported as measured: a few
CPU epochs on 384 crops are far from the hundreds of epochs of the paper.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from kornia.enhance import adjust_hue
from sklearn.datasets import load_sample_images
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfeat import AugSelfExtractor, DeepFeatureExtractor

torch.set_num_threads(2)
rng = np.random.RandomState(0)
photos = load_sample_images().images
n_crops, side = 384, 64
crops = []
for i in range(n_crops):
    photo = photos[i % len(photos)]
    top = rng.randint(photo.shape[0] - 2 * side)
    left = rng.randint(photo.shape[1] - 2 * side)
    crops.append(photo[top : top + 2 * side : 2, left : left + 2 * side : 2])
hue_class = rng.randint(4, size=n_crops)
angles = torch.tensor([-np.pi / 2, 0.0, np.pi / 2, np.pi])[hue_class]
pixels = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
images = adjust_hue(pixels, angles).clamp(0, 1).permute(0, 2, 3, 1).numpy()

# %%
# Features: frozen, SimCLR only, SimCLR + AugSelf colour head
# ----------------------------------------------------------


def finetuned(weight):
    return AugSelfExtractor(
        "efficientnet_lite0",
        weights="DEFAULT",
        base="simclr",
        aug_types=("color",),
        aug_weights=weight,
        image_size=side,
        max_epochs=3,
        batch_size=64,
        lr=0.3,
        device="cpu",
        random_state=0,
    ).fit(images)


extractors = {
    "frozen": DeepFeatureExtractor("efficientnet_lite0", image_size=side, device="cpu"),
    "SimCLR": finetuned(0.0),
    "SimCLR + AugSelf": finetuned(1.0),
}
probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
scores = {}
for name, extractor in extractors.items():
    features = extractor.transform(images)
    scores[name] = cross_val_score(probe, features, hue_class, cv=4)
    print(f"{name:>17}: hue-shift accuracy {scores[name].mean():.3f}")

# %%
# The colour head's loss falls while the backbone trains:
history = extractors["SimCLR + AugSelf"].net_.history
print("aux_color per epoch:", np.round(history[:, "aux_color"], 4))

fig, ax = plt.subplots(figsize=(5, 3))
names = list(scores)
ax.bar(
    names,
    [scores[n].mean() for n in names],
    yerr=[scores[n].std() for n in names],
    color=["grey", "C0", "C1"],
)
ax.axhline(0.25, color="k", linestyle=":", label="chance")
ax.set_ylabel("probe accuracy (hue shift)")
ax.set_ylim(0, 1)
ax.legend()
fig.tight_layout()
plt.show()

# %%
# When this example was written, the probe read the hue shift with accuracy
# 0.875 from the frozen features, 0.781 after SimCLR alone and 0.872 after
# SimCLR with the colour head (4-fold cross-validation; chance 0.25).  Three
# epochs of plain SimCLR already erase part of the colour information; the
# AugSelf head keeps it, but at this scale no fine-tuning beats the frozen
# features.  Fine-tuning pays when the images differ from ImageNet and there
# are enough of them for many epochs; the frozen extractor stays the baseline.
