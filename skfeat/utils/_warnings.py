# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Warnings attributed to the user's line, not to a library's."""

import os
import sys
import warnings

import joblib
import sklearn

_SKFEAT_DIR = os.path.dirname(os.path.dirname(__file__))
_LIBRARY_DIRS = tuple(
    directory + os.sep
    for directory in (
        _SKFEAT_DIR,
        os.path.dirname(sklearn.__file__),
        os.path.dirname(joblib.__file__),
    )
)


def warn_caller(message, category=UserWarning):
    """Warn from the first caller outside skfeat, scikit-learn and joblib.

    A fixed ``stacklevel`` points at the wrong line as soon as a method is
    reached through another path (``fit_transform``, a ``Pipeline`` and its
    joblib memory, scikit-learn's output wrappers).

    Parameters
    ----------
    message : str
        The warning's text.
    category : type of Warning, default=UserWarning
        The warning's class.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_caller("look here")
    >>> caught[0].filename.endswith("_warnings.py")
    False
    """
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
