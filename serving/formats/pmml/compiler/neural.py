"""NeuralNetwork: feed-forward layers scored as JPMML-Evaluator scores them.

NeuralInputs are DerivedFields (FieldRef, NormContinuous, Apply, ... as
:mod:`~serving.formats.pmml.compiler.expressions` compiles them, plus
NormDiscrete); every layer's activationFunction, normalizationMethod,
threshold, width, altitude and JPMML's ``x-leakage`` default to the network's
(a plain ``leakage`` attribute is not PMML, and JPMML ignores it). A neuron's input is its
connections added one by one in document order, then its bias, as JPMML's
``DoubleValue`` adds them, so sums round as the reference's do. NeuralOutputs
map an output neuron to the target: ``FieldRef`` (as is) or ``NormContinuous``
(denormalised) for regression, one ``NormDiscrete`` per class for
classification. A missing input, or a softmax/simplemax over a zero sum, gives
no prediction (NaN value, label -1), where JPMML returns none or fails.
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable

import numpy as np

from serving.formats.pmml.compiler.base import Context, Model, Result
from serving.formats.pmml.compiler.elements import (
    NotCompilable,
    allow_only,
    child_elements,
    find_child,
    number_attribute,
    parse_number,
    tag_name,
)
from serving.formats.pmml.compiler.evaluation import Env, Getter
from serving.formats.pmml.compiler.expressions import Scope, field_constant
from serving.formats.pmml.compiler.labels import NO_RANK

#: Value cells ([entities, rows]) computed at once.
_CELLS = 1 << 21

_SIMPLE_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "logistic": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "tanh": np.tanh,
    "identity": lambda z: z,
    "exponential": np.exp,
    "reciprocal": lambda z: 1.0 / z,
    "square": lambda z: z * z,
    "Gauss": lambda z: np.exp(-(z * z)),
    "sine": np.sin,
    "cosine": np.cos,
    "Elliott": lambda z: z / (1.0 + np.abs(z)),
    "arctan": lambda z: (2.0 * np.arctan(z)) / math.pi,
}


def check_math_context(elem: ET.Element) -> None:
    """Refuse a model JPMML would score in float (``x-mathContext="float"``)."""
    context = elem.get("x-mathContext", elem.get("mathContext", "double"))
    if context != "double":
        raise NotCompilable(f"mathContext {context!r}")


def fixed_rank(rows: int, n_labels: int, held: list[int]) -> np.ndarray:
    """``Result.rank`` of a result map that holds the labels ``held``, in that order, on every row."""
    rank = np.full(n_labels, NO_RANK, dtype=np.int64)
    rank[held] = np.arange(len(held), dtype=np.int64)
    return np.broadcast_to(rank, (rows, n_labels))


def normalize_columns(columns: list[np.ndarray], method: str) -> list[np.ndarray]:
    """JPMML's ``ValueUtil`` normalisation of values side by side; a zero sum gives NaN (JPMML fails)."""
    if method == "none":
        return columns
    if method == "softmax":
        top = columns[0]
        for c in columns[1:]:
            top = np.where(top < c, c, top)  # the first maximum, as compareTo finds it
        columns = [np.exp(c - top) for c in columns]
    total = columns[0]
    for c in columns[1:]:  # left to right, as ValueUtil.sum
        total = total + c
    total = np.where(total == 0.0, np.nan, total)
    return [c / total for c in columns]


