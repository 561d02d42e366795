# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Version of the skfeat package, read statically by setuptools."""

__version__ = "0.1.0.dev0"
