"""
===========================================================
Grid search over a deep pipeline, each image extracted once
===========================================================

``Pipeline(memory=...)`` caches ``fit_transform`` only, so ``predict`` and
``score`` run the backbone again for every fold and candidate.
``DeepFeatureExtractor(memory=...)`` caches features per image instead: we
count the images that reach the network during a 4 x 5 grid search.
"""

# %%
import tempfile

from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from torch import nn

from skfeat import DeepFeatureExtractor, SeAClassifier

digits = load_digits(n_class=5)
images, labels = digits.images[:200] / 16.0, digits.target[:200]

# %%
# A small network that counts the images it sees
# ----------------------------------------------
# ``model`` may be any zero-argument callable that returns an ``nn.Module``;
# this one records the size of every batch it is given.
seen = []


class CountingCNN(nn.Sequential):
    def __init__(self):
        super().__init__(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
        )

    def forward(self, x):
        seen.append(len(x))
        return super().forward(x)


def images_forwarded(memory):
    seen.clear()
    pipe = make_pipeline(
        DeepFeatureExtractor(CountingCNN, memory=memory, image_size=32, device="cpu"),
        SeAClassifier(eta=0.0, random_state=0),
    )
    search = GridSearchCV(pipe, {"seaclassifier__max_epochs": [5, 10, 20, 40]}, cv=5)
    search.fit(images, labels)
    return sum(seen)


# %%
# A 4 x 5 grid search with and without the feature cache
# ------------------------------------------------------
with tempfile.TemporaryDirectory() as cache:
    print("without a cache:", images_forwarded(None), "images through the network")
    print("with memory=   :", images_forwarded(cache), "images through the network")
    print("second search  :", images_forwarded(cache), "images through the network")
