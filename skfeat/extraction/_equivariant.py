# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""EquivariantExtractor: embeddings that learned linear maps steer."""

import copy
import os
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted
from skorch.callbacks import PassthroughScoring
from torch.utils.data import Dataset, Subset

from skfeat._engine import EquivariantNet, ssl_callbacks
from skfeat._engine._color import fit_color_steering
from skfeat._engine._equivariant import EQUIVARIANCE_LOSSES
from skfeat._engine._ssl import BASES
from skfeat.extraction._ood import ood_scores
from skfeat.extraction._self_supervised import (
    DISTRIBUTED_PARAMETER_DOCS,
    _SelfSupervisedExtractor,
)
from skfeat.models._feature_map import feature_map, feature_map_layer
from skfeat.nn import (
    ColorSteering,
    DiscreteSteering,
    ExpmSteering,
    HyperSteering,
    SSLModel,
    color_bilinear_pool,
    lightness_image,
)
from skfeat.nn._feature_aug import OPERATORS
from skfeat.nn._ssl import MOCO_QUEUE_SIZE
from skfeat.nn._steering import D4_ELEMENTS, orbit_permutation
from skfeat.transforms import (
    AugmentationPipeline,
    RandomCircularShift,
    RandomHorizontalFlip,
    RandomResizedCrop,
    SteeredAugmentation,
)
from skfeat.transforms._steered import COLOR_PARAMS, D4_PARAMS, VECTOR_PARAMS
from skfeat.utils import autocast_dtype
from skfeat.utils._docstring import fill_parameter_docs
from skfeat.utils._torch import draw_seed
from skfeat.utils._warnings import warn_caller

STEERINGS = {
    "expm": ExpmSteering,
    "hyper": HyperSteering,
    "discrete": DiscreteSteering,
    "orbit": None,
    "color": ColorSteering,
}
UNTRAINED = ("orbit", "color")  # steerings that keep the starting backbone
ORBIT_MODES = ("invariant", "concat")
N_REFERENCE = 1024  # training embeddings kept for ood_score
N_OOD_PARAMS = 32  # default steered embeddings per image in ood_score
N_HELD_OUT = 256  # most images held out of training to measure equivariance_error_
N_COLOR_IMAGES = 1024  # most training images the colour maps are fitted on
# equivariance_error_ ratio above which fit warns that steering does not work
STEERING_WARN_RATIO = 0.95


