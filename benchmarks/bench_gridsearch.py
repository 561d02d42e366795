"""A grid search over an extractor + SeA pipeline with the feature cache.

Times ``GridSearchCV(make_pipeline(DeepFeatureExtractor(model, memory=dir),
SeAClassifier()), {"seaclassifier__eta": 4 values}, cv=5)`` against the
floor: one extraction of every image plus the same probe fits on cached
features (``GridSearchCV(SeAClassifier(), ...)``).  Prints both, the ratio
(target <= 1.2), how many images reached the network, and the cache hit rate
of the search's feature look-ups.

Usage: python benchmarks/bench_gridsearch.py [--images 600] [--model resnet18]
"""

import argparse
import tempfile
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skfeat import DeepFeatureExtractor, SeAClassifier
from skfeat.extraction import _feature_cache
from skfeat.extraction._cache import cached_backbone

GRID = [0.0, 0.4, 0.8, 1.2]


class LookupCounter:
    """Counts feature-cache look-ups and hits by wrapping FeatureCache.get."""

    def __init__(self):
        self.lookups = self.hits = 0
        self._get = _feature_cache.FeatureCache.get

    def __enter__(self):
        counter = self

        def counting_get(cache, key):
            vector = counter._get(cache, key)
            counter.lookups += 1
            counter.hits += vector is not None
            return vector

        _feature_cache.FeatureCache.get = counting_get
        return self

    def __exit__(self, *exc):
        _feature_cache.FeatureCache.get = self._get


def main(n_images, model, image_size):
    digits = load_digits()
    images = (digits.images[:n_images] / 16.0).astype(np.float32)
    labels = digits.target[:n_images]
    forwarded = [0]
    params = dict(weights=None, image_size=image_size, batch_size=64, device="cpu")
    backbone = cached_backbone(
        model, weights=None, layer=None, pooling="avg", in_features=None, device="cpu"
    )
    backbone.register_forward_pre_hook(
        lambda m, args: forwarded.__setitem__(0, forwarded[0] + len(args[0]))
    )
    probe = SeAClassifier(max_epochs=30, random_state=0)

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        features = DeepFeatureExtractor(model, **params).transform(images)
        GridSearchCV(probe, {"eta": GRID}, cv=5).fit(features, labels)
        floor = time.perf_counter() - start
        forwarded[0] = 0

        search = GridSearchCV(
            make_pipeline(DeepFeatureExtractor(model, memory=cache, **params), probe),
            {"seaclassifier__eta": GRID},
            cv=5,
        )
        with LookupCounter() as counter:
            start = time.perf_counter()
            search.fit(images, labels)
            searched = time.perf_counter() - start
    print(
        f"{n_images} digits images, model={model} (image_size={image_size}), "
        f"{len(GRID)} etas x 5 folds + refit, threads={torch.get_num_threads()}"
    )
    print(f"  one extraction + probe search   {floor:7.2f} s")
    print(f"  pipeline search with memory=    {searched:7.2f} s")
    print(f"ratio = {searched / floor:.3f}  (target <= 1.2)")
    print(
        f"images through the network during the search: {forwarded[0]} "
        f"(unique images: {len(images)})"
    )
    print(
        f"cache look-ups {counter.lookups}, hits {counter.hits}, "
        f"hit rate {counter.hits / counter.lookups:.3f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=112)
    args = parser.parse_args()
    main(args.images, args.model, args.image_size)
