# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Expand ``~`` and environment variables in the paths users give skfeat."""

import os


def expand_path(path):
    """Expand ``~`` and environment variables in a path, as a shell would.

    Estimators call it when they use a path (in ``fit`` or ``transform``),
    never in ``__init__``, so their parameters keep the value the user gave.
    Variables that are not set are left as written.

    Parameters
    ----------
    path : str or os.PathLike
        A file or directory path such as ``"~/.cache/skfeat"`` or
        ``"$SCRATCH/features"``.

    Returns
    -------
    path : str
        The path with ``~``, ``~user``, ``$NAME`` and ``${NAME}`` replaced.

    Examples
    --------
    >>> import os
    >>> from skfeat.utils import expand_path
    >>> expand_path("~/.cache/skfeat") == os.path.join(
    ...     os.path.expanduser("~"), ".cache", "skfeat"
    ... )
    True
    >>> expand_path("$SKFEAT_UNSET_VARIABLE/features")
    '$SKFEAT_UNSET_VARIABLE/features'
    """
    return os.path.expandvars(os.path.expanduser(os.fspath(path)))
