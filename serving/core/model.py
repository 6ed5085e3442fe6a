"""The ``Model`` abstraction: batch-first scoring of feature rows.

The result rule, the same for every model type:

* a **regressor** gives its predicted value as ``score`` and no probabilities;
* a **classifier** gives its winning label as ``score`` (the label as a number,
  or the class index when labels are not numeric) plus one probability per
  class, in the order of ``labels``;
* a TensorFlow model with K > 1 outputs is a classifier over labels ``0..K-1``
  (unless metadata ``labels`` names them), so the reference TF wine model scores
  the argmax of its 9 outputs.

Ties between classes go to the first class in ``labels`` order. A class the
model gives no probability for (pypmml reports NaN) counts as probability 0.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np

from serving.errors import InputRangeError, InputShapeError, ScoringError, ServingError
from serving.pb import model_descriptor_pb2 as md_pb

ModelDescriptor = md_pb.ModelDescriptor
ModelType = md_pb.ModelType


@dataclass(frozen=True)
class RawPrediction:
    """What a framework returns before the result rule turns it into scores."""

    scores: np.ndarray
    probabilities: np.ndarray | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchScores:
    """Scores for N rows: ``scores`` float64 [N], ``probabilities`` [N, K] or None."""

    scores: np.ndarray
    probabilities: np.ndarray | None
    labels: tuple[str, ...]
    duration_ns: int

    def __len__(self) -> int:
        return len(self.scores)

    def row(self, i: int) -> Score:
        """The score of row ``i`` alone, with an equal share of the batch duration."""
        probs = None if self.probabilities is None else tuple(float(p) for p in self.probabilities[i])
        return Score(
            score=float(self.scores[i]),
            probabilities=probs,
            labels=self.labels,
            duration_ns=self.duration_ns // max(len(self.scores), 1),
        )


@dataclass(frozen=True)
class Score:
    """The score of one row."""

    score: float
    probabilities: tuple[float, ...] | None
    labels: tuple[str, ...]
    duration_ns: int


def classify(probabilities: np.ndarray, labels: tuple[str, ...]) -> RawPrediction:
    """Apply the classifier rule: the winning label (first on ties) and its probabilities."""
    probabilities = np.nan_to_num(np.asarray(probabilities, dtype=np.float64), nan=0.0)
    winners = np.argmax(probabilities, axis=1)
    numeric = _numeric_labels(labels)
    scores = numeric[winners] if numeric is not None else winners.astype(np.float64)
    return RawPrediction(scores=scores, probabilities=probabilities, labels=labels)


def _numeric_labels(labels: tuple[str, ...]) -> np.ndarray | None:
    try:
        return np.asarray([float(label) for label in labels], dtype=np.float64)
    except ValueError:
        return None


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``; the checksum carried in ``ModelDescriptor.sha256``."""
    return hashlib.sha256(data).hexdigest()


