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

from skfeat import DeepFeatureExtractor, SeAClassifier
from skfeat.extraction._cache import cached_backbone

digits = load_digits(n_class=5)
images, labels = digits.images[:200] / 16.0, digits.target[:200]

seen = []
backbone = cached_backbone(
    "tiny_cnn", weights=None, layer=None, pooling="avg", in_features=None, device="cpu"
)
hook = backbone.register_forward_pre_hook(
    lambda module, args: seen.append(len(args[0]))
)


def images_forwarded(memory):
    seen.clear()
    pipe = make_pipeline(
        DeepFeatureExtractor("tiny_cnn", weights=None, memory=memory, device="cpu"),
        SeAClassifier(eta=0.0, random_state=0),
    )
    search = GridSearchCV(pipe, {"seaclassifier__max_epochs": [5, 10, 20, 40]}, cv=5)
    search.fit(images, labels)
    return sum(seen)


with tempfile.TemporaryDirectory() as cache:
    print("without a cache:", images_forwarded(None), "images through the network")
    print("with memory=   :", images_forwarded(cache), "images through the network")
    print("second search  :", images_forwarded(cache), "images through the network")
hook.remove()
