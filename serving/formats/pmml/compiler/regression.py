"""RegressionModel: linear regression, and classification with one RegressionTable per class.

Regression supports every normalizationMethod but probit; classification
supports softmax, simplemax, none and the binary logit. Sums, normalisations and
the choice of the predicted class follow PMML4S's order of operations and its
Scala ``maxBy``, so results round and tie exactly as pypmml's.
"""

from __future__ import annotations

import math
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
from serving.formats.pmml.compiler.expressions import Scope
from serving.formats.pmml.compiler.outputs import default_layout
from serving.formats.pmml.compiler.scala import java_greater, max_by, scala_map_order


class Regression(Model):
    """A RegressionModel: one table per class (classification) or one table (regression).

    Each table is its intercept plus its NumericPredictors added in document
    order, as PMML4S adds them, then normalised as PMML4S does.
    """

    def __init__(self, elem: ET.Element, ctx: Context, scope: Scope) -> None:
        allow_only(elem, {"MiningSchema", "Output", "LocalTransformations", "RegressionTable", "ModelStats",
                          "ModelExplanation", "ModelVerification"})  # fmt: skip
        self.ctx = ctx
        self.method = elem.get("normalizationMethod", "none")
        tables = [c for c in child_elements(elem) if tag_name(c) == "RegressionTable"]
        if not tables:
            raise NotCompilable("RegressionModel without RegressionTable")
        self.tables = [self._table(t, scope) for t in tables]
        if ctx.function == "regression":
            if len(tables) != 1:
                raise NotCompilable("regression RegressionModel with several tables")
            if self.method not in ("none", "softmax", "logit", "exp", "cloglog", "cauchit"):
                raise NotCompilable(f"regression normalizationMethod {self.method!r}")
            self.layout = default_layout(ctx)
            return
        assert ctx.labels is not None
        if len(tables) < 2:
            raise NotCompilable("a classification RegressionModel needs a table per class")
        self.categories = [ctx.labels.index(t.get("targetCategory")) for t in tables]
        if len(set(self.categories)) != len(self.categories):
            raise NotCompilable("RegressionTables repeat a targetCategory")
        n_classes = ctx.n_classes
        binary = n_classes == 2
        if self.method in ("softmax", "simplemax") or (self.method == "none" and not binary):
            self.order = scala_map_order([ctx.labels.keys[c] for c in self.categories])
        elif self.method in ("none", "logit") and binary and len(tables) == 2:
            pass
        else:
            raise NotCompilable(f"classification normalizationMethod {self.method!r} with {len(tables)} tables")
        self.binary = binary
        self.layout = default_layout(ctx)

    @staticmethod
    def _table(elem: ET.Element, scope: Scope) -> tuple[float, list[tuple[Getter, float, int]]]:
        allow_only(elem, {"NumericPredictor"})
        terms = []
        for p in child_elements(elem):
            exponent = p.get("exponent", "1")
            if not INTEGER_TEXT.match(exponent):
                raise NotCompilable(f"NumericPredictor exponent {exponent!r}")
            terms.append((scope.resolve(p.get("name")), number_attribute(p, "coefficient"), int(exponent)))
        return number_attribute(elem, "intercept", 0.0), terms

    @staticmethod
    def _linear(table: tuple[float, list[tuple[Getter, float, int]]], env: Env) -> np.ndarray:
        intercept, terms = table
        total = np.full(env.rows, intercept)
        for getter, coefficient, exponent in terms:  # in document order, as PMML4S adds them
            x = getter(env)
            total = total + (x * coefficient if exponent == 1 else np.power(x, float(exponent)) * coefficient)
        return total

    def evaluate(self, env: Env) -> Result:
        """The predicted value (regression), or the predicted label and every class's probability."""
        ys = [self._linear(t, env) for t in self.tables]
        with np.errstate(all="ignore"):
            if self.ctx.function == "regression":
                y = ys[0]
                m = self.method
                if m in ("softmax", "logit"):
                    y = 1.0 / (1.0 + np.exp(-y))
                elif m == "exp":
                    y = np.exp(y)
                elif m == "cloglog":
                    y = 1.0 - np.exp(-np.exp(y))
                elif m == "cauchit":
                    y = 0.5 + (1 / math.pi) * np.arctan(y)
                return Result(value=y)
            return self._classify(ys, env.rows)

    def _classify(self, ys: list[np.ndarray], n: int) -> Result:
        assert self.ctx.labels is not None
        probs = np.full((n, len(self.ctx.labels)), np.nan)
        label = np.full(n, -1, dtype=np.int64)
        valid = ~np.any(np.isnan(np.vstack(ys)), axis=0)  # any missing y: no probabilities at all
        cats = self.categories
        if self.method in ("softmax", "simplemax") or (self.method == "none" and not self.binary):
            if self.method == "softmax":
                exps = [np.exp(y) for y in ys]
                total = exps[0]
                for e in exps[1:]:
                    total = total + e
                columns = [e / total for e in exps]
            elif self.method == "simplemax":
                total = ys[0]
                for y in ys[1:]:
                    total = total + y
                columns = [y / total for y in ys]
            else:
                rest = ys[0]
                for y in ys[1:-1]:
                    rest = rest + y
                columns = [*ys[:-1], 1.0 - rest]
            picked = max_by(np.column_stack(columns), self.order)
            for c, column in zip(cats, columns):
                probs[:, c] = column
            label = np.asarray(cats)[picked]
        else:
            # Binary: PMML4S takes "first" as the table whose y is not the trivial 0.0 (the last by default).
            if self.method == "none":
                p1 = np.clip(ys[0], 0.0, 1.0)
                first_is_head = np.ones(n, dtype=bool)
            else:
                first_is_head = ys[1] == 0.0
                p1 = 1.0 / (1.0 + np.exp(-np.where(first_is_head, ys[0], ys[1])))
            p2 = 1.0 - p1
            head_p = np.where(first_is_head, p1, p2)
            last_p = np.where(first_is_head, p2, p1)
            probs[:, cats[0]], probs[:, cats[1]] = head_p, last_p
            # A two-entry map iterates in insertion order: first, then second.
            second_wins = java_greater(p2, p1)
            first_label = np.where(first_is_head, cats[0], cats[1])
            second_label = np.where(first_is_head, cats[1], cats[0])
            label = np.where(second_wins, second_label, first_label)
        probs[~valid] = np.nan
        label = np.where(valid, label, -1)
        return Result(label=label, probs=probs)
