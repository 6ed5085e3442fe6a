"""What every compiled model element shares: its :class:`Context`, its :class:`Result` and the :class:`Model` base.

A model element (RegressionModel, TreeModel, MiningModel) compiles to a
:class:`Model` that scores an evaluation's rows into a :class:`Result`, and
declares in ``layout`` the output series PMML4S would hand a parent
MiningModel, as :data:`Slot` values: an ensemble reads its members' outputs by
position in that series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.formats.pmml.compiler.evaluation import Env
from serving.formats.pmml.compiler.labels import Labels

#: The model elements this compiler implements.
MODEL_TAGS = {"RegressionModel", "TreeModel", "MiningModel"}


@dataclass
class Result:
    """One model's outputs for N rows.

    ``value``: regression prediction (NaN: none). ``label``: index into the
    document's labels (-1: none). ``probs``: [N, labels], NaN where the model
    gives no probability for a label.
    """

    value: np.ndarray | None = None
    label: np.ndarray | None = None
    probs: np.ndarray | None = None


class Context:
    """What every model of one document shares: the function, the target and its ``n_classes`` labels."""

    def __init__(self, function: str, target: str, labels: Labels | None) -> None:
        self.function = function
        self.target = target
        self.labels = labels
        self.n_classes = len(labels) if labels is not None else 0


#: An output field as PMML4S lays out a model's output series: ("pred",), ("prob", label or None for the
#: predicted label's), ("conf",), ("id",) or ("other",). A parent reads its members' series by position.
Slot = tuple


class Model:
    """A compiled model element; ``layout`` lists the output series it hands a parent MiningModel."""

    layout: list[Slot]

    def evaluate(self, env: Env) -> Result:  # pragma: no cover - abstract
        """Score every row of ``env``."""
        raise NotImplementedError

    def finish(self, n_labels: int) -> None:
        """Called once the document's label table is complete."""
