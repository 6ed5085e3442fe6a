"""The document: :func:`compile_pmml` turns a PMML document into a :class:`CompiledPmml` that scores rows.

The document must hold one model element of a compiled family, a
DataDictionary, and optionally a TransformationDictionary. The result is
JPMML-Evaluator's, laid out by ``PmmlModel``'s result rule: a probability
column for every target value, in ``label_key`` order, and the predicted label
read as a number (NaN for no prediction).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from serving.core.model import RawPrediction
from serving.formats.pmml.compiler.base import MODEL_TAGS, Context, Model
from serving.formats.pmml.compiler.elements import NotCompilable, allow_only, child_elements, find_child, tag_name
from serving.formats.pmml.compiler.evaluation import Env
from serving.formats.pmml.compiler.expressions import Scope
from serving.formats.pmml.compiler.fields import data_fields, target_labels, top_level_fields
from serving.formats.pmml.compiler.functions import FAILED
from serving.formats.pmml.compiler.inputs import InputEncoder, input_fields, rejected_rows
from serving.formats.pmml.compiler.labels import Labels, label_key, numeric_labels
from serving.formats.pmml.compiler.models import compile_model, predicate_rows
from serving.formats.pmml.compiler.outputs import prediction_datatype

#: Rows scored per NumPy pass; bounds the [predicates x rows] matrices of big forests.
_CHUNK_CELLS = 1 << 22

#: Every model element PMML defines; a document must hold exactly one.
_ALL_MODEL_TAGS = {
    "AnomalyDetectionModel", "AssociationModel", "BayesianNetworkModel", "BaselineModel", "ClusteringModel",
    "GaussianProcessModel", "GeneralRegressionModel", "MiningModel", "NaiveBayesModel", "NearestNeighborModel",
    "NeuralNetwork", "RegressionModel", "RuleSetModel", "SequenceModel", "Scorecard", "SupportVectorMachineModel",
    "TextModel", "TimeSeries", "TreeModel",
}  # fmt: skip


@dataclass
class CompiledPmml:
    """A PMML document compiled to NumPy.

    Attributes:
        function: ``"regression"`` or ``"classification"``.
        input_names: The PMML input fields, in the column order :meth:`predict` takes.
        target: The target field's name.
        labels: For a classifier, the labels of the probability columns, in
            ``label_key`` order (as ``PmmlModel`` orders its outputs); else empty.
        model_element: The top-level model's element name, e.g. ``MiningModel``.
    """

    function: str
    input_names: list[str]
    target: str
    labels: tuple[str, ...]
    model_element: str
    _model: Model
    _label_table: Labels | None
    _output_labels: np.ndarray
    _numeric: np.ndarray
    _cells: int = 1
    _encoder: InputEncoder | None = None  # the inputs' types and treatments (see .inputs)

    def predict(self, inputs: np.ndarray) -> RawPrediction:
        """Score float64 [N, len(input_names)] rows by ``PmmlModel``'s result rule.

        Regression: the predicted value. Classification: the predicted label as a
        number (when labels are not all numbers, its index in ``labels``; NaN
        when absent) and the probabilities in ``labels`` order, NaN reported as 0;
        None for a model that gives a label only (kNN, OneAgainstAll SVM).
        """
        inputs = np.asarray(inputs)
        if inputs.dtype != object:  # an object matrix carries strings (categorical inputs)
            inputs = inputs.astype(np.float64, copy=False)
        step = max(16, _CHUNK_CELLS // max(1, self._cells))
        parts = [self._predict(inputs[i : i + step]) for i in range(0, len(inputs), step)] or [self._predict(inputs)]
        if len(parts) == 1:
            return parts[0]
        probabilities = None if parts[0].probabilities is None else np.vstack([p.probabilities for p in parts])
        return RawPrediction(np.concatenate([p.scores for p in parts]), probabilities, parts[0].labels)

    def _predict(self, inputs: np.ndarray) -> RawPrediction:
        rejected = None
        if self._encoder is None:
            env = Env(np.ascontiguousarray(inputs.T))
        else:
            columns, rejected = self._encoder.encode(inputs)
            env = Env(columns)
        with np.errstate(all="ignore"):
            result = self._model.evaluate(env)
        failed = env.cache.get(FAILED)  # type: ignore[call-overload]
        if failed is not None:  # a function JPMML fails on a missing argument
            rejected = failed if rejected is None else rejected | failed
        if rejected is not None:  # rows JPMML rejects (an invalid input): no prediction
            result = rejected_rows(result, rejected)
        # The served results carry no infinities: such a value is reported as NaN, a probability as 0.
        if self.function == "regression":
            value = np.asarray(result.value, dtype=np.float64)
            return RawPrediction(scores=np.where(np.isfinite(value), value, np.nan))
        label = np.asarray(result.label)
        scores = np.where(label >= 0, self._numeric[np.maximum(label, 0)], np.nan)
        if not len(self._output_labels):
            return RawPrediction(scores=scores, probabilities=None, labels=())
        if not self._model.gives_probabilities:  # kNN, OneAgainstAll SVM: JPMML reports a label only
            return RawPrediction(scores=scores, probabilities=None, labels=self.labels)
        probabilities = result.probs[:, self._output_labels]
        probabilities = np.where(np.isfinite(probabilities), probabilities, 0.0)
        return RawPrediction(scores=scores, probabilities=probabilities, labels=self.labels)


def compile_pmml(document: bytes | str) -> CompiledPmml:
    """Compile a PMML document, or raise :class:`NotCompilable` saying what is not supported.

    Never raises anything else for malformed input: an unreadable document is
    NotCompilable too, so the caller's pypmml fallback reports the real error.
    """
    try:
        root = ET.fromstring(document.encode("utf-8") if isinstance(document, str) else document)
    except ET.ParseError as exc:
        raise NotCompilable(f"not well-formed XML: {exc}") from exc
    if tag_name(root) != "PMML":
        raise NotCompilable("the root element is not <PMML>")
    allow_only(root, {"Header", "MiningBuildTask", "DataDictionary", "TransformationDictionary"} | _ALL_MODEL_TAGS)
    models = [c for c in child_elements(root) if tag_name(c) in _ALL_MODEL_TAGS]
    if len(models) != 1:
        raise NotCompilable(f"the document holds {len(models)} model elements, not one")
    model_elem = models[0]
    if tag_name(model_elem) not in MODEL_TAGS:
        raise NotCompilable(f"<{tag_name(model_elem)}> is not compiled")
    fields = data_fields(root)
    input_names, target = top_level_fields(model_elem, fields)
    function = model_elem.get("functionName", "")
    if function not in ("regression", "classification"):
        raise NotCompilable(f"functionName {function!r}")
    columns, encoder = input_fields(model_elem, input_names, fields)
    target_spec = fields[target]
    labels = target_labels(target_spec, function)
    ctx = Context(function, target, labels)

    base = Scope(None, columns).with_transformations(find_child(root, "TransformationDictionary"))
    model = compile_model(model_elem, ctx, base, top=True)
    prediction_datatype(model_elem, target_spec, function)  # refuses a prediction typed otherwise

    output_labels: list[int] = []
    numeric = np.empty(0)
    if labels is not None:
        # Every target value gets a probability column (0 where the model gives none), in label_key order.
        texts = [labels.text(i) for i in range(len(labels))]
        output_labels = sorted(range(len(labels)), key=lambda i: label_key(texts[i]))
        numeric = numeric_labels(texts)
        if np.isnan(numeric).any():
            # The result rule: when labels are not all numbers, a label scores as its index in ``labels``.
            position = {label: rank for rank, label in enumerate(output_labels)}
            numeric = np.asarray([position[i] for i in range(len(labels))], dtype=np.float64)
    model.finish(len(labels) if labels is not None else 0)
    compiled = CompiledPmml(
        function=function,
        input_names=list(input_names),
        target=target,
        labels=tuple(labels.text(i) for i in output_labels) if labels is not None else (),
        model_element=tag_name(model_elem),
        _model=model,
        _label_table=labels,
        _output_labels=np.asarray(output_labels, dtype=np.intp),
        _numeric=numeric,
        _encoder=encoder,
    )
    compiled._cells = predicate_rows(model)
    return compiled
