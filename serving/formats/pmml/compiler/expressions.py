"""Fields and expressions: TransformationDictionary, LocalTransformations, DerivedField and its expressions.

A :class:`Scope` resolves a field name at compile time to a
:data:`~serving.formats.pmml.compiler.evaluation.Getter`: an input column, or a
DerivedField of this scope or an enclosing one. DerivedFields must be
continuous doubles built from FieldRef, Constant, NormContinuous and Apply with
arithmetic functions, evaluated as PMML4S evaluates them (its rounding, its
missing-value rules); each is computed at most once per evaluation.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Callable

import numpy as np

from serving.formats.pmml.compiler.elements import (
    INTEGER_TEXT,
    NotCompilable,
    allow_only,
    child_elements,
    number_attribute,
    parse_number,
    tag_name,
)
from serving.formats.pmml.compiler.evaluation import Env, Getter


class Scope:
    """Compile-time field resolution: this scope's DerivedFields, then the enclosing scope's."""

    def __init__(self, parent: Scope | None, getters: dict[str, Getter] | None = None) -> None:
        self.parent = parent
        self.getters: dict[str, Getter] = dict(getters or {})
        self._elements: dict[str, ET.Element] = {}
        self._compiling: set[str] = set()

    def resolve(self, name: str | None) -> Getter:
        """The getter of field ``name``, or :class:`NotCompilable` if no scope up the chain defines it."""
        scope: Scope | None = self
        while scope is not None:
            getter = scope._lookup(name)
            if getter is not None:
                return getter
            scope = scope.parent
        raise NotCompilable(f"field {name!r} is not an input or a derived double")

    def _lookup(self, name: str | None) -> Getter | None:
        if name in self.getters:
            return self.getters[name]
        elem = self._elements.get(name)  # type: ignore[arg-type]
        if elem is None:
            return None
        if name in self._compiling:
            raise NotCompilable(f"DerivedField {name!r} depends on itself")
        self._compiling.add(name)  # type: ignore[arg-type]
        getter = self.getters[name] = _derived_field(elem, self)  # type: ignore[index]
        self._compiling.discard(name)  # type: ignore[arg-type]
        return getter

    def with_transformations(self, container: ET.Element | None) -> Scope:
        """A child scope holding the DerivedFields of ``container``, every one compiled now.

        All are compiled, used or not, so a document with anything unsupported is
        refused as a whole rather than scored by a partial reading.
        """
        if container is None:
            return self
        allow_only(container, {"DerivedField"})
        scope = Scope(self)
        for elem in child_elements(container):
            name = elem.get("name")
            if not name or name in scope._elements:
                raise NotCompilable(f"DerivedField name {name!r} is empty or repeated")
            scope._elements[name] = elem
        for name in scope._elements:
            scope._lookup(name)
        return scope


def _derived_field(elem: ET.Element, scope: Scope) -> Getter:
    if elem.get("dataType") != "double" or elem.get("optype", "continuous") != "continuous":
        raise NotCompilable(f"DerivedField {elem.get('name')!r} is not a continuous double")
    allow_only(elem, {"FieldRef", "Constant", "Apply", "NormContinuous"})
    kids = child_elements(elem)
    if len(kids) != 1:
        raise NotCompilable(f"DerivedField {elem.get('name')!r} needs exactly one expression")
    expression = _expression(kids[0], scope)
    slot = next(_SLOTS)

    def get(env: Env) -> np.ndarray:
        value = env.cache.get(slot)
        if value is None:
            value = env.cache[slot] = np.asarray(expression(env), dtype=np.float64)
        return value

    return get


#: Cache keys of derived fields within one evaluation.
_SLOTS = itertools.count()

_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "log10": np.log10,
    "ln": np.log,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "exp": np.exp,
    "floor": np.floor,
    "ceil": np.ceil,
}


def _java_round(x: np.ndarray) -> np.ndarray:
    """``Math.round(x).toDouble``: half up, NaN to 0, saturating at the long range."""
    floor = np.floor(x)
    rounded = floor + ((x - floor) >= 0.5)
    rounded = np.clip(rounded, -(2.0**63), 2.0**63 - 1)
    return np.where(np.isnan(x), 0.0, rounded)


def _binary(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    return {
        "+": np.add,
        "-": np.subtract,
        "*": np.multiply,
        "/": np.divide,
        "pow": np.power,
        "threshold": lambda a, b: (a > b).astype(np.float64),
        "modulo": lambda a, b: a - np.floor(a / b) * b,
        "x-modulo": lambda a, b: a - np.floor(a / b) * b,
    }.get(name)


def _aggregate(name: str, values: list[np.ndarray]) -> np.ndarray:
    """min/max/sum/avg/product of PMML4S: missing arguments are skipped, all missing is missing."""
    stack = np.vstack(values)
    present = ~np.isnan(stack)
    count = present.sum(axis=0)
    if name == "min":
        out = np.fmin.reduce(stack, axis=0)
    elif name == "max":
        out = np.fmax.reduce(stack, axis=0)
    else:
        total = np.zeros(stack.shape[1]) if name != "product" else np.ones(stack.shape[1])
        for row, ok in zip(stack, present):  # left to right, as Scala's fold
            total = np.where(ok, total * row if name == "product" else total + row, total)
        out = total / count if name == "avg" else total
    return np.where(count > 0, out, np.nan)


def _expression(elem: ET.Element, scope: Scope) -> Getter:
    tag = tag_name(elem)
    if tag == "Constant":
        if elem.get("missing") == "true":
            return lambda env: np.full(env.rows, np.nan)
        if elem.get("dataType", "double") not in ("double", "float", "integer"):
            raise NotCompilable(f"Constant of dataType {elem.get('dataType')!r}")
        text = (elem.text or "").strip()
        if elem.get("dataType") == "integer" and not INTEGER_TEXT.match(text):
            raise NotCompilable(f"integer Constant {text!r}")
        value = parse_number(text, "Constant")
        if elem.get("dataType") == "float":
            value = float(np.float32(value))
        return lambda env: np.full(env.rows, value)
    if tag == "FieldRef":
        allow_only(elem, set())
        getter = scope.resolve(elem.get("field"))
        if elem.get("mapMissingTo") is None:
            return getter
        replacement = parse_number(elem.get("mapMissingTo"), "FieldRef mapMissingTo")
        return lambda env: np.where(np.isnan(getter(env)), replacement, getter(env))
    if tag == "NormContinuous":
        return _norm_continuous(elem, scope)
    if tag == "Apply":
        return _apply(elem, scope)
    raise NotCompilable(f"expression <{tag}> is not supported")


def _apply(elem: ET.Element, scope: Scope) -> Getter:
    if elem.get("mapMissingTo") is not None or elem.get("defaultValue") is not None:
        raise NotCompilable("Apply with mapMissingTo or defaultValue is not supported")
    name = elem.get("function", "")
    args = [_expression(child, scope) for child in child_elements(elem)]

    def unary(fn: Callable[[np.ndarray], np.ndarray]) -> Getter:
        if len(args) != 1:
            raise NotCompilable(f"function {name!r} takes one argument")
        return lambda env: fn(args[0](env))

    if name in _UNARY:
        return unary(_UNARY[name])
    if name == "round":
        return unary(_java_round)
    if name in ("min", "max", "sum", "avg", "product"):
        if not args:
            raise NotCompilable(f"function {name!r} needs arguments")
        return lambda env: _aggregate(name, [a(env) for a in args])
    fn = _binary(name)
    if fn is not None:
        if len(args) != 2:
            raise NotCompilable(f"function {name!r} takes two arguments")
        return lambda env: fn(args[0](env), args[1](env))
    raise NotCompilable(f"Apply function {name!r} is not supported")


def _norm_continuous(elem: ET.Element, scope: Scope) -> Getter:
    allow_only(elem, {"LinearNorm"})
    norms = [(number_attribute(n, "orig"), number_attribute(n, "norm")) for n in child_elements(elem)]
    if len(norms) < 2 or any(b[0] <= a[0] for a, b in itertools.pairwise(norms)):
        raise NotCompilable("NormContinuous needs two or more LinearNorms in increasing orig order")
    outliers = elem.get("outliers", "asIs")
    if outliers not in ("asIs", "asMissingValues", "asExtremeValues"):
        raise NotCompilable(f"NormContinuous outliers={outliers!r}")
    missing = parse_number(elem.get("mapMissingTo"), "mapMissingTo") if elem.get("mapMissingTo") else np.nan
    getter = scope.resolve(elem.get("field"))
    # PMML4S's slope/intercept per segment, computed the same way for equal rounding.
    slopes = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(norms)]
    intercepts = [(a[1] * b[0] - b[1] * a[0]) / (b[0] - a[0]) for a, b in itertools.pairwise(norms)]
    lo, hi = norms[0][0], norms[-1][0]

    def evaluate(env: Env) -> np.ndarray:
        x = getter(env)
        slope = np.full(x.shape, np.nan)
        intercept = np.full(x.shape, np.nan)
        assigned = np.zeros(x.shape, dtype=bool)
        for i, (a, b) in enumerate(itertools.pairwise(norms)):
            hit = ~assigned & (x >= a[0]) & (x <= b[0])  # first segment wins, as findOrig
            slope[hit], intercept[hit] = slopes[i], intercepts[i]
            assigned |= hit
        below, above = x < lo, x > hi
        if outliers == "asIs":
            slope[below], intercept[below] = slopes[0], intercepts[0]
            slope[above], intercept[above] = slopes[-1], intercepts[-1]
        out = x * slope + intercept
        if outliers == "asMissingValues":
            out[below | above] = np.nan
        elif outliers == "asExtremeValues":
            out[below], out[above] = norms[0][1], norms[-1][1]
        return np.where(np.isnan(x), missing, out)

    return evaluate
