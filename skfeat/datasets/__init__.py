# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Small offline data generators."""

from skfeat.datasets._synthetic import make_lowshot_features

__all__ = ["make_lowshot_features"]
