"""GeneralRegressionModel: regression, generalLinear, generalizedLinear and multinomialLogistic, as JPMML computes them.

The design matrix is the PPMatrix: a parameter's row is the product of its
factor cells (1 where the factor equals the cell's value, else 0; a missing
factor makes the model missing) and then, unless that product is 0, its
covariate cells (``x ** value``; a missing covariate makes the model missing).
A target's linear predictor adds ``beta * row`` (or ``beta`` for a parameter
without a row, the intercept) over its ParamMatrix cells in document order.

* regression / generalLinear: the linear predictor;
* generalizedLinear: plus ``offsetValue`` (or ``offsetVariable``), through the
  inverse ``linkFunction`` (identity, log, logit, probit, cloglog, loglog, logc,
  power and oddspower with ``linkParameter``, negbin with ``distParameter``),
  times ``trialsValue`` (or ``trialsVariable``); for classification each
  category but the reference one gets that, the reference ``1 -`` the previous one;
* multinomialLogistic: ``exp`` of each category's predictor, the reference
  category ``exp(0)``, normalised by their sum.

The reference category (``targetReferenceCategory``, else the only target
value without ParamMatrix cells) comes last, and the predicted class is the
first most probable in that order. ordinalMultinomial, CoxRegression and
contrast matrices are not compiled.
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
from serving.formats.pmml.compiler.expressions import Scope, field_constant, vocabulary_of
from serving.formats.pmml.compiler.links import INVERSE, inverse_negbin, inverse_oddspower, inverse_power
from serving.formats.pmml.compiler.regression import classification, simplemax

_LINKS = ("identity", "log", "logit", "probit", "cloglog", "loglog", "logc", "power", "oddspower", "negbin")

#: A PPMatrix row: its factor cells (field, value) and covariate cells (field, exponent).
_Row = tuple[list[tuple[Getter, float]], list[tuple[Getter, float]]]


class GeneralRegression(Model):
    """A GeneralRegressionModel of a compiled modelType."""

    def __init__(self, elem: ET.Element, ctx: Context, scope: Scope) -> None:
        allow_only(elem, {"MiningSchema", "Output", "LocalTransformations", "Targets", "ParameterList", "FactorList",
                          "CovariateList", "PPMatrix", "ParamMatrix", "ModelStats", "ModelExplanation",
                          "ModelVerification"})  # fmt: skip
        self.ctx = ctx
        self.model_type = elem.get("modelType", "")
        if self.model_type not in ("regression", "generalLinear", "generalizedLinear", "multinomialLogistic"):
            raise NotCompilable(f"GeneralRegressionModel modelType {self.model_type!r}")
        if ctx.function == "regression" and self.model_type == "multinomialLogistic":
            raise NotCompilable(f"modelType {self.model_type!r} for {ctx.function}")
        if ctx.function == "classification" and self.model_type not in ("generalizedLinear", "multinomialLogistic"):
            raise NotCompilable(f"modelType {self.model_type!r} for {ctx.function}")
        self._link(elem, scope)
        factors = _predictors(elem, "FactorList")
        covariates = _predictors(elem, "CovariateList")
        self.rows: dict[str | None, dict[str, _Row]] = {}
        matrix = find_child(elem, "PPMatrix")
        for cell in child_elements(matrix) if matrix is not None else []:
            if tag_name(cell) != "PPCell":
                raise NotCompilable(f"<{tag_name(cell)}> in PPMatrix")
            field = cell.get("predictorName")
            getter = scope.resolve(field)
            row = self.rows.setdefault(cell.get("targetCategory"), {}).setdefault(cell.get("parameterName"), ([], []))  # type: ignore[arg-type]
            if field in factors:
                row[0].append((getter, field_constant(getter, cell.get("value"), "PPCell value")))
            elif field in covariates:
                if vocabulary_of(getter) is not None:
                    raise NotCompilable(f"covariate {field!r} is a string")
                row[1].append((getter, parse_number(cell.get("value"), "PPCell exponent")))
            else:
                raise NotCompilable(f"PPCell predictor {field!r} is neither a factor nor a covariate")
        self.cells: dict[str | None, list[tuple[str, float]]] = {}
        params = find_child(elem, "ParamMatrix")
        if params is None:
            raise NotCompilable("GeneralRegressionModel without ParamMatrix")
        for cell in child_elements(params):
            if tag_name(cell) != "PCell":
                raise NotCompilable(f"<{tag_name(cell)}> in ParamMatrix")
            entry = (cell.get("parameterName") or "", number_attribute(cell, "beta"))
            self.cells.setdefault(cell.get("targetCategory"), []).append(entry)
        if ctx.function == "regression":
            if set(self.cells) != {None} or set(self.rows) - {None}:
                raise NotCompilable("a regression's ParamMatrix/PPMatrix name target categories")
            return
        self._categories(elem)

    def _link(self, elem: ET.Element, scope: Scope) -> None:
        self.link = elem.get("linkFunction", "")
        self.offset = number_attribute(elem, "offsetValue", 0.0)
        self.trials = number_attribute(elem, "trialsValue", 1.0)
        self.offset_field = scope.resolve(elem.get("offsetVariable")) if elem.get("offsetVariable") else None
        self.trials_field = scope.resolve(elem.get("trialsVariable")) if elem.get("trialsVariable") else None
        if self.model_type != "generalizedLinear":
            return
        if self.link not in _LINKS:
            raise NotCompilable(f"linkFunction {self.link!r}")
        self.parameter = number_attribute(elem, "linkParameter") if self.link in ("power", "oddspower") else 0.0
        if self.link == "negbin":
            self.parameter = number_attribute(elem, "distParameter")

    def _categories(self, elem: ET.Element) -> None:
        labels = self.ctx.labels
        assert labels is not None
        order = list(range(len(labels)))
        named = {labels.index(c) for c in self.cells if c is not None}
        reference = elem.get("targetReferenceCategory")
        if reference is not None:
            last = labels.index(reference)
        else:
            absent = [c for c in order if c not in named]
            if len(absent) != 1:
                raise NotCompilable("no single reference category outside the ParamMatrix")
            last = absent[0]
        self.categories = [c for c in order if c != last] + [last]
        self.by_label = {labels.index(c): c for c in self.cells if c is not None}
        self.rows_by_label = {labels.index(c): c for c in self.rows if c is not None}
        for c in self.categories[:-1]:
            if c not in self.by_label and not (len(order) == 2 and None in self.cells):
                raise NotCompilable("a target category has no ParamMatrix cells")
            if self.rows and c not in self.rows_by_label and None not in self.rows:
                raise NotCompilable("a target category has no PPMatrix cells")

    def _dot(self, env: Env, cells: list[tuple[str, float]], rows: dict[str, _Row]) -> np.ndarray:
        total = np.zeros(env.rows)
        missing = np.zeros(env.rows, dtype=bool)
        for name, beta in cells:
            row = rows.get(name)
            if row is None:
                total = total + beta
                continue
            factors, covariates = row
            product = np.ones(env.rows)
            for getter, value in factors:
                x = getter(env)
                missing |= np.isnan(x)
                product = np.where(x == value, product, product * 0.0)
            zero = product == 0.0  # JPMML skips the covariates then, missing or not
            for getter, exponent in covariates:
                x = getter(env)
                missing |= ~zero & np.isnan(x)
                product = np.where(zero, product, product * x if exponent == 1.0 else product * np.power(x, exponent))
            total = total + beta * product
        return np.where(missing, np.nan, total)

    def _linked(self, env: Env, y: np.ndarray) -> np.ndarray:
        if self.model_type != "generalizedLinear":
            return y
        offset = self.offset_field(env) if self.offset_field is not None else self.offset
        if self.offset_field is not None or self.offset != 0.0:
            y = y + offset
        if self.link == "power":
            y = inverse_power(y, self.parameter)
        elif self.link == "oddspower":
            y = inverse_oddspower(y, self.parameter)
        elif self.link == "negbin":
            y = inverse_negbin(y, self.parameter)
        else:
            y = INVERSE[self.link](y)
        if self.trials_field is not None:
            y = y * self.trials_field(env)
        elif self.trials != 1.0:
            y = y * self.trials
        return y

    def evaluate(self, env: Env) -> Result:
        """The predicted value (regression), or the predicted label and every class's probability."""
        with np.errstate(all="ignore"):
            if self.ctx.function == "regression":
                return Result(value=self._linked(env, self._dot(env, self.cells[None], self.rows.get(None, {}))))
            ys, columns = [], []
            for c in self.categories[:-1]:
                cells = self.cells[self.by_label[c]] if c in self.by_label else self.cells[None]
                rows = self.rows.get(self.rows_by_label[c], {}) if c in self.rows_by_label else self.rows.get(None, {})
                y = self._dot(env, cells, rows)
                ys.append(y)
                columns.append(np.exp(y) if self.model_type == "multinomialLogistic" else self._linked(env, y))
            if self.model_type == "multinomialLogistic":
                columns = simplemax([*columns, np.ones(env.rows)])
            else:
                columns.append(1.0 - columns[-1])
            return classification(columns, self.categories, self.ctx.n_classes, ys)


def _predictors(elem: ET.Element, name: str) -> set[str | None]:
    container = find_child(elem, name)
    if container is None:
        return set()
    names = set()
    for p in child_elements(container):
        if tag_name(p) != "Predictor" or child_elements(p):
            raise NotCompilable(f"{name}: only plain Predictors (no contrast matrices)")
        names.add(p.get("name"))
    return names
