"""Class labels: the classification target's values, keyed as PMML4S compares them.

:class:`Labels` numbers the target's DataDictionary Values; every other label a
document mentions (a leaf score, a targetCategory, an output value) must be one
of them. :func:`label_key` orders probability columns as ``PmmlModel`` orders
them, and :func:`numeric_labels` reads labels as numbers as it does.
:func:`winner` picks a classifier's label as JPMML-Evaluator does: the highest
probability, ties to the label its result map holds first (its ``rank``).
"""

from __future__ import annotations

import numpy as np

from serving.formats.pmml.compiler.elements import INTEGER_TEXT, NotCompilable, parse_number

#: The target dataTypes compiled (the kind of each label's canonical key).
LABEL_TYPES = ("string", "integer", "double")

#: The rank of a label a result map does not hold (see ``Result.rank``).
NO_RANK = np.int64(1) << 62


def label_key(label: str) -> tuple[int, float, str]:
    """Sort key of class labels: numeric labels by value first, then the others by text."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


class Labels:
    """The class labels: the target's values, in DataDictionary order.

    Labels are canonical keys ``(dataType, value)`` parsed with the target's
    dataType, so "5" meets 5 only where the typed values are equal. Once
    ``frozen``, a label outside the target's values (a leaf score, a
    targetCategory, an output value) is refused.
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
            if not INTEGER_TEXT.match(text) or not -(2**31) <= int(text) < 2**31:
                raise NotCompilable(f"class label {text!r} is not a 32-bit integer")  # JPMML refuses it
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
        """The label as text (Python ``str`` of the typed value)."""
        return str(self.keys[i][1])

    def __len__(self) -> int:
        return len(self.keys)


def numeric_labels(texts: list[str]) -> np.ndarray:
    """Each label as ``pd.to_numeric(errors="coerce")`` reads it, as ``PmmlModel`` scores pypmml's labels."""
    import pandas as pd

    return pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").to_numpy(dtype=np.float64)


def default_rank(probs: np.ndarray) -> np.ndarray:
    """``Result.rank`` when a model gives none: label order, the labels with a finite probability held."""
    order = np.broadcast_to(np.arange(probs.shape[-1], dtype=np.int64), probs.shape)
    return np.where(np.isfinite(probs), order, NO_RANK)


def dense_rank(keys: np.ndarray) -> np.ndarray:
    """Per row of [N, L] int64 ``keys`` (NO_RANK: not held), each held label's position in key order: 0, 1, ..."""
    order = np.argsort(keys, axis=1, kind="stable")
    rank = np.empty_like(keys)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(keys.shape[1], dtype=np.int64), keys.shape), axis=1)
    return np.where(keys < NO_RANK, rank, NO_RANK)


def winner(probs: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """The label JPMML predicts from [N, L] ``probs``: the highest held probability, ties to the lowest ``rank``.

    -1 for a row that holds no label.
    """
    held = rank < NO_RANK
    masked = np.where(held, np.nan_to_num(probs, nan=-np.inf), -np.inf)
    best = masked.max(axis=1, keepdims=True) if masked.shape[1] else masked[:, :0]
    candidates = held & (masked == best)
    label = np.argmin(np.where(candidates, rank, NO_RANK), axis=1).astype(np.int64)
    return np.where(held.any(axis=1), label, -1)
