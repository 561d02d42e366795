# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Device, precision, seeding and threading helpers shared by the estimators."""

import contextlib

import numpy as np
import torch
from sklearn.utils import check_random_state

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
TRAINING_PRECISIONS = ("auto", "float32", "float64")


def resolve_device(device):
    """Turn a ``device`` parameter into a :class:`torch.device`.

    ``"auto"`` picks the first CUDA device when one is available and the CPU
    otherwise.  It is resolved when called, so estimators call it inside
    ``fit``/``transform`` (in the worker process), never at import time.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...

    Returns
    -------
    device : torch.device
        The resolved device.

    Examples
    --------
    >>> from skfeat.utils import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'; "
                f"got {device!r}."
            ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine; use device='auto' or device='cpu'."
        )
    return resolved


def autocast_dtype(precision, device):
    """Return the autocast dtype for ``precision`` on ``device``, or None.

    Parameters
    ----------
    precision : {"auto", "float32", "bfloat16", "float16"}
        ``"auto"`` means bfloat16 on CUDA devices that support it, float16 on
        older CUDA devices and float32 (no autocast) on the CPU.
    device : torch.device
        The device the computation runs on.

    Returns
    -------
    dtype : torch.dtype or None
        None means full float32 precision.

    Examples
    --------
    >>> import torch
    >>> from skfeat.utils import autocast_dtype
    >>> autocast_dtype("auto", torch.device("cpu")) is None
    True
    >>> autocast_dtype("bfloat16", torch.device("cpu"))
    torch.bfloat16
    """
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "float32":
        return None
    return getattr(torch, precision)


def training_dtype(precision, device, input_dtype=None):
    """Return the dtype a probe trains in for ``precision`` on ``device``.

    Parameters
    ----------
    precision : {"auto", "float32", "float64"}
        ``"auto"`` follows the data, as scikit-learn's estimators that
        preserve dtypes do: on the CPU, float32 when the training features
        are float32 (every :class:`~skfeat.DeepFeatureExtractor` output is),
        float64 otherwise, which keeps sample weights exactly equivalent to
        repeated rows; on CUDA devices, where float64 runs at a small fraction
        of float32 speed, float32.
    device : torch.device
        The device the training runs on.
    input_dtype : numpy.dtype, default=None
        The dtype of the training features as the user passed them; None
        counts as float64.

    Returns
    -------
    dtype : torch.dtype
        ``torch.float32`` or ``torch.float64``.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from skfeat.utils import training_dtype
    >>> training_dtype("auto", torch.device("cpu"))
    torch.float64
    >>> training_dtype("auto", torch.device("cpu"), np.dtype(np.float32))
    torch.float32
    >>> training_dtype("float32", torch.device("cpu"))
    torch.float32
    """
    if precision != "auto":
        return getattr(torch, precision)
    if torch.device(device).type == "cuda" or input_dtype == np.float32:
        return torch.float32
    return torch.float64


@contextlib.contextmanager
def seeded(seed, device=None):
    """Seed torch inside a block without changing the global random state.

    Parameters
    ----------
    seed : int
        Seed passed to :func:`torch.manual_seed`.
    device : torch.device, default=None
        When a CUDA device is given, its generator is forked as well.

    Yields
    ------
    None

    Examples
    --------
    >>> import torch
    >>> from skfeat.utils import seeded
    >>> with seeded(0):
    ...     a = torch.rand(2)
    >>> with seeded(0):
    ...     b = torch.rand(2)
    >>> bool((a == b).all())
    True
    """
    devices = []
    if device is not None and torch.device(device).type == "cuda":
        devices = [torch.device(device)]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def torch_threads(n_threads=None):
    """Set torch's intra-op thread count inside a block; restore the caller's after.

    The caller's count is restored however the block ends, exceptions
    included, so the process-wide setting is never changed for good.  The
    setting is process-wide while the block runs: threads of the same process
    that use torch meanwhile see it too.

    Parameters
    ----------
    n_threads : int, default=None
        Intra-op threads inside the block (:func:`torch.set_num_threads`);
        None keeps the current count, for a block that may change it (such
        as a fit that tunes its threads) and must leave it as it was.

    Yields
    ------
    None

    Examples
    --------
    >>> import torch
    >>> from skfeat.utils import torch_threads
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    previous = torch.get_num_threads()
    if n_threads is not None and n_threads != previous:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def draw_seed(random_state):
    """Draw the int seed that drives an estimator's initialisation and shuffling.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        The estimator's ``random_state`` parameter.

    Returns
    -------
    seed : int
        A seed in ``[0, 2**31 - 1)``, for :func:`seeded` and torch generators.
    """
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
