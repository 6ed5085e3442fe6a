"""One evaluation of a compiled document: the input columns, and getters that read fields from them.

A compiled expression is a :data:`Getter`, a function of the :class:`Env` of
one batch returning a float64 column; input fields are :class:`Column` getters,
which predicate tables recognise and gather in one indexing step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Up to this many (tree, row) lanes, trees are walked in Python rather than level by level in NumPy.
WALK_LANES = 64


class Env:
    """One evaluation: the input columns and the derived fields computed so far."""

    def __init__(self, columns: np.ndarray) -> None:
        self.columns = columns  # [inputs, rows], contiguous per input
        self.rows = columns.shape[1]
        self.cache: dict[int, np.ndarray] = {}


#: A compiled field or expression: its float64 values for every row of the evaluation.
Getter = Callable[[Env], np.ndarray]


class Column:
    """The getter of input column ``column``; predicate tables gather these in one indexing step."""

    def __init__(self, column: int) -> None:
        self.column = column

    def __call__(self, env: Env) -> np.ndarray:
        """The column's values in ``env``."""
        return env.columns[self.column]
