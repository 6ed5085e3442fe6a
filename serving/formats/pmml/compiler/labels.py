"""Class labels: the classification target's values, keyed as PMML4S compares them.

:class:`Labels` numbers the target's DataDictionary Values; every other label a
document mentions (a leaf score, a targetCategory, an output value) must be one
of them. :func:`label_key` orders probability columns as ``PmmlModel`` orders
pypmml's, and :func:`numeric_labels` reads labels as numbers as it does.
"""

from __future__ import annotations

import numpy as np

from serving.formats.pmml.compiler.elements import INTEGER_TEXT, NotCompilable, parse_number
from serving.formats.pmml.compiler.scala import LABEL_TYPES


def label_key(label: str) -> tuple[int, float, str]:
    """Sort key of class labels: numeric labels by value first, then the others by text."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


class Labels:
    """The class labels: the target's values, in DataDictionary order.

    Labels are canonical keys ``(dataType, value)`` parsed with the target's
    dataType, so "5" meets 5 only where PMML4S's DataVals would be equal. Once
    ``frozen``, a label outside the target's values (a leaf score, a
    targetCategory, an output value) is refused: pypmml rejects some, and what
    it does with the others is not modelled here.
    """

    def __init__(self, datatype: str) -> None:
        if datatype not in LABEL_TYPES:
            raise NotCompilable(f"target dataType {datatype!r} is not supported")
        self.datatype = datatype
        self.keys: list[tuple[str, object]] = []
        self._index: dict[tuple[str, object], int] = {}
        self.frozen = False

    def key(self, text: str | None) -> tuple[str, object]:
        """The canonical key ``(dataType, value)`` of ``text``, or :class:`NotCompilable` if it is no such value."""
        if text is None:
            raise NotCompilable("a class label is missing")
        if self.datatype == "string":
            return ("string", text)
        if self.datatype == "integer":
            if not INTEGER_TEXT.match(text):
                raise NotCompilable(f"class label {text!r} is not an integer")
            return ("integer", int(text))
        return ("double", parse_number(text, "class label"))

    def index(self, text: str | None) -> int:
        """The label number of ``text``, adding it unless ``frozen`` (then an unknown label is NotCompilable)."""
        key = self.key(text)
        if key not in self._index:
            if self.frozen:
                raise NotCompilable(f"label {text!r} is not one of the target's values")
            self._index[key] = len(self.keys)
            self.keys.append(key)
        return self._index[key]

    def text(self, i: int) -> str:
        """The label as pypmml reports it (Python ``str`` of the Java value)."""
        return str(self.keys[i][1])

    def __len__(self) -> int:
        return len(self.keys)


def numeric_labels(texts: list[str]) -> np.ndarray:
    """Each label as ``pd.to_numeric(errors="coerce")`` reads it, as ``PmmlModel`` scores pypmml's labels."""
    import pandas as pd

    return pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
