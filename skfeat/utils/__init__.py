# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Utilities shared by skfeat estimators and their tests."""

from skfeat.utils._paths import expand_path
from skfeat.utils._threads import ThreadTuner, system_idle_cpus
from skfeat.utils._torch import (
    autocast_dtype,
    resolve_device,
    seeded,
    torch_threads,
    training_dtype,
)

__all__ = [
    "ThreadTuner",
    "autocast_dtype",
    "expand_path",
    "resolve_device",
    "seeded",
    "system_idle_cpus",
    "torch_threads",
    "training_dtype",
]