class _Layer:
    """One NeuralLayer: per neuron its connections (source column, weight) padded to a rectangle, and bias."""

    def __init__(self, elem: ET.Element, network: ET.Element, ids: dict[str, int]) -> None:
        allow_only(elem, {"Neuron"})
        self.activation = elem.get("activationFunction") or network.get("activationFunction") or ""
        self.method = elem.get("normalizationMethod") or network.get("normalizationMethod", "none")
        if self.method not in ("none", "softmax", "simplemax"):
            raise NotCompilable(f"NeuralLayer normalizationMethod {self.method!r}")
        self.threshold = _inherited(elem, network, "threshold", 0.0)
        self.leakage = _inherited(elem, network, "x-leakage", None)  # a JPMML extension attribute
        self.width = _inherited(elem, network, "width", None)
        self.altitude = _inherited(elem, network, "altitude", 1.0)
        if self.activation not in {"radialBasis", "threshold", "rectifier", *_SIMPLE_ACTIVATIONS}:
            raise NotCompilable(f"activationFunction {self.activation!r}")
        neurons = child_elements(elem)
        if not neurons:
            raise NotCompilable("NeuralLayer without neurons")
        self.ids: list[str] = []
        sources: list[list[int]] = []
        weights: list[list[float]] = []
        self.bias: list[float] = []
        self.neuron_width: list[float] = []
        self.connections: list[int] = []
        for neuron in neurons:
            allow_only(neuron, {"Con"})
            cons = child_elements(neuron)
            if not cons:
                raise NotCompilable("Neuron without connections")
            row_sources, row_weights = [], []
            for con in cons:
                source = con.get("from")
                if source not in ids:
                    raise NotCompilable(f"Con from unknown neuron {source!r}")
                row_sources.append(ids[source])  # type: ignore[index]
                row_weights.append(number_attribute(con, "weight"))
            sources.append(row_sources)
            weights.append(row_weights)
            self.connections.append(len(cons))
            self.bias.append(number_attribute(neuron, "bias", 0.0))
            if self.activation == "radialBasis":
                width = number_attribute(neuron, "width", self.width if self.width is not None else math.nan)
                if math.isnan(width):
                    raise NotCompilable("radialBasis neuron without a width")
                self.neuron_width.append(width)
            self.ids.append(neuron.get("id") or "")
        # The padding reads the zero column (index -1 of the value stack) with weight 0: adds exactly 0.
        widest = max(len(s) for s in sources)
        self.sources = np.full((len(neurons), widest), -1, dtype=np.intp)
        self.weights = np.zeros((len(neurons), widest))
        for i, (s, w) in enumerate(zip(sources, weights)):
            self.sources[i, : len(s)], self.weights[i, : len(w)] = s, w

    def evaluate(self, stack: np.ndarray) -> list[np.ndarray]:
        """The layer's outputs, one [rows] column per neuron, from ``stack`` [entities + zero row, rows]."""
        acc = np.zeros((len(self.ids), stack.shape[1]))
        radial = self.activation == "radialBasis"
        for j in range(self.sources.shape[1]):  # connection by connection, as JPMML adds them
            x = stack[self.sources[:, j]]
            w = self.weights[:, j, None]
            if radial:
                d = x - w
                acc = acc + np.where(self.sources[:, j, None] >= 0, d * d, 0.0)
            else:
                acc = acc + w * x
        if radial:
            out = []
            for i, z in enumerate(acc):
                z = z / ((self.neuron_width[i] * self.neuron_width[i]) * -2.0)
                if self.altitude != 1.0:
                    z = z + math.log(self.altitude) * self.connections[i]
                out.append(np.exp(z))
            return normalize_columns(out, self.method)
        columns = [self._activate(z + b) for z, b in zip(acc, self.bias)]
        return normalize_columns(columns, self.method)

    def _activate(self, z: np.ndarray) -> np.ndarray:
        if self.activation == "threshold":
            return np.where(z > self.threshold, 1.0, np.where(np.isnan(z), np.nan, 0.0))
        if self.activation == "rectifier":
            if self.leakage is not None:
                return np.where(z > 0.0, z, z * self.leakage)
            return np.where(np.isnan(z), np.nan, np.maximum(z, 0.0))
        return _SIMPLE_ACTIVATIONS[self.activation](z)


def _inherited(layer: ET.Element, network: ET.Element, name: str, default: float | None) -> float | None:
    if layer.get(name) is not None:
        return number_attribute(layer, name)
    if network.get(name) is not None:
        return number_attribute(network, name)
    return default