class Model(ABC):
    """A loaded model that scores 2-D float feature arrays.

    Contract:
      * ``score_batch`` takes float [N, F] and returns exactly N scores, in order.
      * Wrong width raises :class:`InputShapeError`; a value that does not fit
        ``input_dtype`` (1e308 into a float32 network) raises
        :class:`InputRangeError` rather than becoming infinity; any framework
        failure while scoring raises :class:`ScoringError`. None closes the model.
      * ``to_bytes`` returns a serialized ``ModelDescriptor`` with the artifact
        inline; ``serving.formats.restore`` rebuilds an equal model from it, so
        Flink state never needs a pickled Python object.
      * ``close`` releases framework resources; the model is unusable after it.

    Subclasses implement ``_predict`` and set ``n_features`` when the artifact
    declares its input width, ``input_dtype`` when it takes narrower floats.
    A subclass is a model *format*: registered in the ``modelserving.formats``
    entry-point group under ``format_name`` (see :mod:`serving.formats.registry`),
    and it imports its framework on first use, not at module import, so the
    registry can read ``suffixes`` and ``directory_marker`` cheaply.
    """

    #: The format's name: ``--type`` on the command line, ``ModelDescriptor.format``.
    format_name: ClassVar[str] = ""
    #: File suffixes that mark this format when a directory of models is scanned.
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: A file whose presence (at any depth) marks a directory as a model of this format.
    directory_marker: ClassVar[str | None] = None

    #: Expected input width, or None when the artifact does not say.
    n_features: int | None = None
    #: The float type the framework takes its input in.
    input_dtype: np.dtype = np.dtype(np.float64)

    def __init__(self, descriptor: ModelDescriptor, artifact: bytes) -> None:
        self.descriptor = descriptor
        self.artifact = artifact

    @cached_property
    def artifact_sha256(self) -> str:
        """Hex SHA-256 of the artifact bytes."""
        return sha256_hex(self.artifact)

    @property
    def name(self) -> str:
        """The model's name, as published."""
        return self.descriptor.name

    @property
    def version(self) -> str:
        """The model's version, as published; every result carries it."""
        return self.descriptor.version

    @property
    def model_type(self) -> int:
        """The ``ModelType`` enum value."""
        return self.descriptor.model_type

    @property
    def type_name(self) -> str:
        """The model type as a name, e.g. ``PMML`` (a plug-in format: its name)."""
        if self.descriptor.model_type:
            return ModelType.Name(self.descriptor.model_type)
        return self.descriptor.format or self.format_name

    @property
    def data_type(self) -> str:
        """The data type this model scores, e.g. ``wine``."""
        return self.descriptor.data_type

    def fits(self, features: np.ndarray) -> np.ndarray:
        """Per value of ``features``: whether it is representable in ``input_dtype`` (finite stays finite)."""
        features = np.asarray(features, dtype=np.float64)
        if self.input_dtype.kind != "f" or self.input_dtype.itemsize >= 8:
            return np.ones(features.shape, dtype=bool)
        return ~(np.abs(features) > np.finfo(self.input_dtype).max)

    def unfit_rows(self, features: np.ndarray) -> np.ndarray:
        """Per row of float [N, F] ``features``: whether some value does not fit ``input_dtype``."""
        return ~self.fits(features).all(axis=1)

    def score_batch(self, features: np.ndarray) -> BatchScores:
        """Score every row of ``features`` (float [N, F]); see the class contract."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2:
            raise InputShapeError(f"features must be 2-D [rows, features], got shape {features.shape}")
        if self.n_features is not None and features.shape[1] != self.n_features:
            raise InputShapeError(
                f"model {self.name}:{self.version} takes {self.n_features} features, got {features.shape[1]}"
            )
        unfit = self.unfit_rows(features)
        if unfit.any():
            row = int(np.flatnonzero(unfit)[0])
            raise InputRangeError(
                f"row {row} has a value that does not fit the {self.input_dtype} input of model "
                f"{self.name}:{self.version} ({int(unfit.sum())} such rows)"
            )
        if features.shape[0] == 0:
            return BatchScores(np.empty(0), None, (), 0)
        started = time.perf_counter_ns()
        try:
            raw = self._predict(features)
        except ServingError:
            raise
        except Exception as exc:  # the framework's own errors, whatever they are
            raise ScoringError(f"model {self.name}:{self.version} failed to score: {exc}") from exc
        duration = time.perf_counter_ns() - started
        if len(raw.scores) != features.shape[0]:
            raise ScoringError(
                f"model {self.name}:{self.version} returned {len(raw.scores)} scores for {features.shape[0]} rows"
            )
        return BatchScores(
            scores=np.asarray(raw.scores, dtype=np.float64),
            probabilities=raw.probabilities,
            labels=raw.labels,
            duration_ns=duration,
        )

    def score(self, row) -> Score:
        """Score one feature row; a convenience over :meth:`score_batch`."""
        return self.score_batch(np.asarray(row, dtype=np.float64).reshape(1, -1)).row(0)

    def to_bytes(self) -> bytes:
        """The model as a serialized ``ModelDescriptor`` with the artifact inline."""
        descriptor = ModelDescriptor()
        descriptor.CopyFrom(self.descriptor)
        if descriptor.WhichOneof("content") == "location":
            descriptor.metadata["source_location"] = descriptor.location
        descriptor.data = self.artifact
        descriptor.sha256 = self.artifact_sha256
        return descriptor.SerializeToString()

    def close(self) -> None:  # noqa: B027 - optional hook, most runtimes need nothing
        """Release framework resources. Safe to call twice."""

    @abstractmethod
    def _predict(self, features: np.ndarray) -> RawPrediction:
        """Score float64 [N, F] rows with the framework; may raise anything."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}:{self.version} ({self.type_name}, {self.data_type})>"


def model_key(model: Model | ModelDescriptor) -> tuple[str, str, str]:
    """Identity of a model version: (data type, name, version)."""
    return (model.data_type, model.name, model.version)
