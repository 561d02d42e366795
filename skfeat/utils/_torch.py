# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Device, precision and seeding helpers shared by the estimators."""

import contextlib

import torch

PRECISIONS = ("auto", "float32", "bfloat16", "float16")


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
