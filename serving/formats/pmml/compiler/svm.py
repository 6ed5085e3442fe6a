"""SupportVectorMachineModel: kernels, one machine per class pair or class, as JPMML-Evaluator scores them.

Kernels: linear, polynomial, radialBasis, sigmoid over the VectorDictionary's
FieldRef VectorFields (Array or REAL-SparseArray instances). A machine's value
is its coefficient times kernel terms added one by one in document order, then
``absoluteValue``, as JPMML adds them. Regression reads the one machine.
Classification: OneAgainstOne votes for ``targetCategory`` when the value is
below the threshold (the machine's, else the model's), else for
``alternateTargetCategory`` (or, with ``alternateBinaryTargetCategory``, by the
rounded value: 1 the target, 0 the alternate, anything else no prediction); the
probability of a class is its share of the votes and the winner is the first
class with the most votes in the order the votes first came. OneAgainstAll
picks the class whose machine gives the smallest value and has no
probabilities (NaN). JPMML does not score ``representation="Coefficients"`` or
``maxWins="true"``, so neither is compiled. A missing input gives no prediction.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

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
from serving.formats.pmml.compiler.expressions import Scope, vocabulary_of
from serving.formats.pmml.compiler.labels import NO_RANK, dense_rank
from serving.formats.pmml.compiler.neural import check_math_context, fixed_rank

#: Kernel cells ([vectors, rows]) computed at once.
_CELLS = 1 << 21

_KERNELS = {"LinearKernelType", "PolynomialKernelType", "RadialBasisKernelType", "SigmoidKernelType"}


def parse_real_array(elem: ET.Element) -> list[float]:
    """The numbers of an ``Array`` of type real (or int), or of a ``REAL-SparseArray``."""
    tag = tag_name(elem)
    if tag == "Array":
        if elem.get("type") not in ("real", "int"):
            raise NotCompilable(f"Array of type {elem.get('type')!r}")
        values = [parse_number(t.strip('"'), "Array entry") for t in (elem.text or "").split()]
        if elem.get("n") is not None and int(elem.get("n", "0")) != len(values):
            raise NotCompilable("Array n differs from its entries")
        return values
    if tag in ("REAL-SparseArray", "INT-SparseArray"):
        size = int(elem.get("n", "0"))
        default = parse_number(elem.get("defaultValue", "0"), "SparseArray defaultValue")
        indices_elem = find_child(elem, "Indices")
        entries_elem = find_child(elem, "REAL-Entries" if tag.startswith("REAL") else "INT-Entries")
        indices = [int(t) for t in (indices_elem.text or "").split()] if indices_elem is not None else []
        entries_text = (entries_elem.text or "") if entries_elem is not None else ""
        entries = [parse_number(t, "SparseArray entry") for t in entries_text.split()]
        if len(indices) != len(entries) or any(not 1 <= i <= size for i in indices):
            raise NotCompilable("SparseArray indices and entries do not match")
        values = [default] * size
        for i, v in zip(indices, entries):
            values[i - 1] = v
        return values
    raise NotCompilable(f"<{tag}> is not a numeric array")


class Svm(Model):
    """A SupportVectorMachineModel: its kernel over the support vectors, then regression, votes or distances."""

    def __init__(self, elem: ET.Element, ctx: Context, scope: Scope) -> None:
        allow_only(elem, {"MiningSchema", "Output", "LocalTransformations", "VectorDictionary", "SupportVectorMachine",
                          "ModelStats", "ModelExplanation", "ModelVerification"} | _KERNELS)  # fmt: skip
        check_math_context(elem)
        if elem.get("representation", "SupportVectors") != "SupportVectors":
            raise NotCompilable("SVM representation Coefficients (JPMML does not score it)")
        if elem.get("maxWins", "false") != "false":
            raise NotCompilable("SVM maxWins (JPMML does not score it)")
        self.ctx = ctx
        kernels = [c for c in child_elements(elem) if tag_name(c) in _KERNELS]
        if len(kernels) != 1:
            raise NotCompilable("an SVM needs exactly one kernel")
        self.kernel = tag_name(kernels[0])
        self.gamma = number_attribute(kernels[0], "gamma", 1.0)
        self.coef0 = number_attribute(kernels[0], "coef0", 1.0)
        self.degree = number_attribute(kernels[0], "degree", 1.0)
        self.fields, vectors = self._dictionary(elem, scope)
        self.method = elem.get("classificationMethod", "OneAgainstAll")
        model_threshold = number_attribute(elem, "threshold", 0.0)
        machines = [c for c in child_elements(elem) if tag_name(c) == "SupportVectorMachine"]
        if not machines:
            raise NotCompilable("an SVM without SupportVectorMachine")
        self.machines = [self._machine(m, vectors, model_threshold) for m in machines]
        self.vector_ids = list(vectors)
        self.vectors = np.asarray([vectors[v] for v in self.vector_ids], dtype=np.float64).reshape(len(vectors), -1)
        if ctx.function == "regression":
            if len(machines) != 1:
                raise NotCompilable("a regression SVM needs exactly one SupportVectorMachine")
            return
        assert ctx.labels is not None
        if self.method not in ("OneAgainstOne", "OneAgainstAll"):
            raise NotCompilable(f"classificationMethod {self.method!r}")
        binary = elem.get("alternateBinaryTargetCategory")
        self.binary = None if binary is None else ctx.labels.index(binary)
        self.targets = [ctx.labels.index(m.get("targetCategory")) for m in machines]
        if self.method == "OneAgainstAll":
            self.gives_probabilities = False  # JPMML reports distances, no probabilities
            if len(set(self.targets)) != len(self.targets):
                raise NotCompilable("OneAgainstAll machines repeat a targetCategory")
        elif self.binary is None:
            self.alternates = [ctx.labels.index(m.get("alternateTargetCategory")) for m in machines]

    @staticmethod
    def _dictionary(elem: ET.Element, scope: Scope) -> tuple[list[Getter], dict[str, list[float]]]:
        dictionary = find_child(elem, "VectorDictionary")
        if dictionary is None:
            raise NotCompilable("an SVM without VectorDictionary")
        allow_only(dictionary, {"VectorFields", "VectorInstance"})
        fields_elem = find_child(dictionary, "VectorFields")
        if fields_elem is None:
            raise NotCompilable("VectorDictionary without VectorFields")
        allow_only(fields_elem, {"FieldRef"})
        fields = []
        for ref in child_elements(fields_elem):
            if ref.get("mapMissingTo") is not None:
                raise NotCompilable("VectorFields FieldRef with mapMissingTo")
            getter = scope.resolve(ref.get("field"))
            if vocabulary_of(getter) is not None:
                raise NotCompilable("a VectorFields FieldRef to a string field")
            fields.append(getter)
        vectors: dict[str, list[float]] = {}
        for instance in (c for c in child_elements(dictionary) if tag_name(c) == "VectorInstance"):
            arrays = child_elements(instance)
            vector_id = instance.get("id")
            if len(arrays) != 1 or not vector_id or vector_id in vectors:
                raise NotCompilable("a VectorInstance needs a unique id and one array")
            values = parse_real_array(arrays[0])
            if len(values) != len(fields):
                raise NotCompilable("a VectorInstance's length differs from VectorFields")
            vectors[vector_id] = values
        return fields, vectors

    def _machine(self, elem: ET.Element, vectors: dict[str, list[float]], model_threshold: float):
        allow_only(elem, {"SupportVectors", "Coefficients"})
        sv_elem, coef_elem = find_child(elem, "SupportVectors"), find_child(elem, "Coefficients")
        if sv_elem is None or coef_elem is None:
            raise NotCompilable("a SupportVectorMachine needs SupportVectors and Coefficients")
        allow_only(sv_elem, {"SupportVector"})
        allow_only(coef_elem, {"Coefficient"})
        ids = [sv.get("vectorId") for sv in child_elements(sv_elem)]
        coefficients = [number_attribute(c, "value", 0.0) for c in child_elements(coef_elem)]
        if len(ids) != len(coefficients) or any(i not in vectors for i in ids):
            raise NotCompilable("SupportVectors and Coefficients do not match the VectorDictionary")
        order = list(vectors)
        index = np.asarray([order.index(i) for i in ids], dtype=np.intp)  # type: ignore[arg-type]
        threshold = number_attribute(elem, "threshold", model_threshold)
        return index, np.asarray(coefficients), number_attribute(coef_elem, "absoluteValue", 0.0), threshold

    def _kernel(self, x: list[np.ndarray]) -> np.ndarray:
        """[vectors, rows] kernel values; sums over the fields run in VectorFields order, as JPMML's."""
        v = self.vectors
        total = np.zeros((v.shape[0], x[0].shape[0]))
        for i, column in enumerate(x):
            if self.kernel == "RadialBasisKernelType":
                d = column[None, :] - v[:, i, None]
                total = total + d * d
            else:
                total = total + column[None, :] * v[:, i, None]
        if self.kernel == "LinearKernelType":
            return total
        if self.kernel == "PolynomialKernelType":
            return np.power(total * self.gamma + self.coef0, self.degree)
        if self.kernel == "RadialBasisKernelType":
            return np.exp(-total * self.gamma)
        return np.tanh(total * self.gamma + self.coef0)

    def evaluate(self, env: Env) -> Result:
        """The regression value, or the label with vote shares (OneAgainstOne) or without probabilities."""
        n = env.rows
        x = [np.asarray(f(env), dtype=np.float64) for f in self.fields]
        missing = np.zeros(n, dtype=bool)
        for column in x:
            missing |= np.isnan(column)
        step = max(1, _CELLS // max(1, len(self.vector_ids)))  # bounds the [vectors, rows] kernel matrix
        with np.errstate(all="ignore"):
            parts = [self._values([c[i : i + step] for c in x]) for i in range(0, n, step)] or [self._values(x)]
        values = [np.concatenate([p[m] for p in parts]) for m in range(len(self.machines))]
        if self.ctx.function == "regression":
            return Result(value=np.where(missing, np.nan, values[0]))
        if self.method == "OneAgainstAll":
            return self._one_against_all(values, missing)
        return self._one_against_one(values, missing)

    def _values(self, x: list[np.ndarray]) -> list[np.ndarray]:
        """Each machine's value for the rows of ``x``."""
        k = self._kernel(x)
        values = []
        for index, coefficients, absolute, _ in self.machines:
            terms = coefficients[:, None] * k[index]
            total = np.add.accumulate(terms, axis=0)[-1] if len(index) else np.zeros(k.shape[1])  # in order
            values.append(total + absolute)
        return values

    def _one_against_all(self, values: list[np.ndarray], missing: np.ndarray) -> Result:
        assert self.ctx.labels is not None
        stacked = np.column_stack(values)
        # The first minimum; NaN is the greatest under Double.compare, so it never wins against a number.
        picked = np.argmin(np.where(np.isnan(stacked), np.inf, stacked), axis=1)
        label = np.asarray(self.targets)[picked]
        probs = np.full((len(missing), len(self.ctx.labels)), np.nan)
        rank = fixed_rank(len(missing), len(self.ctx.labels), self.targets)
        return Result(label=np.where(missing, -1, label), probs=probs, rank=rank)

    def _one_against_one(self, values: list[np.ndarray], missing: np.ndarray) -> Result:
        assert self.ctx.labels is not None
        n, m, k = len(missing), len(values), len(self.ctx.labels)
        votes = np.zeros((n, k))
        first = np.full((n, k), m, dtype=np.int64)  # the machine that first voted for each class
        invalid = missing.copy()
        rows = np.arange(n)
        for i, (value, machine) in enumerate(zip(values, self.machines)):
            if self.binary is not None:
                rounded = np.floor(value + 0.5)  # Math.round
                invalid |= ~((rounded == 0.0) | (rounded == 1.0))
                winner = np.where(rounded == 1.0, self.targets[i], self.binary)
            else:
                # value < threshold by Double.compare: NaN is never below
                winner = np.where(value < machine[3], self.targets[i], self.alternates[i])
            votes[rows, winner] += 1.0
            first[rows, winner] = np.minimum(first[rows, winner], i)
        total = votes.sum(axis=1)
        probs = np.where(votes > 0, votes / total[:, None], 0.0)
        # Most votes; among equals, the class whose first vote came first (the vote map's order).
        label = np.argmax(votes * (m + 1) + (m - first), axis=1)
        probs[invalid] = np.nan
        rank = dense_rank(np.where(first < m, first, NO_RANK))  # the vote map's order
        return Result(label=np.where(invalid, -1, label), probs=probs, rank=rank)