@fill_parameter_docs(DISTRIBUTED_PARAMETER_DOCS)
class EquivariantExtractor(_SelfSupervisedExtractor):
    """Embeddings that learned linear maps steer like augmentations.

    ``fit`` learns a steering map ``M(g)`` so that the embedding of an
    augmented input is predicted from the original one,
    ``f(T_g x) ~ M(g) f(x)``, for the augmentation parameters g named by
    ``steered`` (colour jitter by default), with ``M(0) = I`` exactly.  On
    images with colour parameters the default (``steering="color"``) keeps
    the pretrained backbone frozen and makes its embedding steerable by
    construction: the features of the image's lightness times the colour of
    the pixels under them, which colour jitter moves by a 3 x 3 map that
    ``fit`` learns in seconds.  The other steerings train the backbone and
    the map together, as the paper does: the base objective on two views
    made with the augmentations that are *not* steered, plus
    ``equivariance_weight`` times the equivariance loss (on real photos
    their maps stay near the identity at the budgets measured; see the User
    Guide).  Augmentations then cost a matrix product in embedding space:
    :meth:`transform_augmented` returns K steered embeddings of each image
    from one encoder pass, which makes test-time augmentation
    (:class:`~skfeat.SteeredTTAClassifier`) and OOD scores (:meth:`ood_score`)
    cheap.

    The idea and its claims come from the abstract of arXiv 2302.11349
    (no public code); the parameterisation of ``M``, the losses, the
    colour-bilinear embedding and the defaults are skfeat's.  Read more in the
    :ref:`User Guide <equivariant_extractor>`
    (section "Steerable embeddings: ``EquivariantExtractor``" of
    ``docs/user_guide.rst``).

    Parameters
    ----------
    model : str or callable, default="resnet18"
        Backbone, as for :class:`~skfeat.DeepFeatureExtractor`.
    weights : str, os.PathLike, WeightsEnum or None, default="DEFAULT"
        Starting weights, as for :class:`~skfeat.AugSelfExtractor`:
        ``"DEFAULT"`` is the model's pretrained weights (its own
        initialisation for models without any), None a random start.
    steered : tuple of str, default=("brightness", "contrast", "saturation", \
"hue")
        The steered augmentation parameters, in the column order of every
        ``params`` argument: colour parameters for images (factors ``1 + g``
        for the first three, hue shift ``g`` turns), ``"rot90"`` (g in
        {0..3}) and ``"flip"`` (g in {0, 1}) with ``steering="discrete"``,
        ``"scale"`` (factor ``exp(g)``) and ``"rotate"`` (``g`` radians about
        the grey axis) on the last 3 features of vectors.  Ignored by
        ``steering="orbit"``, whose params are always ``(rot90, flip)``.
    steering : {"auto", "color", "expm", "hyper", "discrete", "orbit"}, \
default="auto"
        ``"auto"`` is ``"color"`` for images with colour parameters,
        ``"discrete"`` for images with ``"rot90"``/``"flip"`` and ``"expm"``
        for vectors.  ``"color"``: the frozen backbone's feature map of the
        image's HSL lightness (standardised per image), times the mean YIQ
        colour under each cell, averaged over cells (3 values per feature);
        ``M(g) = I (x) expm(sum_j g_j A_j)`` with 3 x 3 generators fitted by
        Adam on the training images, each embedded as it is and under one g
        per steered parameter and one with all (up to 1024 images; the
        backbone is not trained and the training parameters below are
        ignored); convolutional backbones only.
        ``"expm"``: ``M(g) = expm(sum_j g_j A_j)`` with learned generators;
        ``"hyper"``: ``I + U diag(h(g)) V^T``; ``"discrete"``: one learned map
        per D4 element; ``"orbit"``: the training-free D4 orbit baseline
        (no training; 8 encoder passes per image in ``transform``).
    block_size : int, default=None
        Width of the diagonal blocks of the ``"expm"`` generators; None is
        full generators up to 256 features and 64-wide blocks beyond.
    rank : int, default=None
        Rank of the ``"expm"`` generators (instead of blocks) or of the
        ``"hyper"`` correction (None: ``min(d, 16)``).
    base : {"simclr", "simsiam", "byol", "moco", "supervised"}, default="simclr"
        Objective on the non-steered views: a random resized crop and a
        horizontal flip (unless flips are steered) for images, a circular
        shift of the features before the steered block for vectors.
        ``"supervised"`` is cross-entropy with the labels ``y``.
    equivariance_loss : {"nce", "mse"}, default="nce"
        InfoNCE between ``M(g) f(x)`` and ``f(T_g x)`` with the other rows as
        negatives, or the squared distance of the normalised pair.
    equivariance_weight : float, default=1.0
        Weight of the equivariance loss.
    temperature : float, default=0.1
        Temperature of the InfoNCE losses (the SimCLR or MoCo base loss and
        the ``"nce"`` equivariance loss share it).  0.1 is the value measured
        to reach the equivariance targets of the toy task in the User
        Guide; 0.2 falls short.
    orbit_mode : {"invariant", "concat"}, default="invariant"
        ``steering="orbit"`` only: the mean of the 8 D4 embeddings, or their
        concatenation (exactly equivariant: ``steer`` permutes blocks).
    max_epochs : int, default=100
        Training epochs.
    batch_size : int, default=256
        Samples per training step and per ``transform`` batch.
    lr : float, default=0.03
        Base SGD learning rate, scaled by ``batch_size / 256``, cosine-annealed.
    weight_decay : float, default=5e-4
        SGD weight decay (also of the steering map).
    momentum : float, default=0.9
        SGD momentum.
    feature_augmentation : {"gaussian", "dropout", "interpolate"} or None, \
default=None
        Feature augmentation of the base loss at the projector (see
        :class:`~skfeat.AugSelfExtractor`); never of the equivariance loss.
    fa_strength : float, default=0.1
        Noise scale, drop probability or interpolation range.
    image_size : int, default=None
        Side of the training views and of the ``transform`` crop.
    validation_fraction : float, default=0.1
        Share of the training samples (at most 256) held out of training to
        measure ``equivariance_error_``; with 0, or too few samples, it is
        measured on up to 256 training samples instead.
    checkpoint : str or os.PathLike, default=None
        Directory of the per-epoch training state, as for
        :class:`~skfeat.AugSelfExtractor` (resume, refusal of other fits).
    warm_start : bool, default=False
        When True and the extractor is fitted, ``fit`` continues training
        the fitted backbone, heads and steering map for ``max_epochs`` more
        epochs with a new cosine schedule, as for
        :class:`~skfeat.AugSelfExtractor`.
    {accelerator}
    gather_negatives : bool, default=True
        With several processes, score the contrastive losses (the SimCLR base
        and the ``"nce"`` equivariance loss; the MoCo queue takes every
        process's keys) against every process's rows, gathered with their
        gradients, as in one process; False keeps each process's own rows
        (less communication, fewer negatives).
    {sync_batchnorm}
    device : str or torch.device, default="auto"
        Training and extraction device; ``"auto"`` picks CUDA when available.
    precision : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Autocast precision; ``"auto"`` is mixed precision on CUDA only.
    memory : str, os.PathLike or joblib.Memory, default=None
        Per-sample feature cache of ``transform``, keyed by the weights.
    num_workers : int, default=0
        ``DataLoader`` workers for decoding images.
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation, shuffling, augmentations and of the
        training embeddings kept for :meth:`ood_score`.
    verbose : int, default=0
        0 is silent, as scikit-learn estimators are inside
        ``cross_val_score`` or ``GridSearchCV``; 1 shows one labelled bar
        over the batches of the fit with the epoch and its running loss (and
        one over ``transform``'s batches); 2 also prints a table of every
        epoch's losses (each AugSelf head's too).

    Attributes
    ----------
    backbone_ : skfeat.models.Backbone
        The trained (or, for ``"orbit"`` and ``"color"``, the starting)
        backbone, in eval mode.
    steering_ : torch.nn.Module or None
        The steering map, on the CPU (``generators`` holds the ``"expm"``
        and ``"color"`` generators); None for ``"orbit"``.
    color_layer_ : str
        ``"color"`` only: the module of ``backbone_.body`` whose output map
        is pooled (the last spatial map before global pooling).
    net_ : skorch.NeuralNet or None
        The training engine (history with ``train_loss`` and
        ``equivariance``); None for ``"orbit"`` and ``"color"``.
    equivariance_error_ : dict or None
        How well the steering works on the held-out samples (see
        ``validation_fraction``): ``"params"`` lists each steered parameter
        and ``"all"``; ``"steered"`` and ``"unsteered"`` hold, for g drawn
        from the training range of that parameter alone (or of all), the mean
        relative error ``||p - f(T_g x)|| / ||f(T_g x)||`` of the prediction
        ``p = M(g) f(x)`` and of ``p = f(x)``; ``"ratio"`` is their quotient
        (1 when the maps do nothing; ``fit`` warns above 0.95);
        ``"n_samples"`` counts the samples.  None for ``"orbit"``.
    reference_embeddings_ : ndarray of shape (n_reference, n_features_out)
        L2-normalised embeddings of up to 1024 training samples.
    n_features_in_ : int
        Number of input columns; set only for vector backbones.
    n_iter_ : int
        Epochs trained (0 for ``"orbit"``; passes of the colour-map fit for
        ``"color"``).
    loss_curve_ : list of float
        Mean training loss of every epoch (the relative error of the colour
        maps for ``"color"``).
    weights_ : str
        The starting weights, resolved (see
        :class:`~skfeat.AugSelfExtractor`).

    See Also
    --------
    skfeat.SteeredTTAClassifier : Test-time augmentation in embedding space.
    skfeat.AugSelfExtractor : Features that keep augmentation information.

    Examples
    --------
    >>> import numpy as np
    >>> from skfeat import EquivariantExtractor
    >>> X = np.random.RandomState(0).randn(64, 8).astype(np.float32)
    >>> extractor = EquivariantExtractor(
    ...     "mlp", steered=("scale", "rotate"), max_epochs=2, batch_size=32,
    ...     random_state=0).fit(X)
    >>> Z = extractor.transform(X)
    >>> Z.shape
    (64, 32)
    >>> bool(np.array_equal(extractor.steer(Z, [0.0, 0.0]), Z))
    True
    >>> extractor.transform_augmented(X, [[0.1, 0.0], [0.0, 0.5]]).shape
    (64, 2, 32)
    """

    _parameter_constraints = {
        **_SelfSupervisedExtractor._parameter_constraints,
        "steered": [tuple, list],
        "steering": [StrOptions({"auto", *STEERINGS})],
        "block_size": [Interval(Integral, 1, None, closed="left"), None],
        "rank": [Interval(Integral, 1, None, closed="left"), None],
        "base": [StrOptions(set(BASES))],
        "equivariance_loss": [StrOptions(set(EQUIVARIANCE_LOSSES))],
        "equivariance_weight": [Interval(Real, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "orbit_mode": [StrOptions(set(ORBIT_MODES))],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "feature_augmentation": [StrOptions(set(OPERATORS)), None],
        "fa_strength": [Interval(Real, 0, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "checkpoint": [str, os.PathLike, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        model="resnet18",
        *,
        weights="DEFAULT",
        steered=COLOR_PARAMS,
        steering="auto",
        block_size=None,
        rank=None,
        base="simclr",
        equivariance_loss="nce",
        equivariance_weight=1.0,
        temperature=0.1,
        orbit_mode="invariant",
        max_epochs=100,
        batch_size=256,
        lr=0.03,
        weight_decay=5e-4,
        momentum=0.9,
        feature_augmentation=None,
        fa_strength=0.1,
        image_size=None,
        validation_fraction=0.1,
        checkpoint=None,
        warm_start=False,
        accelerator=None,
        gather_negatives=True,
        sync_batchnorm=True,
        device="auto",
        precision="auto",
        memory=None,
        num_workers=0,
        random_state=None,
        verbose=0,
    ):
        self.model = model
        self.weights = weights
        self.steered = steered
        self.steering = steering
        self.block_size = block_size
        self.rank = rank
        self.base = base
        self.equivariance_loss = equivariance_loss
        self.equivariance_weight = equivariance_weight
        self.temperature = temperature
        self.orbit_mode = orbit_mode
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.feature_augmentation = feature_augmentation
        self.fa_strength = fa_strength
        self.image_size = image_size
        self.validation_fraction = validation_fraction
        self.checkpoint = checkpoint
        self.warm_start = warm_start
        self.accelerator = accelerator
        self.gather_negatives = gather_negatives
        self.sync_batchnorm = sync_batchnorm
        self.device = device
        self.precision = precision
        self.memory = memory
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the backbone and the steering map on ``X``.

        With ``steering="orbit"`` nothing is trained and with ``"color"``
        only the colour maps are: the starting backbone is kept.

        Parameters
        ----------
        X : array-like, sequence of images or torch.utils.data.Dataset
            Training images, in any input ``DeepFeatureExtractor`` accepts,
            or a 2-D array for vector backbones.
        y : array-like of shape (n_samples,), default=None
            Labels, used only by ``base="supervised"``.

        Returns
        -------
        self : object
            The fitted extractor.
        """
        kind, X = self._validate_input(X, reset=True)
        self._steering = self._resolve_steering(kind)
        self._check_settings(kind, X)
        self._check_processes()
        seed = self._shared_seed()
        device = self._device()
        backbone = self._starting_backbone(kind, X)
        if self._steering in UNTRAINED:
            self.backbone_ = backbone.to(device).eval().requires_grad_(False)
            self.net_ = None
        if self._steering == "orbit":
            self.steering_, self.equivariance_error_ = None, None
            self.n_iter_, self.loss_curve_ = 0, []
        else:
            color = self._steering == "color"
            labels, n_classes = (None, None) if color else self._encode_labels(y)
            samples = self._training_samples(kind, X, backbone, labels)
            samples, labels, held_out = self._hold_out(samples, labels, seed)
            if color:
                self._fit_color_maps(samples, seed, device)
            else:
                dim = self._feature_width(backbone, samples)
                net = self._build_net(
                    backbone, dim, kind, X, n_classes, len(samples), seed, device
                )
                self._train(net, samples, labels, seed, device)
                steering = copy.deepcopy(net.steering_).cpu()
                self.steering_ = steering.eval().requires_grad_(False)
            n_features = X.shape[1] if kind == "vector" else None
            self.equivariance_error_ = self._equivariance_error(
                held_out, n_features, seed
            )
            self._warn_if_not_steering()
        self.reference_embeddings_ = self._reference_embeddings(X, kind, seed)
        return self

    def transform(self, X):
        """Embed ``X`` with the fitted backbone (the D4 orbit for ``"orbit"``).

        Parameters
        ----------
        X : array-like, sequence of images or torch.utils.data.Dataset
            Images, or a 2-D array for vector backbones.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, n_features_out), dtype float32
            Rows in the order of ``X``.
        """
        check_is_fitted(self)
        return self._extract_features(X)

    def steer(self, Z, params):
        """Apply the steering map ``M(g)`` to embeddings.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_features_out)
            Embeddings from :meth:`transform`.
        params : array-like of shape (n_params,) or (n_samples, n_params)
            One g for every row, or one per row; columns in the order of
            ``steered`` (``(rot90, flip)`` for ``"orbit"``).  Zeros return
            ``Z`` unchanged.

        Returns
        -------
        steered : ndarray of shape (n_samples, n_features_out), dtype float32
            ``M(g_i) z_i`` in row i.
        """
        check_is_fitted(self)
        Z = check_array(Z, dtype=np.float32)
        width = self.reference_embeddings_.shape[1]
        if Z.shape[1] != width:
            raise ValueError(
                f"Z has {Z.shape[1]} columns; steer takes embeddings from "
                f"transform, which have {width} (n_features_out)."
            )
        params = self._check_params(params, allow_rows=len(Z))
        if self._steering == "orbit":
            return self._permute_orbit(Z, params)
        with torch.no_grad():
            z = torch.from_numpy(Z)
            g = torch.from_numpy(params)
            if g.ndim == 1:
                steered = self.steering_.steer_all(z, g)
            else:
                steered = self.steering_(z, g)
        if not torch.isfinite(steered).all():
            raise ValueError(
                "The steering parameters are too large: the steered embeddings "
                "overflow. The maps were fitted on the range of sample_params; stay "
                "near it."
            )
        return steered.numpy()

    def transform_augmented(self, X, params_list):
        """Embed ``X`` once and steer it by each of K parameter vectors.

        Parameters
        ----------
        X : array-like, sequence of images or torch.utils.data.Dataset
            Inputs, as for :meth:`transform`.
        params_list : array-like of shape (K, n_params)
            The K parameter vectors g_k (see :meth:`steer`).

        Returns
        -------
        embeddings : ndarray of shape (n_samples, K, n_features_out)
            ``M(g_k) f(x)``: one encoder pass per input.
        """
        check_is_fitted(self)
        params_list = self._check_params(params_list, allow_rows=None, many=True)
        Z = self.transform(X)
        return np.stack([self.steer(Z, g) for g in params_list], axis=1)

    def sample_params(self, n_samples, random_state=None):
        """Draw augmentation parameters from the training distribution of g.

        Parameters
        ----------
        n_samples : int
            Number of parameter vectors.
        random_state : int, RandomState instance or None, default=None
            Seed of the draw.

        Returns
        -------
        params : ndarray of shape (n_samples, n_params), dtype float32
            For ``"orbit"``, random D4 elements ``(rot90, flip)``.
        """
        check_is_fitted(self)
        generator = torch.Generator().manual_seed(draw_seed(random_state))
        return self._steered_augmentation().sample(n_samples, generator).numpy()

    def ood_score(self, X, params_list=None):
        """Out-of-distribution score: higher is further from the training data.

        Each input's embedding is compared with the kept training embeddings
        (one minus the largest cosine) as it is and steered by every g_k.
        Two parts come out: the *residual*, the distance after the best
        steered change (what steering cannot explain: noise, blur, other
        content), and the *shift*, how much closer that change brings the
        input (a shift along the steered transformations, such as a colour
        cast).  Each part is standardised by its mean and standard deviation
        over up to 256 kept training embeddings, each compared with the
        others, and the score is the larger: an input is out of distribution
        when either part is unusual.  With steering that changes nothing the
        score ranks inputs as the plain nearest-neighbour distance does (see
        the User Guide).

        Parameters
        ----------
        X : array-like, sequence of images or torch.utils.data.Dataset
            Inputs, as for :meth:`transform`.
        params_list : array-like of shape (K, n_params), default=None
            The steered changes g_k; g = 0 is always added.  None uses 31
            draws of :meth:`sample_params` with a fixed seed (the 8 D4
            elements for ``"orbit"``).

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            In standard deviations of the training embeddings' own parts:
            around 0 to 1 for new inputs like the training data.  The
            training inputs themselves score lower (each is its own nearest
            kept embedding), so set a threshold on held-out data.
        """
        check_is_fitted(self)
        if params_list is None:
            params_list = self._default_ood_params()
        params_list = self._check_params(params_list, allow_rows=None, many=True)
        return ood_scores(
            self.steer, self.transform(X), self.reference_embeddings_, params_list
        )

    def _default_ood_params(self):
        if self._steering == "orbit":
            return np.array(D4_ELEMENTS, dtype=np.float32)
        return self.sample_params(N_OOD_PARAMS - 1, random_state=0)

    def _resolve_steering(self, kind):
        """Return the steering that ``"auto"`` stands for with these inputs."""
        if self.steering != "auto":
            return self.steering
        if kind == "vector":
            return "expm"
        return "discrete" if set(self.steered) <= set(D4_PARAMS) else "color"

    def _check_settings(self, kind, X):
        """Check the parameters that depend on each other or on the input kind."""
        if self._steering == "orbit":
            if kind == "vector":
                raise ValueError(
                    "steering='orbit' rotates and flips images; it needs image "
                    "inputs and an image backbone, got vectors."
                )
            return
        if self._steering == "color" and kind == "vector":
            raise ValueError(
                "steering='color' pools image colours; it needs image inputs "
                "and an image backbone, got vectors."
            )
        if self._steering == "discrete":
            valid = D4_PARAMS if kind == "image" else ()
        else:
            valid = COLOR_PARAMS if kind == "image" else VECTOR_PARAMS
        steered = list(self.steered)
        if (
            not steered
            or len(set(steered)) != len(steered)
            or set(steered) - set(valid)
        ):
            raise ValueError(
                f"steered must be distinct names among {valid} for steering="
                f"{self._steering!r} and {kind} inputs; got {tuple(self.steered)!r}."
            )
        if kind == "vector" and "rotate" in steered and X.shape[1] < 3:
            raise ValueError(
                f"steered 'rotate' turns the last 3 features; X has {X.shape[1]}."
            )
        if self.block_size is not None and self.rank is not None:
            raise ValueError("Set at most one of block_size and rank, not both.")
        if self.feature_augmentation is not None and self.base == "supervised":
            raise ValueError(
                "feature_augmentation acts on a self-supervised base loss; it is "
                "not available with base='supervised'."
            )
        if self.feature_augmentation == "dropout" and self.fa_strength >= 1:
            raise ValueError(
                "fa_strength is the drop probability of feature_augmentation="
                f"'dropout' and must be < 1; got {self.fa_strength!r}."
            )

    def _check_params(self, params, allow_rows, many=False):
        """Return ``params`` as float32 of shape (k,), (n, k) or, with many, (K, k)."""
        name = "params_list" if many else "params"
        try:
            params = np.asarray(params, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{name} must be an array-like of numbers; got {type(params).__name__} "
                f"({error})."
            ) from None
        columns = D4_PARAMS if self._steering == "orbit" else tuple(self.steered)
        width = len(columns)
        if many:
            expected = f"(K, {width})"
            shape_ok = params.ndim == 2 and params.shape[1] == width
        else:
            expected = f"({width},) or (n_samples, {width}) with n_samples={allow_rows}"
            shape_ok = params.shape in ((width,), (allow_rows, width))
        if not shape_ok:
            raise ValueError(
                f"{name} must have shape {expected}, one column per steered "
                f"parameter {columns}; got shape {params.shape}."
            )
        if not np.isfinite(params).all():
            raise ValueError(f"{name} must be finite; got NaN or infinite values.")
        return params

    def _hold_out(self, samples, labels, seed):
        """Split off ``validation_fraction`` of the samples (at most 256).

        Returns the training samples and labels, and the samples on which
        ``equivariance_error_`` is measured: the held-out ones, or up to 256
        training samples when none are held out.
        """
        n = len(samples)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        n_held = min(int(self.validation_fraction * n), N_HELD_OUT)
        if n_held == 0 or n - n_held < 2:
            return samples, labels, _rows(samples, order[:N_HELD_OUT].sort().values)
        held, kept = order[:n_held].sort().values, order[n_held:].sort().values
        labels = None if labels is None else labels[kept]
        return _rows(samples, kept), labels, _rows(samples, held)

    def _equivariance_error(self, samples, n_features, seed):
        """Relative errors of steered and unsteered embeddings, per parameter.

        For each steered parameter alone (the others at 0) and for all
        together, g is drawn from its training range and the error of a
        prediction p of ``f(T_g x)`` is ``||p - f(T_g x)|| / ||f(T_g x)||``,
        averaged over the samples whose g is not the identity; p is
        ``M(g) f(x)`` (steered) or ``f(x)`` (unsteered).
        """
        augmentation = self._steered_augmentation(n_features)
        generator = torch.Generator().manual_seed(seed + 3)
        names = [*augmentation.names, "all"]
        totals = np.zeros((2, len(names)))
        counts = np.zeros(len(names))
        loader = torch.utils.data.DataLoader(samples, batch_size=self.batch_size)
        for batch in loader:
            x = batch.float() / 255 if batch.dtype == torch.uint8 else batch
            z = self._embed(x)
            for j, g in enumerate(_each_then_all(augmentation, len(x), generator)):
                moved = g.abs().sum(1) > 0
                if not moved.any():
                    continue
                target = self._embed(augmentation.apply(x[moved], g[moved]))
                with torch.no_grad():
                    steered = self.steering_(z[moved], g[moved])
                scale = target.norm(dim=1).clamp_min(1e-12)
                for row, prediction in enumerate((steered, z[moved])):
                    error = (prediction - target).norm(dim=1) / scale
                    totals[row, j] += float(error.sum())
                counts[j] += int(moved.sum())
        steered, unsteered = totals / np.maximum(counts, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = steered / unsteered
        return {
            "params": names,
            "steered": steered,
            "unsteered": unsteered,
            "ratio": ratio,
            "n_samples": len(samples),
        }

    def _fit_color_maps(self, samples, seed, device):
        """Find the pooled feature map, then fit the 3 x 3 colour maps.

        Each of up to 1024 training images is embedded as it is and under one
        g per steered parameter alone and one with all of them, as
        ``equivariance_error_`` measures; the generators minimise the
        relative error of the steered embeddings.
        """
        probe = samples[0][None].float().to(device) / 255
        probe = self._network_input(self.backbone_, lightness_image(probe))
        with torch.inference_mode():
            self.color_layer_ = feature_map_layer(self.backbone_, probe)
        order = torch.randperm(
            len(samples), generator=torch.Generator().manual_seed(seed)
        )
        subset = _rows(samples, order[:N_COLOR_IMAGES].sort().values)
        augmentation = self._steered_augmentation()
        generator = torch.Generator().manual_seed(seed + 4)
        embeddings, params, targets = [], [], []
        for batch in torch.utils.data.DataLoader(subset, batch_size=self.batch_size):
            x = batch.float() / 255
            z = self._embed(x)
            for g in _each_then_all(augmentation, len(x), generator):
                embeddings.append(z)
                params.append(g)
                targets.append(self._embed(augmentation.apply(x, g)))
        net = fit_color_steering(
            torch.cat(embeddings),
            torch.cat(params),
            torch.cat(targets),
            seed=seed,
            device=device,
        )
        self.steering_ = net.module_.cpu().eval().requires_grad_(False)
        self.loss_curve_ = list(net.history[:, "train_loss"])
        self.n_iter_ = len(self.loss_curve_)

    def _embed(self, x):
        """Embeddings of a float batch (pixels in [0, 1] or vectors), on the CPU."""
        with torch.inference_mode():
            x = x.to(self._device())
            return self._forward_batch(self.backbone_, x).float().cpu()

    def _warn_if_not_steering(self):
        """Warn when steering explains too little of the held-out embedding change."""
        error = self.equivariance_error_
        ratio = error["ratio"][-1]
        if not error["unsteered"][-1] > 0:
            warn_caller(
                "The steered augmentations do not change the embeddings of the "
                f"{error['n_samples']} samples of equivariance_error_, so there "
                "is nothing to steer: check that the inputs carry what the "
                f"steered parameters {tuple(error['params'][:-1])} change (colour "
                "for colour jitter) and are not too small for the backbone.",
                ConvergenceWarning,
            )
        elif not ratio <= STEERING_WARN_RATIO:
            if self._steering == "color":
                advice = "Fit on more, and more varied, colour images"
            elif set(self.steered) <= set(COLOR_PARAMS):
                advice = (
                    "Train longer (max_epochs) or on more images, or use "
                    "steering='color'"
                )
            else:
                advice = "Train longer (max_epochs) or on more images"
            warn_caller(
                "The steering maps explain little of how the augmentations "
                f"move the embeddings: on the {error['n_samples']} samples of "
                f"equivariance_error_ the steered error is {ratio:.2f} times "
                "the unsteered one, so steer, transform_augmented, "
                "SteeredTTAClassifier and ood_score add little over the plain "
                f"embedding. {advice}; see the User Guide on what steering "
                "reaches on real photos.",
                ConvergenceWarning,
            )

    def _steered_augmentation(self, n_features=None):
        names = D4_PARAMS if self._steering == "orbit" else self.steered
        start = 0 if n_features is None else max(n_features - 3, 0)
        return SteeredAugmentation(names, start=start)

    def _base_views(self, kind, X, backbone):
        """Return the non-steered augmentations of the two base views."""
        if kind == "vector":
            start = self._steered_augmentation(X.shape[1]).start
            return AugmentationPipeline(
                [RandomCircularShift(start)] if start > 1 else []
            )
        size = self._eval_preprocessing(backbone).crop_size
        views = [RandomResizedCrop(size)]
        if "flip" not in self.steered or self._steering != "discrete":
            views.append(RandomHorizontalFlip())
        return AugmentationPipeline(views)

    def _steering_params(self, dim):
        steering = {"dim": dim}
        augmentation = self._steered_augmentation()
        if self._steering == "discrete":
            return {**steering, "sizes": augmentation.sizes}
        steering["n_params"] = len(self.steered)
        if self._steering == "expm":
            steering["block_size"] = self.block_size
        return {**steering, "rank": self.rank}

    def _build_net(self, backbone, dim, kind, X, n_classes, n_samples, seed, device):
        verbose = self._engine_params()["verbose"]
        callbacks = ssl_callbacks(self.base, [], self.max_epochs, verbose)
        callbacks.append(
            ("equivariance", PassthroughScoring(name="equivariance", on_train=True))
        )
        callbacks += self._checkpoint_callbacks()
        n_features = X.shape[1] if kind == "vector" else None
        steering = {
            f"steering__{key}": value
            for key, value in self._steering_params(dim).items()
        }
        return EquivariantNet(
            SSLModel,
            module__backbone=backbone,
            module__base=self.base,
            module__dim=dim,
            module__n_classes=n_classes,
            module__queue_size=min(MOCO_QUEUE_SIZE, max(n_samples, self.batch_size)),
            aux_heads__in_features=dim,
            aux_heads__aug_types={},
            steering=STEERINGS[self._steering],
            **steering,
            steered_augmentation=self._steered_augmentation(n_features),
            equivariance_loss=self.equivariance_loss,
            equivariance_weight=self.equivariance_weight,
            criterion=torch.nn.Identity,
            optimizer=torch.optim.SGD,
            optimizer__param_groups=(
                [("predictor.*", {})] if self.base == "simsiam" else []
            ),
            lr=self.lr * self.batch_size / 256,
            optimizer__momentum=self.momentum,
            optimizer__weight_decay=self.weight_decay,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=None,
            callbacks=callbacks,
            device=str(device),
            **self._engine_params(),
            augmentations=self._base_views(kind, X, backbone),
            base=self.base,
            temperature=self.temperature,
            feature_augmentation=self.feature_augmentation,
            feature_augmenter__strength=self.fa_strength,
            network_input=self._network_input,
            autocast_dtype=autocast_dtype(self.precision, device),
            seed=seed,
            num_workers=self.num_workers,
        )

    def _reference_embeddings(self, X, kind, seed):
        """L2-normalised embeddings of up to N_REFERENCE training samples."""
        n = X.shape[0] if kind == "vector" else len(X)
        rows = np.sort(np.random.RandomState(seed).permutation(n)[:N_REFERENCE])
        if n <= N_REFERENCE:
            subset = X
        elif kind == "vector":
            subset = X[rows]
        elif isinstance(X, Dataset):
            subset = Subset(X, rows)
        else:
            subset = [X[i] for i in rows]
        Z = self.transform(subset)
        return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)

    def _forward_batch(self, backbone, batch):
        """Embeddings of a batch (colour-bilinear or D4-orbit ones, see steering)."""
        if self._steering == "color":
            grey = self._network_input(backbone, lightness_image(batch))
            features = feature_map(backbone, self.color_layer_, grey)
            # float32 products: the colour maps are fitted to float32 embeddings
            with torch.autocast(batch.device.type, enabled=False):
                return color_bilinear_pool(features.float(), batch.float())
        if self._steering != "orbit":
            return super()._forward_batch(backbone, batch)
        orbit = [
            super(EquivariantExtractor, self)._forward_batch(
                backbone, torch.rot90(batch.flip(-1) if s else batch, k, (-2, -1))
            )
            for k, s in D4_ELEMENTS
        ]
        if self.orbit_mode == "concat":
            return torch.cat(orbit, 1)
        return torch.stack(orbit).mean(0)

    def _cache_identity(self, backbone):
        identity = super()._cache_identity(backbone)
        if self._steering == "orbit":
            identity["orbit_mode"] = self.orbit_mode
        if self._steering == "color":
            identity["color_bilinear_layer"] = self.color_layer_
        return identity

    def _permute_orbit(self, Z, params):
        """Steer concatenated orbit embeddings by a D4 element (a block permutation)."""
        if self.orbit_mode == "invariant":
            return Z.copy()
        if (
            not np.isin(params[..., 0], range(4)).all()
            or not np.isin(params[..., 1], range(2)).all()
        ):
            raise ValueError(
                "orbit params are (rot90 in {0, 1, 2, 3}, flip in {0, 1}); "
                f"got {params.tolist()}."
            )
        blocks = Z.reshape(len(Z), len(D4_ELEMENTS), -1)
        elements = np.broadcast_to(params, (len(Z), 2)).astype(int)
        out = np.empty_like(blocks)
        for element in {tuple(e) for e in elements.tolist()}:
            rows = (elements == element).all(1)
            out[rows] = blocks[rows][:, orbit_permutation(element)]
        return out.reshape(Z.shape)


def _each_then_all(augmentation, n, generator):
    """Yield n draws of g with each parameter alone (the others 0), then all."""
    width = len(augmentation.names)
    for j in range(width + 1):
        g = augmentation.sample(n, generator)
        if j < width:
            g[:, np.arange(width) != j] = 0
        yield g


def _rows(samples, rows):
    """Rows of an in-memory tensor, or a subset of a streamed dataset."""
    if isinstance(samples, torch.Tensor):
        return samples[rows]
    return Subset(samples, rows.tolist())
