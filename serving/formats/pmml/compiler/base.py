"""What every compiled model element shares: its :class:`Context`, its :class:`Result` and the :class:`Model` base.

A model element compiles to a :class:`Model` that scores an evaluation's rows
into a :class:`Result`. A parent MiningModel reads its members' Results by
label, as JPMML-Evaluator does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.formats.pmml.compiler.evaluation import Env
from serving.formats.pmml.compiler.labels import Labels

#: The model elements this compiler implements.
MODEL_TAGS = {"RegressionModel", "TreeModel", "MiningModel", "NeuralNetwork", "NaiveBayesModel",
              "SupportVectorMachineModel", "NearestNeighborModel", "GeneralRegressionModel"}  # fmt: skip


@dataclass
class Result:
    """One model's outputs for N rows.

    ``value``: regression prediction (NaN: none). ``label``: index into the
    document's labels (-1: none). ``probs``: [N, labels], the probability of
    each label (NaN or 0 where the model gives none). ``rank``: [N, labels],
    int64, the order in which JPMML's result map holds the labels (0 first;
    :data:`~serving.formats.pmml.compiler.labels.NO_RANK` for a label it does
    not hold), which breaks ties in an ensemble; None means label order, every
    label with a finite probability held.
    """

    value: np.ndarray | None = None
    label: np.ndarray | None = None
    probs: np.ndarray | None = None
    rank: np.ndarray | None = None
    failed: np.ndarray | None = None  # [N] bool: rows JPMML fails to evaluate (served as no prediction)


class Context:
    """What every model of one document shares: the function, the target and its ``n_classes`` labels."""

    def __init__(self, function: str, target: str, labels: Labels | None) -> None:
        self.function = function
        self.target = target
        self.labels = labels
        self.n_classes = len(labels) if labels is not None else 0


class Model:
    """A compiled model element; ``gives_probabilities`` is False for a classifier JPMML reports none for."""

    gives_probabilities: bool = True

    def evaluate(self, env: Env) -> Result:  # pragma: no cover - abstract
        """Score every row of ``env``."""
        raise NotImplementedError

    def finish(self, n_labels: int) -> None:
        """Called once the document's label table is complete."""
