# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Shared base of the feature extractors: inputs, batched forward pass, cache."""

import os
from abc import ABCMeta, abstractmethod
from collections.abc import Mapping
from numbers import Integral

import joblib
import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
)
from sklearn.utils.validation import check_is_fitted, validate_data
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from skfeat.extraction._feature_cache import (
    FeatureCache,
    content_key,
    resolve_cache_directory,
    state_dict_digest,
)
from skfeat.extraction._inputs import VectorRows, image_dataset, looks_like_vectors
from skfeat.models._registry import backbone_input_kind
from skfeat.utils._torch import PRECISIONS, autocast_dtype, resolve_device


def model_identity(model):
    """Name a ``model`` parameter for cache keys: the string, or a callable's path."""
    if isinstance(model, str):
        return model
    qualname = getattr(model, "__qualname__", repr(model))
    return f"{getattr(model, '__module__', '')}.{qualname}"


class _BaseImageExtractor(
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
    metaclass=ABCMeta,
):
    """Base of skfeat's extractors: any supported input in, float32 rows out.

    It turns every input ``DeepFeatureExtractor`` accepts (image arrays in
    any layout, PIL images, file paths, torch Datasets, or 2-D tables for
    vector backbones) into a dataset, streams it through a network in
    batches on the configured device (autocast, channels-last, progress
    bar), and reads and fills the per-sample feature cache of ``memory``.
    It also gives ``_n_features_out`` (hence ``get_feature_names_out``) and
    the tags every extractor shares.

    A subclass fulfils this contract:

    - It has the parameters ``model``, ``image_size``, ``batch_size``,
      ``num_workers``, ``device``, ``precision``, ``memory`` and ``verbose``
      with the meaning documented by ``DeepFeatureExtractor``; their
      constraints are in ``_BaseImageExtractor._parameter_constraints``, to
      merge into its own.
    - ``_get_backbone(in_features)`` returns the network to run: a
      :class:`skfeat.models.Backbone` (``input_kind``, ``preprocessing``,
      ``weights_id``) in eval mode on ``self._device()``.
      ``in_features`` is the input width for vector backbones, None for
      images.  A frozen extractor takes it from the process cache
      (``_cache.cached_backbone``); a trainable one returns its own fitted
      ``backbone_`` (raising ``NotFittedError`` before ``fit``) and never
      touches that cache.
    - ``_cache_identity(backbone)`` returns a JSON-serialisable dict naming
      what determines the network's output (model, resolved weights, layer,
      ...).  A trainable extractor adds ``"weights_digest":
      state_dict_digest(backbone)``, so features of other fitted weights are
      never read back.
    - Its public ``fit`` and ``transform`` are its own (the docstrings
      differ): ``transform`` validates the parameters or checks that it is
      fitted, then returns ``self._extract_features(X)``.  A trainable
      ``fit`` reads its inputs with ``_validate_input(X, reset=True)``,
      decodes images once with ``_inputs.decode_uint8`` at the crop size of
      ``_eval_preprocessing(backbone)``, and feeds its network through
      ``_network_input``, as ``transform`` does.
    - Optionally, it overrides the per-batch hook ``_forward_batch(backbone,
      batch)`` (for instance to average over transformed copies of each
      batch).  A hook that changes the output must say so in
      ``_cache_identity``.
    """

    _parameter_constraints = {
        "model": [str, callable],
        "image_size": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "device": [str, torch.device],
        "precision": [StrOptions(set(PRECISIONS))],
        "memory": [None, str, os.PathLike, joblib.Memory],
        "verbose": ["verbose"],
    }

    def _validate_params(self):
        """Validate the parameters; a state dict as ``weights`` gets a short error.

        scikit-learn's message would print every tensor of the dict.
        """
        weights = getattr(self, "weights", None)
        if isinstance(weights, Mapping):
            raise InvalidParameterError(
                f"The 'weights' parameter of {type(self).__name__} must be a "
                "weights name, a checkpoint path or None; got a "
                f"{type(weights).__name__} of {len(weights)} entries (a state "
                "dict?). Save it with torch.save(state_dict, 'weights.pt') and "
                "pass weights='weights.pt'."
            )
        super()._validate_params()

    def _device(self):
        """Return the device of extraction: ``device``, resolved."""
        return resolve_device(self.device)

    @abstractmethod
    def _get_backbone(self, in_features):
        """Return the network to run, in eval mode on the device."""

    @abstractmethod
    def _cache_identity(self, backbone):
        """Return a JSON-serialisable dict naming what determines the output."""

    def _validate_input(self, X, *, reset):
        """Return ``("vector", float32 array)`` or ``("image", X)``.

        Vectors are validated against (or, with ``reset``, set)
        ``n_features_in_``; a reset on images forgets the input columns.
        """
        kind = backbone_input_kind(self.model)
        if kind is None:
            kind = "vector" if looks_like_vectors(X) else "image"
        if kind == "vector":
            return kind, validate_data(self, X, reset=reset, dtype=np.float32)
        if reset:  # a refit on images has no input columns
            self.__dict__.pop("n_features_in_", None)
            self.__dict__.pop("feature_names_in_", None)
        return kind, X

    def _prepare(self, X, *, reset):
        """Validate ``X``; return the backbone and a dataset of network inputs."""
        kind, X = self._validate_input(X, reset=reset)
        if kind == "vector":
            return self._get_backbone(X.shape[1]), VectorRows(X)
        backbone = self._get_backbone(None)
        transform = self._eval_preprocessing(backbone).resize_and_crop
        return backbone, image_dataset(X, transform)

    def _eval_preprocessing(self, backbone):
        """Return the backbone's preprocessing, cropped to ``image_size`` when set."""
        if self.image_size is None:
            return backbone.preprocessing
        return backbone.preprocessing.with_image_size(self.image_size)

    @staticmethod
    def _network_input(backbone, batch):
        """Normalise an image batch in [0, 1] and make it channels-last."""
        if batch.ndim != 4:  # vectors go in as they are
            return batch
        batch = backbone.preprocessing.normalize(batch)
        return batch.contiguous(memory_format=torch.channels_last)

    def _forward_batch(self, backbone, batch):
        """Per-batch hook: features of one batch already on the device.

        ``batch`` holds float images in [0, 1] of shape (n, 3, H, W), not yet
        normalised, or float32 vectors; it runs under ``torch.inference_mode``
        and autocast.  Returns a tensor with one row per sample.
        """
        return backbone(self._network_input(backbone, batch))

    def _stream(self, backbone, dataset, indices=None):
        """Yield float32 feature arrays batch by batch, in dataset order."""
        device = self._device()
        dtype = autocast_dtype(self.precision, device)
        loader = DataLoader(
            dataset if indices is None else Subset(dataset, indices),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=device.type == "cuda",
        )
        progress = tqdm(
            loader, disable=not self.verbose, desc="extracting", unit="batch"
        )
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=dtype, enabled=dtype is not None),
        ):
            for batch in progress:
                batch = batch.to(device, non_blocking=True)
                yield self._forward_batch(backbone, batch).float().cpu().numpy()

    def _extract_features(self, X):
        """Features of ``X``, through the feature cache when ``memory`` is set."""
        return self._features_of(*self._prepare(X, reset=False))

    def _features_of(self, backbone, dataset):
        """Features of a prepared dataset, through the cache when ``memory`` is set."""
        if self.memory is None:
            return np.concatenate(list(self._stream(backbone, dataset)))
        return self._extract_with_cache(backbone, dataset)

    @property
    def _n_features_out(self):
        """Width of the output vectors, probed on one sample."""
        if hasattr(self, "n_features_in_"):
            probe = np.zeros((1, self.n_features_in_), dtype=np.float32)
        elif backbone_input_kind(self.model) == "vector":
            raise AttributeError(
                "the output width of a vector backbone is known after fit"
            )
        else:  # any image size works: images are resized to the network's crop
            probe = np.zeros((1, 8, 8, 3), dtype=np.uint8)
        return np.concatenate(
            list(self._stream(*self._prepare(probe, reset=False)))
        ).shape[1]

    def _cache_config(self, backbone, dataset):
        """Everything that changes features: the network's identity and settings."""
        device = self._device()
        images = not isinstance(dataset, VectorRows)
        return {
            **self._cache_identity(backbone),
            "preprocessing": (
                repr(self._eval_preprocessing(backbone)) if images else None
            ),
            "autocast": str(autocast_dtype(self.precision, device)),
            "device_type": device.type,
        }

    def _extract_with_cache(self, backbone, dataset):
        """Read cached rows; extract each missing unique sample once and store it."""
        cache = FeatureCache(
            resolve_cache_directory(self.memory), self._cache_config(backbone, dataset)
        )
        keys = [content_key(dataset.raw(i)) for i in range(len(dataset))]
        found, first_missing = {}, {}
        for index, key in enumerate(keys):
            if key in found or key in first_missing:
                continue
            vector = cache.get(key)
            if vector is None:
                first_missing[key] = index
            else:
                found[key] = vector
        missing = list(first_missing.values())
        start = 0
        for features in self._stream(backbone, dataset, missing) if missing else ():
            for index, vector in zip(missing[start : start + len(features)], features):
                if not np.isnan(vector).all():  # an unreadable image is not stored
                    cache.put(keys[index], vector)
                found[keys[index]] = vector
            start += len(features)
        return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


class _BaseTrainableExtractor(_BaseImageExtractor):
    """Base of the extractors that train their own network in ``fit``.

    ``fit`` sets ``backbone_``, the trained network in eval mode; ``transform``
    runs it through the shared streaming pass, and the feature cache is keyed
    by a digest of its weights, so two fits that end with different weights
    never share cached features.  The frozen process cache is never used.
    """

    def _get_backbone(self, in_features):
        """Return the fitted backbone on the device."""
        check_is_fitted(self)
        return self.backbone_.to(self._device())

    def _cache_identity(self, backbone):
        return {
            "model": model_identity(self.model),
            "weights_digest": state_dict_digest(backbone),
        }
