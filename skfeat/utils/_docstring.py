# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Parameter documentation written once and substituted into several docstrings."""

import re

_PLACEHOLDER = re.compile(r"^(?P<indent>[ ]*)\{(?P<name>\w+)\}$", re.MULTILINE)


def fill_parameter_docs(docs):
    """Class decorator replacing each ``{name}`` line of a docstring by ``docs[name]``.

    A placeholder is a line holding only ``{name}``; its indentation is applied
    to every line of the substituted text, so one entry reads identically in
    every docstring that uses it.  Other braces in the docstring are kept.

    Parameters
    ----------
    docs : dict of str to str
        Documentation entries by name, unindented (continuation lines
        indented relative to the first, numpydoc style).

    Returns
    -------
    decorator : callable
        Returns the class with its docstring filled in.

    Raises
    ------
    KeyError
        When a placeholder names no entry of ``docs``.

    Examples
    --------
    >>> from skfeat.utils._docstring import fill_parameter_docs
    >>> entry = "seed : int" + chr(10) + "    The seed."
    >>> @fill_parameter_docs({"seed": entry})
    ... class A:
    ...     '''Document a seed.
    ...
    ...     {seed}
    ...     '''
    >>> print(A.__doc__.splitlines()[2:4])
    ['    seed : int', '        The seed.']
    """

    def substitute(match):
        indent = match["indent"]
        lines = docs[match["name"]].strip("\n").splitlines()
        return "\n".join(indent + line if line else line for line in lines)

    def decorate(cls):
        cls.__doc__ = _PLACEHOLDER.sub(substitute, cls.__doc__)
        return cls

    return decorate
