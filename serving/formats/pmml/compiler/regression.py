"""RegressionModel: linear regression, and classification with one RegressionTable per class, as JPMML computes them.

A table is evaluated as JPMML's ``RegressionTableUtil``: from 0, add each
NumericPredictor (``coefficient * x ** exponent``; a missing x makes the table,
and so the model, missing), then each matching CategoricalPredictor (a missing
value is ignored; only a field's first match counts), then each PredictorTerm
(``coefficient * x1 * x2 ...``), then the intercept. Regression: every
normalizationMethod but simplemax. Classification (a table per declared target
value): two tables with none (clipped to [0, 1]), logit, probit, cloglog, loglog
or cauchit give the first class ``f(y1)`` and the second ``1 - f(y1)`` (softmax
too when the second table is empty); otherwise none (the last class is ``1 -
the others``), simplemax, softmax, or (JPMML's extension) logit then simplemax.
The predicted class is the first most probable in table order.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from serving.formats.pmml.compiler.base import Context, Model, Result
from serving.formats.pmml.compiler.elements import (
    INTEGER_TEXT,
    NotCompilable,
    allow_only,
    child_elements,
    number_attribute,
    tag_name,
)
from serving.formats.pmml.compiler.evaluation import Env, Getter
from serving.formats.pmml.compiler.expressions import Scope, field_constant, vocabulary_of
from serving.formats.pmml.compiler.labels import NO_RANK
from serving.formats.pmml.compiler.links import INVERSE

_REGRESSION_METHODS = ("none", "softmax", "logit", "exp", "probit", "cloglog", "loglog", "cauchit")
_BINARY_METHODS = ("none", "logit", "probit", "cloglog", "loglog", "cauchit")


class _Table:
    """One RegressionTable, compiled."""

    def __init__(self, elem: ET.Element, scope: Scope) -> None:
        allow_only(elem, {"NumericPredictor", "CategoricalPredictor", "PredictorTerm"})
        self.intercept = number_attribute(elem, "intercept", 0.0)
        self.numeric: list[tuple[Getter, float, int]] = []
        self.categorical: list[tuple[Getter, float, float, int]] = []  # (field, value, coefficient, run)
        self.terms: list[tuple[float, list[Getter]]] = []
        run, previous = -1, None
        for p in child_elements(elem):
            tag, coefficient = tag_name(p), number_attribute(p, "coefficient")
            if tag == "NumericPredictor":
                exponent = p.get("exponent", "1")
                if not INTEGER_TEXT.match(exponent):
                    raise NotCompilable(f"NumericPredictor exponent {exponent!r}")
                getter = scope.resolve(p.get("name"))
                if vocabulary_of(getter) is not None:
                    raise NotCompilable("NumericPredictor of a string field")
                self.numeric.append((getter, coefficient, int(exponent)))
            elif tag == "CategoricalPredictor":
                if p.get("name") != previous:  # JPMML stops at a field's first match within a run of its predictors
                    run, previous = run + 1, p.get("name")
                getter = scope.resolve(p.get("name"))
                value = field_constant(getter, p.get("value"), "CategoricalPredictor value")
                self.categorical.append((getter, value, coefficient, run))
            else:
                allow_only(p, {"FieldRef"})
                refs = [scope.resolve(f.get("field")) for f in child_elements(p)]
                if not refs or any(vocabulary_of(r) is not None for r in refs):
                    raise NotCompilable("PredictorTerm needs numeric FieldRefs")
                self.terms.append((coefficient, refs))

    @property
    def is_default(self) -> bool:
        """No predictors and a zero intercept (JPMML's binary softmax then becomes a logit)."""
        return not (self.numeric or self.categorical or self.terms) and self.intercept == 0.0

    def evaluate(self, env: Env) -> np.ndarray:
        """The table's value per row, NaN where it is missing."""
        total = np.zeros(env.rows)
        missing = np.zeros(env.rows, dtype=bool)
        for getter, coefficient, exponent in self.numeric:
            x = getter(env)
            missing |= np.isnan(x)
            total = total + (coefficient * x if exponent == 1 else coefficient * np.power(x, float(exponent)))
        matched: dict[int, np.ndarray] = {}
        for getter, value, coefficient, run in self.categorical:
            x = getter(env)
            done = matched.setdefault(run, np.zeros(env.rows, dtype=bool))
            hit = ~done & (x == value)
            total = np.where(hit, total + coefficient, total)
            done |= hit | np.isnan(x)
        for coefficient, refs in self.terms:
            product = np.full(env.rows, coefficient)
            for ref in refs:
                x = ref(env)
                missing |= np.isnan(x)
                product = product * x
            total = total + product
        if self.intercept != 0.0:
            total = total + self.intercept
        return np.where(missing, np.nan, total)


class Regression(Model):
    """A RegressionModel: one table (regression) or one table per class (classification)."""

    def __init__(self, elem: ET.Element, ctx: Context, scope: Scope) -> None:
        allow_only(elem, {"MiningSchema", "Output", "LocalTransformations", "RegressionTable", "ModelStats",
                          "ModelExplanation", "ModelVerification", "Targets"})  # fmt: skip
        self.ctx = ctx
        self.method = elem.get("normalizationMethod", "none")
        tables = [c for c in child_elements(elem) if tag_name(c) == "RegressionTable"]
        if not tables:
            raise NotCompilable("RegressionModel without RegressionTable")
        self.tables = [_Table(t, scope) for t in tables]
        if ctx.function == "regression":
            if len(tables) != 1:
                raise NotCompilable("regression RegressionModel with several tables")
            if self.method not in _REGRESSION_METHODS:
                raise NotCompilable(f"regression normalizationMethod {self.method!r}")
            return
        assert ctx.labels is not None
        if len(tables) < 2 or len(tables) != ctx.n_classes:
            raise NotCompilable("a classification RegressionModel needs one table per target value")
        self.categories = [ctx.labels.index(t.get("targetCategory")) for t in tables]
        if len(set(self.categories)) != len(self.categories):
            raise NotCompilable("RegressionTables repeat a targetCategory")
        binary = len(tables) == 2
        if binary and self.method == "softmax" and self.tables[1].is_default:
            self.method = "logit"  # JPMML's non-standard binary softmax
        if binary and self.method in _BINARY_METHODS:
            self.binary = True
        elif self.method in ("none", "simplemax", "softmax") or (not binary and self.method == "logit"):
            self.binary = False
        else:
            raise NotCompilable(f"classification normalizationMethod {self.method!r} with {len(tables)} tables")

    def evaluate(self, env: Env) -> Result:
        """The predicted value (regression), or the predicted label and every class's probability."""
        with np.errstate(all="ignore"):
            if self.ctx.function == "regression":
                return Result(value=INVERSE["logit" if self.method == "softmax" else self.method](
                    self.tables[0].evaluate(env)))  # fmt: skip
            ys = [t.evaluate(env) for t in self.tables]
            if self.binary:
                first = ys[0]
                p1 = np.clip(first, 0.0, 1.0) if self.method == "none" else INVERSE[self.method](first)
                columns = [p1, 1.0 - p1]
            else:
                columns = multinomial(self.method, ys)
            return classification(columns, self.categories, self.ctx.n_classes, ys)


def multinomial(method: str, ys: list[np.ndarray]) -> list[np.ndarray]:
    """JPMML's ``computeMultinomialProbabilities`` of the values ``ys``, in their order."""
    if method == "none":
        rest = ys[0]
        for y in ys[1:-1]:
            rest = rest + y
        return [*ys[:-1], 1.0 - rest]
    if method == "logit":
        ys = [1.0 / (1.0 + np.exp(-y)) for y in ys]
        method = "simplemax"
    if method == "softmax":
        top = ys[0]
        for y in ys[1:]:
            top = np.where(top < y, y, top)
        ys = [np.exp(y - top) for y in ys]
    return simplemax(ys)


def simplemax(ys: list[np.ndarray]) -> list[np.ndarray]:
    """JPMML's ``normalizeSimpleMax``: divide by the sum (left to right) unless it is 1; a zero sum has no result."""
    total = ys[0]
    for y in ys[1:]:
        total = total + y
    out = [np.where(total == 1.0, y, y / total) for y in ys]
    return [np.where(total == 0.0, np.nan, y) for y in out]


def classification(columns: list[np.ndarray], categories: list[int], n_labels: int, inputs: list[np.ndarray]) -> Result:
    """The Result of per-class probabilities ``columns`` in ``categories`` order (JPMML's ValueMap order).

    The label is the first maximum in that order (NaN counting as the
    greatest, as Java's ``Double.compare``); a row where any of ``inputs`` is
    missing has no result at all.
    """
    rows = len(columns[0])
    missing = np.zeros(rows, dtype=bool)
    for y in [*inputs, *columns]:  # a missing table, or an undefined normalisation (JPMML fails the record)
        missing |= np.isnan(y)
    stacked = np.column_stack(columns)
    probs = np.full((rows, n_labels), np.nan)
    probs[:, categories] = stacked
    label = np.asarray(categories)[np.argmax(stacked, axis=1)] if rows else np.empty(0, dtype=np.int64)
    probs[missing] = np.nan
    rank = np.full((rows, n_labels), NO_RANK, dtype=np.int64)
    rank[:, categories] = np.arange(len(categories), dtype=np.int64)
    rank[missing] = NO_RANK
    return Result(label=np.where(missing, -1, label), probs=probs, rank=rank)