class Neural(Model):
    """A NeuralNetwork with one target: regression through one output neuron, classification through one per class."""

    def __init__(self, elem: ET.Element, ctx: Context, scope: Scope) -> None:
        allow_only(elem, {"MiningSchema", "Output", "LocalTransformations", "NeuralInputs", "NeuralLayer",
                          "NeuralOutputs", "ModelStats", "ModelExplanation", "ModelVerification"})  # fmt: skip
        check_math_context(elem)
        self.ctx = ctx
        inputs = find_child(elem, "NeuralInputs")
        outputs = find_child(elem, "NeuralOutputs")
        if inputs is None or outputs is None:
            raise NotCompilable("NeuralNetwork without NeuralInputs or NeuralOutputs")
        ids: dict[str, int] = {}
        self.inputs = self._inputs(inputs, scope, ids)
        self.layers: list[_Layer] = []
        for layer in (c for c in child_elements(elem) if tag_name(c) == "NeuralLayer"):
            compiled = _Layer(layer, elem, ids)
            for neuron_id in compiled.ids:
                if neuron_id in ids:
                    raise NotCompilable(f"neuron id {neuron_id!r} repeats")
                ids[neuron_id] = len(ids)
            self.layers.append(compiled)
        if not self.layers:
            raise NotCompilable("NeuralNetwork without layers")
        self._outputs(outputs, ids)
        self.entities = len(ids) + 1

    @staticmethod
    def _inputs(inputs: ET.Element, scope: Scope, ids: dict[str, int]) -> list[Getter]:
        allow_only(inputs, {"NeuralInput"})
        getters = []
        for neural_input in child_elements(inputs):
            allow_only(neural_input, {"DerivedField"})
            field = find_child(neural_input, "DerivedField")
            neuron_id = neural_input.get("id")
            if field is None or not neuron_id or neuron_id in ids:
                raise NotCompilable("a NeuralInput needs a unique id and a DerivedField")
            ids[neuron_id] = len(ids)
            getters.append(derived_getter(field, scope))
        if not getters:
            raise NotCompilable("NeuralInputs without inputs")
        return getters

    def _outputs(self, outputs: ET.Element, ids: dict[str, int]) -> None:
        allow_only(outputs, {"NeuralOutput"})
        self.output_columns: list[int] = []
        self.categories: list[int] = []
        self.denormalize: list[tuple[float, float]] | None = None
        for neural_output in child_elements(outputs):
            neuron = neural_output.get("outputNeuron")
            field = find_child(neural_output, "DerivedField")
            if neuron not in ids or field is None or len(child_elements(field)) != 1:
                raise NotCompilable("a NeuralOutput needs a known outputNeuron and a DerivedField")
            expression = child_elements(field)[0]
            tag = tag_name(expression)
            if expression.get("field") != self.ctx.target:
                raise NotCompilable("a NeuralOutput maps a neuron to another field than the target")
            if self.ctx.function == "regression":
                if tag == "NormContinuous":
                    self.denormalize = _linear_norms(expression)
                elif tag != "FieldRef":
                    raise NotCompilable(f"regression NeuralOutput <{tag}>")
            else:
                if tag != "NormDiscrete":
                    raise NotCompilable(f"classification NeuralOutput <{tag}>")
                assert self.ctx.labels is not None
                self.categories.append(self.ctx.labels.index(expression.get("value")))
            self.output_columns.append(ids[neuron])  # type: ignore[index]
        if self.ctx.function == "regression" and len(self.output_columns) != 1:
            raise NotCompilable("a regression NeuralNetwork needs exactly one NeuralOutput")
        if self.ctx.function == "classification" and (
            not self.categories or len(set(self.categories)) != len(self.categories)
        ):
            raise NotCompilable("a classification NeuralNetwork needs one NeuralOutput per class")

    def evaluate(self, env: Env) -> Result:
        """The network's value (regression), or its label and the output neurons as class probabilities."""
        n = env.rows
        columns = [np.asarray(g(env), dtype=np.float64) for g in self.inputs]
        missing = np.zeros(n, dtype=bool)
        for c in columns:
            missing |= np.isnan(c)
        step = max(1, _CELLS // self.entities)  # bounds the [entities, rows] value stack
        with np.errstate(all="ignore"):
            parts = [self._forward([c[i : i + step] for c in columns]) for i in range(0, n, step)]
            parts = parts or [self._forward(columns)]
            picked = [np.concatenate([p[j] for p in parts]) for j in range(len(self.output_columns))]
            if self.ctx.function == "regression":
                value = picked[0] if self.denormalize is None else _denormalize(picked[0], self.denormalize)
                return Result(value=np.where(missing, np.nan, value))
        assert self.ctx.labels is not None
        probs = np.zeros((n, len(self.ctx.labels)))  # a class without a neuron has probability 0
        stacked = np.column_stack(picked)
        for c, column in zip(self.categories, picked):
            probs[:, c] = column
        # The first maximum in NeuralOutputs order; NaN counts as the greatest (Double.compare).
        label = np.asarray(self.categories)[np.argmax(stacked, axis=1)]
        none = missing | np.isnan(stacked).any(axis=1)  # (NaN: a zero-sum normalisation, where JPMML fails)
        probs[none] = np.nan
        rank = fixed_rank(n, len(self.ctx.labels), self.categories)
        return Result(label=np.where(none, -1, label), probs=probs, rank=rank)

    def _forward(self, columns: list[np.ndarray]) -> list[np.ndarray]:
        """The output neurons' values for the rows of the input ``columns``, layer after layer."""
        columns = list(columns)
        zero = np.zeros(columns[0].shape[0])
        for layer in self.layers:
            columns.extend(layer.evaluate(np.vstack([*columns, zero])))  # the last row is the padding's zero
        return [columns[i] for i in self.output_columns]


def _linear_norms(elem: ET.Element) -> list[tuple[float, float]]:
    allow_only(elem, {"LinearNorm"})
    norms = [(number_attribute(n, "orig"), number_attribute(n, "norm")) for n in child_elements(elem)]
    if len(norms) < 2 or any(b[1] <= a[1] or b[0] <= a[0] for a, b in itertools.pairwise(norms)):
        raise NotCompilable("NormContinuous needs two or more LinearNorms increasing in orig and norm")
    return norms


def _denormalize(y: np.ndarray, norms: list[tuple[float, float]]) -> np.ndarray:
    """JPMML's inverse NormContinuous: the first segment whose norm range holds y; outside all of them NaN."""
    out = np.full(y.shape, np.nan)
    done = np.zeros(y.shape, dtype=bool)
    for (o1, n1), (o2, n2) in itertools.pairwise(norms):
        hit = ~done & (y >= n1) & (y <= n2)
        out[hit] = ((y[hit] - n1) / (n2 - n1)) * (o2 - o1) + o1
        done |= hit
    return out


#: Unique names for the anonymous DerivedFields of NeuralInputs, in a scope of their own.
_ANONYMOUS = "\x00neural-input"


def derived_getter(field: ET.Element, scope: Scope) -> Getter:
    """Compile an anonymous DerivedField (a NeuralInput's) in ``scope``.

    NormDiscrete is compiled here (1.0 when the field equals the value, else
    0.0; missing gives ``mapMissingTo`` or missing), on a numeric or a string
    field; anything else goes through the scope's own DerivedField compiler.
    """
    kids = child_elements(field)
    if len(kids) == 1 and tag_name(kids[0]) == "NormDiscrete":
        norm = kids[0]
        allow_only(norm, set())
        getter = scope.resolve(norm.get("field"))
        value = field_constant(getter, norm.get("value"), "NormDiscrete value")
        missing = parse_number(norm.get("mapMissingTo"), "mapMissingTo") if norm.get("mapMissingTo") else math.nan

        def indicator(env: Env) -> np.ndarray:
            x = getter(env)
            return np.where(np.isnan(x), missing, (x == value).astype(np.float64))

        return indicator
    container = ET.Element("LocalTransformations")
    named = ET.SubElement(container, "DerivedField", dict(field.attrib, name=_ANONYMOUS))
    named.extend(list(field))
    return scope.with_transformations(container).resolve(_ANONYMOUS)
