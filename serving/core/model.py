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
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from serving.errors import InputRangeError, InputShapeError, ModelSchemaError, ScoringError, ServingError
from serving.pb import model_descriptor_pb2 as md_pb

if TYPE_CHECKING:
    from serving.records.schema import Column

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
      * A model is built for its data type's feature columns (``columns``, from
        the data type's schema) and reads its inputs from them *by name*
        (:meth:`bind`): a name the data type lacks, or a column of another
        kind, is a :class:`ModelSchemaError` naming the fields, raised when the
        model is built. A model that names no inputs reads every column, in
        order, when all are numeric and their number fits.
      * ``score_batch`` takes the feature matrix [N, len(columns)] (float64, or
        an object array when some feature is not numeric) and returns exactly
        N scores, in order.
      * Wrong width raises :class:`InputShapeError`; a value that does not fit
        ``input_dtype`` (1e308 into a float32 network) raises
        :class:`InputRangeError` rather than becoming infinity; any framework
        failure while scoring raises :class:`ScoringError`. None closes the model.
      * ``to_bytes`` returns a serialized ``ModelDescriptor`` with the artifact
        inline; ``serving.formats.restore`` rebuilds an equal model from it, so
        Flink state never needs a pickled Python object.
      * ``close`` releases framework resources; the model is unusable after it.

    Subclasses implement ``_predict`` (which gets the model's own inputs, in
    its input order), call :meth:`bind` from ``__init__`` with what the
    artifact declares, and set ``input_dtype`` when it takes narrower floats.
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

    #: The float type the framework takes its input in.
    input_dtype: np.dtype = np.dtype(np.float64)

    def __init__(self, descriptor: ModelDescriptor, artifact: bytes, columns: Sequence[Column] | None = None) -> None:
        self.descriptor = descriptor
        self.artifact = artifact
        #: The data type's feature columns: what ``score_batch`` is given.
        self.columns: tuple[Column, ...] = tuple(columns) if columns is not None else _default_columns(descriptor)
        #: The width ``score_batch`` takes: one column per feature of the data type.
        self.n_features: int = len(self.columns)
        #: The model's inputs, by name, in its order; and their kinds.
        self.input_names: list[str] = [c.name for c in self.columns]
        self.input_kinds: list[str] = ["number"] * len(self.columns)
        #: Whether some input is a string or boolean value, handed over as it is.
        self.categorical = False
        #: The version of the data type's schema the model was bound to ("" before any).
        self.schema_version = ""
        #: The id of the key whose signature admission verified ("" when unsigned).
        self.signed_by = ""
        #: Input name -> a value the artifact declares valid (PMML's categories): the probe row
        #: uses it when the schema has no example, since "" is no category a model knows.
        self.probe_values: dict[str, Any] = {}
        self._inputs: list[int] | None = None
        self._bound_by: tuple[Sequence[str] | None, int | None, list[str] | None] = (None, None, None)

    def bind(
        self, names: Sequence[str] | None, *, width: int | None = None, kinds: Sequence[str] | None = None
    ) -> None:
        """Choose the columns this model reads: ``names`` (matched ignoring case, spaces, ``_`` and ``-``).

        ``names`` None: every column, in order (all must be numeric). ``width``:
        how many inputs the artifact takes, when it says. ``kinds`` per input:
        ``number`` (the default; numeric and boolean columns), ``string`` or
        ``boolean`` (handed over as values, not floats).

        Raises:
            ModelSchemaError: names the data type lacks, inputs of a kind its
                columns do not have, or a width that does not fit; all named.
        """
        self._bound_by = (None if names is None else list(names), width, None if kinds is None else list(kinds))
        columns, where = self.columns, f"model {self.name!r} (data type {self.data_type!r})"
        if names is None:
            chosen = list(range(len(columns)))
            if width is not None and width != len(columns):
                raise ModelSchemaError(
                    f"{where} takes {width} inputs and names none; the data type has {len(columns)} features: "
                    "name the inputs with metadata feature_names"
                )
        else:
            by_key = {normalise_field(c.name): i for i, c in enumerate(columns)}
            missing = [n for n in names if normalise_field(n) not in by_key]
            if missing:
                raise ModelSchemaError(f"{where} reads fields the data type lacks: {', '.join(missing)}")
            chosen = [by_key[normalise_field(n)] for n in names]
            if width is not None and width != len(chosen):
                raise ModelSchemaError(f"{where} takes {width} inputs but names {len(chosen)}")
        kinds = list(kinds) if kinds is not None else ["number"] * len(chosen)
        clashes = [
            f"{columns[i].name} is {columns[i].kind}, read as {kind}"
            for i, kind in zip(chosen, kinds)
            if columns[i].kind not in _READS[kind]
        ]
        if clashes:
            raise ModelSchemaError(f"{where} reads fields of another type: {'; '.join(clashes)}")
        self._inputs = None if chosen == list(range(len(columns))) else chosen
        self.input_names = [columns[i].name for i in chosen] if names is None else list(names)
        self.input_kinds = kinds
        self.categorical = any(kind != "number" for kind in kinds)

    def rebound(self, columns: Sequence[Column]) -> None:
        """Check that this model would read records with ``columns`` as it reads its own (binding again, on a copy).

        Raises:
            ModelSchemaError: what the new columns lack or retype, named.
        """
        import copy

        other = copy.copy(self)
        other.columns, other.n_features = tuple(columns), len(columns)
        names, width, kinds = self._bound_by
        other.bind(names, width=width, kinds=kinds)

    def model_inputs(self, features: np.ndarray) -> np.ndarray:
        """The model's own inputs from the feature matrix: its columns, as float64 unless it is categorical."""
        inputs = features if self._inputs is None else features[:, self._inputs]
        if not self.categorical and inputs.dtype != np.float64:
            inputs = inputs.astype(np.float64)
        return inputs

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

    def fits(self, inputs: np.ndarray) -> np.ndarray:
        """Per value of the model's ``inputs``: whether it is representable in ``input_dtype`` (finite stays finite)."""
        if self.categorical or self.input_dtype.kind != "f" or self.input_dtype.itemsize >= 8:
            return np.ones(np.shape(inputs), dtype=bool)
        return ~(np.abs(np.asarray(inputs, dtype=np.float64)) > np.finfo(self.input_dtype).max)

    def unfit_rows(self, features: np.ndarray) -> np.ndarray:
        """Per row of the feature matrix: whether some input of this model does not fit ``input_dtype``."""
        return ~self.fits(self.model_inputs(_matrix(features))).all(axis=1)

    def score_batch(self, features: np.ndarray) -> BatchScores:
        """Score every row of the feature matrix [N, len(columns)]; see the class contract."""
        features = _matrix(features)
        if features.ndim != 2:
            raise InputShapeError(f"features must be 2-D [rows, features], got shape {features.shape}")
        if features.shape[1] != self.n_features:
            raise InputShapeError(
                f"model {self.name}:{self.version} takes {self.n_features} features, got {features.shape[1]}"
            )
        inputs = self.model_inputs(features)
        unfit = ~self.fits(inputs).all(axis=1)
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
            raw = self._predict(inputs)
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
    def _predict(self, inputs: np.ndarray) -> RawPrediction:
        """Score the model's inputs (float64 [N, inputs], object when categorical) with the framework.

        May raise anything: :meth:`score_batch` wraps it.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}:{self.version} ({self.type_name}, {self.data_type})>"


def model_key(model: Model | ModelDescriptor) -> tuple[str, str, str]:
    """Identity of a model version: (data type, name, version)."""
    return (model.data_type, model.name, model.version)


def normalise_field(name: str) -> str:
    """A field-name key ignoring case, spaces, ``_`` and ``-`` (``free sulfur dioxide`` = ``free_sulfur_dioxide``)."""
    return re.sub(r"[\s_\-]+", "", name).lower()


#: Which column kinds an input of each kind may read.
_READS = {"number": ("number", "integer", "boolean"), "string": ("string",), "boolean": ("boolean",)}


def _matrix(features) -> np.ndarray:
    features = np.asarray(features)
    return features if features.dtype == object else features.astype(np.float64, copy=False)


def _default_columns(descriptor: ModelDescriptor) -> tuple[Column, ...]:
    """The record columns when the caller gives none: the data type's bundled (or legacy) schema.

    Before schemas, metadata ``feature_names`` named a record's columns; a
    descriptor that still does gets numeric columns of those names.
    """
    from serving.records import builtin_registry, schema_for
    from serving.records.schema import Column

    named = descriptor.metadata.get("feature_names")
    if named:
        return tuple(Column(name.strip(), "number", name.strip()) for name in named.split(","))
    return schema_for(builtin_registry(), descriptor.data_type).columns
