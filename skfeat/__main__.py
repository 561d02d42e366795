# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Command line: ``python -m skfeat {demo,extract,probe}`` (also ``skfeat ...``)."""

import sys

from skfeat._cli import main

if __name__ == "__main__":
    sys.exit(main())
