"""PMML compiled to vectorised NumPy: the fast engine behind ``PmmlModel``.

:func:`compile_pmml` parses a PMML document (namespace-agnostic, stdlib
``xml.etree``) and returns a :class:`CompiledPmml` that scores float rows with a
few NumPy calls per batch instead of a JVM round trip per call.

The contract is **pypmml's results, not the PMML specification's**: pypmml
(PMML4S 1.5 in a JVM) is the engine this replaces and the oracle it is tested
against, so its observable behaviour is reproduced, quirks included:

* a probability the evaluator does not know is NaN, and NaN propagates: an
  ensemble ``average`` over trees whose leaves omit a class gives NaN for that
  class (the result rule then reports 0);
* the predicted class of an ensemble or a regression classifier is PMML4S's
  ``maxBy`` over a Scala immutable ``Map``: the first maximum in the map's
  iteration order, where NaN is greater than any number. Maps of up to four
  classes iterate in insertion order, larger ones in Scala 2.13's CHAMP hash
  order, which :func:`scala_map_order` reproduces from the labels' Scala hashes;
* a single tree predicts its leaf's ``score`` attribute, not the most probable class;
* an ensemble reads each member's probabilities by *position* in the output
  layout of the first selected member, so members whose layouts differ (as
  JPMML-SparkML's forest trees, which name no target and so take their classes
  from their first leaf) contribute whatever sits at that position, or NaN;
* ``nullPrediction`` still lets ``noTrueChildStrategy="returnLastPrediction"``
  return the last node; a missing integer label comes out as Long.MIN_VALUE;
  infinities come out as null.

Compiled: ``RegressionModel`` (regression with every normalisation but probit;
classification with softmax, simplemax, none, binary logit), ``TreeModel``
(multi-way or binary; Simple, SimpleSet, Compound and/or, True, False
predicates with three-valued logic; missingValueStrategy none, lastPrediction,
nullPrediction; both noTrueChildStrategy values; ScoreDistribution probabilities
from ``probability`` or recordCount/total), ``MiningModel`` segmentation
(average, weightedAverage, majorityVote, weightedMajorityVote for classification;
average, weightedAverage, sum, weightedSum for regression; nested segments), and
DerivedFields in TransformationDictionary/LocalTransformations built from
FieldRef, Constant, NormContinuous and Apply with arithmetic functions.

Inputs are the active MiningFields of the top-level model, continuous doubles.
Our records only ever carry finite floats, so MiningField treatments that only
act on missing, invalid or outlying inputs are irrelevant; anything whose
semantics is not implemented here (other model types, Targets, categorical
inputs, outlier treatment, modelChain, xor and surrogate predicates, ...) raises
:class:`NotCompilable`, and the caller falls back to pypmml.
"""

from __future__ import annotations

import itertools
import math
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from serving.core.model import RawPrediction

#: Rows scored per NumPy pass; bounds the [predicates x rows] matrices of big forests.
_CHUNK_CELLS = 1 << 22

#: Up to this many (tree, row) lanes, trees are walked in Python rather than level by level in NumPy.
_WALK_LANES = 64


class NotCompilable(Exception):
    """The PMML uses something this compiler does not implement; score it with pypmml instead."""


def label_key(label: str) -> tuple[int, float, str]:
    """Sort key of class labels: numeric labels by value first, then the others by text."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


# --------------------------------------------------------------------------- XML helpers

_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_INTEGER = re.compile(r"^[+-]?\d+$")


def _tag(elem: ET.Element) -> str:
    return elem.tag.rsplit("}", 1)[-1] if isinstance(elem.tag, str) else ""


def _kids(elem: ET.Element) -> list[ET.Element]:
    """Child elements, without Extension (which never changes scoring)."""
    return [c for c in elem if isinstance(c.tag, str) and _tag(c) != "Extension"]


def _only(elem: ET.Element, allowed: set[str]) -> None:
    for child in _kids(elem):
        if _tag(child) not in allowed:
            raise NotCompilable(f"<{_tag(child)}> inside <{_tag(elem)}> is not supported")


def _find(elem: ET.Element, name: str) -> ET.Element | None:
    for child in _kids(elem):
        if _tag(child) == name:
            return child
    return None


def _number(text: str | None, what: str) -> float:
    """A double as Java's ``Double.parseDouble`` reads plain decimal text."""
    if text is None or not _NUMBER.match(text):
        raise NotCompilable(f"{what}: {text!r} is not a plain decimal number")
    return float(text)


def _attr_number(elem: ET.Element, name: str, default: float | None = None) -> float:
    raw = elem.get(name)
    if raw is None:
        if default is None:
            raise NotCompilable(f"<{_tag(elem)}> lacks {name}")
        return default
    return _number(raw, f"<{_tag(elem)} {name}>")


# --------------------------------------------------------------------------- labels and Scala's map order

_MASK = 0xFFFFFFFF


def _rotl(x: int, n: int) -> int:
    x &= _MASK
    return ((x << n) | (x >> (32 - n))) & _MASK


def _mix(h: int, data: int) -> int:
    k = (data * 0xCC9E2D51) & _MASK
    k = (_rotl(k, 15) * 0x1B873593) & _MASK
    h = _rotl(h ^ k, 13)
    return (h * 5 + 0xE6546B64) & _MASK


def _avalanche(h: int) -> int:
    h &= _MASK
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    return h ^ (h >> 16)


def _java_string_hash(text: str) -> int:
    h = 0
    units = text.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & _MASK
    return h


def _java_long_hash(value: int) -> int:
    value &= (1 << 64) - 1
    return (value ^ (value >> 32)) & _MASK


def _scala_long_hash(value: int) -> int:
    return value & _MASK if -(1 << 31) <= value < (1 << 31) else _java_long_hash(value)


def _java_d2l(value: float) -> int:
    """Java's saturating ``(long) d``."""
    if math.isnan(value):
        return 0
    if value >= 2.0**63:
        return (1 << 63) - 1
    if value <= -(2.0**63):
        return -(1 << 63)
    return int(value)


def _scala_double_hash(value: float) -> int:
    as_int = max(min(_java_d2l(value), (1 << 31) - 1), -(1 << 31))
    if as_int == value:
        return as_int & _MASK
    as_long = _java_d2l(value)
    if as_long == value:
        return _java_long_hash(as_long)
    with np.errstate(over="ignore"):
        as_float = np.float32(value)  # Java's (float) d: round to nearest, overflow to infinity
    if float(as_float) == value:
        return int(as_float.view(np.uint32))
    bits = 0x7FF8000000000000 if math.isnan(value) else struct.unpack(">Q", struct.pack(">d", value))[0]
    return _java_long_hash(bits)


#: PMML dataType -> (PMML4S DataVal case class, kind of our canonical key)
_LABEL_TYPES = {"string": "StringVal", "integer": "LongVal", "double": "DoubleVal"}


def scala_hash(key: tuple[str, object]) -> int:
    """``##`` of the PMML4S ``DataVal`` for a canonical label key (a Scala 2.13 case-class hash)."""
    kind, value = key
    if kind == "string":
        element = _java_string_hash(value)  # type: ignore[arg-type]
    elif kind == "integer":
        element = _scala_long_hash(value)  # type: ignore[arg-type]
    else:
        element = _scala_double_hash(value)  # type: ignore[arg-type]
    h = _mix(0xCAFEBABE, _java_string_hash(_LABEL_TYPES[kind]))
    h = _mix(h, element)
    return _avalanche(h ^ 1)


def _improve(h: int) -> int:
    """``scala.collection.Hashing.improve``, which spreads hashes over the CHAMP trie."""
    h &= _MASK
    h = (h + (~(h << 9) & _MASK)) & _MASK
    h ^= h >> 14
    h = (h + (h << 4)) & _MASK
    return h ^ (h >> 10)


def scala_map_order(keys: Sequence[tuple[str, object]]) -> list[int]:
    """Positions of ``keys`` in the iteration order of a Scala 2.13 immutable Map built from them in order.

    Up to four entries the map is a ``Map1``..``Map4`` that keeps insertion
    order; from five on it is a CHAMP ``HashMap``, iterated node by node: a
    node's own entries by their 5-bit hash slice, then its sub-nodes likewise.
    """
    if len(keys) <= 4:
        return list(range(len(keys)))

    def walk(items: list[tuple[int, int]], shift: int) -> list[int]:
        if shift >= 32:  # a full-hash collision node keeps insertion order
            return [i for i, _ in items]
        buckets: dict[int, list[tuple[int, int]]] = {}
        for item in items:
            buckets.setdefault((item[1] >> shift) & 31, []).append(item)
        order = [b[0][0] for _, b in sorted(buckets.items()) if len(b) == 1]
        for _, bucket in sorted(buckets.items()):
            if len(bucket) > 1:
                order += walk(bucket, shift + 5)
        return order

    return walk([(i, _improve(scala_hash(k))) for i, k in enumerate(keys)], 0)


def _java_greater(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``java.lang.Double.compare(a, b) > 0``: Scala's default Double ordering, NaN above everything."""
    a_nan, b_nan = np.isnan(a), np.isnan(b)
    with np.errstate(invalid="ignore"):
        plain = (a > b) | ((a == 0.0) & (b == 0.0) & ~np.signbit(a) & np.signbit(b))
    return (a_nan & ~b_nan) | (~a_nan & ~b_nan & plain)


def _max_by(values: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Per row of [N, K] ``values``, the column Scala's ``maxBy`` picks when the map iterates columns in ``order``.

    That is the first maximum in ``order`` under ``java.lang.Double.compare``:
    NaN above everything, -0.0 below 0.0. ``np.argmax`` agrees (it returns the
    first NaN, else the first maximum) except on signed zeros, done the slow way.
    """
    ordered = values[:, order]
    if not np.any((ordered == 0.0) & np.signbit(ordered)):
        return np.asarray(order, dtype=np.int64)[np.argmax(ordered, axis=1)]
    best = np.full(len(values), order[0], dtype=np.int64)
    best_value = values[:, order[0]].copy()
    for i in order[1:]:
        better = _java_greater(values[:, i], best_value)
        best[better] = i
        best_value[better] = values[better, i]
    return best


class _Labels:
    """The class labels: the target's values, in DataDictionary order.

    Labels are canonical keys ``(dataType, value)`` parsed with the target's
    dataType, so "5" meets 5 only where PMML4S's DataVals would be equal. Once
    ``frozen``, a label outside the target's values (a leaf score, a
    targetCategory, an output value) is refused: pypmml rejects some, and what
    it does with the others is not modelled here.
    """

    def __init__(self, datatype: str) -> None:
        if datatype not in _LABEL_TYPES:
            raise NotCompilable(f"target dataType {datatype!r} is not supported")
        self.datatype = datatype
        self.keys: list[tuple[str, object]] = []
        self._index: dict[tuple[str, object], int] = {}
        self.frozen = False

    def key(self, text: str | None) -> tuple[str, object]:
        if text is None:
            raise NotCompilable("a class label is missing")
        if self.datatype == "string":
            return ("string", text)
        if self.datatype == "integer":
            if not _INTEGER.match(text):
                raise NotCompilable(f"class label {text!r} is not an integer")
            return ("integer", int(text))
        return ("double", _number(text, "class label"))

    def index(self, text: str | None) -> int:
        key = self.key(text)
        if key not in self._index:
            if self.frozen:
                raise NotCompilable(f"label {text!r} is not one of the target's values")
            self._index[key] = len(self.keys)
            self.keys.append(key)
        return self._index[key]

    def text(self, i: int) -> str:
        """The label as pypmml reports it (Python ``str`` of the Java value)."""
        return str(self.keys[i][1])

    def __len__(self) -> int:
        return len(self.keys)


# --------------------------------------------------------------------------- evaluation context and scopes

Getter = Callable[["_Env"], np.ndarray]


class _Env:
    """One evaluation: the input columns and the derived fields computed so far."""

    def __init__(self, columns: np.ndarray) -> None:
        self.columns = columns  # [inputs, rows], contiguous per input
        self.rows = columns.shape[1]
        self.cache: dict[int, np.ndarray] = {}


class _Column:
    """The getter of input column ``column``; predicate tables gather these in one indexing step."""

    def __init__(self, column: int) -> None:
        self.column = column

    def __call__(self, env: _Env) -> np.ndarray:
        return env.columns[self.column]


class _Scope:
    """Compile-time field resolution: this scope's DerivedFields, then the enclosing scope's."""

    def __init__(self, parent: _Scope | None, getters: dict[str, Getter] | None = None) -> None:
        self.parent = parent
        self.getters: dict[str, Getter] = dict(getters or {})
        self._elements: dict[str, ET.Element] = {}
        self._compiling: set[str] = set()

    def resolve(self, name: str | None) -> Getter:
        scope: _Scope | None = self
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

    def with_transformations(self, container: ET.Element | None) -> _Scope:
        """A child scope holding the DerivedFields of ``container``, every one compiled now.

        All are compiled, used or not, so a document with anything unsupported is
        refused as a whole rather than scored by a partial reading.
        """
        if container is None:
            return self
        _only(container, {"DerivedField"})
        scope = _Scope(self)
        for elem in _kids(container):
            name = elem.get("name")
            if not name or name in scope._elements:
                raise NotCompilable(f"DerivedField name {name!r} is empty or repeated")
            scope._elements[name] = elem
        for name in scope._elements:
            scope._lookup(name)
        return scope


def _derived_field(elem: ET.Element, scope: _Scope) -> Getter:
    if elem.get("dataType") != "double" or elem.get("optype", "continuous") != "continuous":
        raise NotCompilable(f"DerivedField {elem.get('name')!r} is not a continuous double")
    _only(elem, {"FieldRef", "Constant", "Apply", "NormContinuous"})
    kids = _kids(elem)
    if len(kids) != 1:
        raise NotCompilable(f"DerivedField {elem.get('name')!r} needs exactly one expression")
    expression = _expression(kids[0], scope)
    slot = next(_SLOTS)

    def get(env: _Env) -> np.ndarray:
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


def _expression(elem: ET.Element, scope: _Scope) -> Getter:
    tag = _tag(elem)
    if tag == "Constant":
        if elem.get("missing") == "true":
            return lambda env: np.full(env.rows, np.nan)
        if elem.get("dataType", "double") not in ("double", "float", "integer"):
            raise NotCompilable(f"Constant of dataType {elem.get('dataType')!r}")
        text = (elem.text or "").strip()
        if elem.get("dataType") == "integer" and not _INTEGER.match(text):
            raise NotCompilable(f"integer Constant {text!r}")
        value = _number(text, "Constant")
        if elem.get("dataType") == "float":
            value = float(np.float32(value))
        return lambda env: np.full(env.rows, value)
    if tag == "FieldRef":
        _only(elem, set())
        getter = scope.resolve(elem.get("field"))
        if elem.get("mapMissingTo") is None:
            return getter
        replacement = _number(elem.get("mapMissingTo"), "FieldRef mapMissingTo")
        return lambda env: np.where(np.isnan(getter(env)), replacement, getter(env))
    if tag == "NormContinuous":
        return _norm_continuous(elem, scope)
    if tag == "Apply":
        return _apply(elem, scope)
    raise NotCompilable(f"expression <{tag}> is not supported")


def _apply(elem: ET.Element, scope: _Scope) -> Getter:
    if elem.get("mapMissingTo") is not None or elem.get("defaultValue") is not None:
        raise NotCompilable("Apply with mapMissingTo or defaultValue is not supported")
    name = elem.get("function", "")
    args = [_expression(child, scope) for child in _kids(elem)]

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


def _norm_continuous(elem: ET.Element, scope: _Scope) -> Getter:
    _only(elem, {"LinearNorm"})
    norms = [(_attr_number(n, "orig"), _attr_number(n, "norm")) for n in _kids(elem)]
    if len(norms) < 2 or any(b[0] <= a[0] for a, b in itertools.pairwise(norms)):
        raise NotCompilable("NormContinuous needs two or more LinearNorms in increasing orig order")
    outliers = elem.get("outliers", "asIs")
    if outliers not in ("asIs", "asMissingValues", "asExtremeValues"):
        raise NotCompilable(f"NormContinuous outliers={outliers!r}")
    missing = _number(elem.get("mapMissingTo"), "mapMissingTo") if elem.get("mapMissingTo") else np.nan
    getter = scope.resolve(elem.get("field"))
    # PMML4S's slope/intercept per segment, computed the same way for equal rounding.
    slopes = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(norms)]
    intercepts = [(a[1] * b[0] - b[1] * a[0]) / (b[0] - a[0]) for a, b in itertools.pairwise(norms)]
    lo, hi = norms[0][0], norms[-1][0]

    def evaluate(env: _Env) -> np.ndarray:
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


# --------------------------------------------------------------------------- predicates (three-valued)


class _PredicateTable:
    """Every predicate of a group of trees (or of segments), evaluated as rows of two [predicates, rows] masks.

    ``true[p, r]`` and ``unknown[p, r]`` give PMML's TRUE and UNKNOWN (FALSE is
    neither). Simple predicates are compared in one NumPy call per operator;
    row 0 is <True/>, row 1 <False/>.
    """

    def __init__(self) -> None:
        self.fields: list[Getter] = []
        self._field_slots: dict[Getter, int] = {}
        self.simple: list[tuple[int, int, str, float]] = []  # (row, field slot, operator, value)
        self.sets: list[tuple[int, int, bool, np.ndarray]] = []  # (row, field slot, is in, members)
        self.compound: list[tuple[int, str, list[int]]] = []  # (row, operator, child rows)
        self.rows = 2

    def add(self, elem: ET.Element, scope: _Scope) -> int:
        """Compile one predicate element; return its row."""
        tag = _tag(elem)
        if tag == "True":
            return 0
        if tag == "False":
            return 1
        if tag == "SimplePredicate":
            operator = elem.get("operator", "")
            if operator not in _COMPARE and operator not in ("isMissing", "isNotMissing"):
                raise NotCompilable(f"SimplePredicate operator {operator!r}")
            value = np.nan if operator in ("isMissing", "isNotMissing") else _attr_number(elem, "value")
            row = self._new_row()
            self.simple.append((row, self._slot(scope.resolve(elem.get("field"))), operator, value))
            return row
        if tag == "SimpleSetPredicate":
            operator = elem.get("booleanOperator")
            array = _find(elem, "Array")
            if operator not in ("isIn", "isNotIn") or array is None or array.get("type") not in ("int", "real"):
                raise NotCompilable("SimpleSetPredicate needs isIn/isNotIn over a numeric Array")
            tokens = [t.strip('"') for t in (array.text or "").split()]
            values = np.asarray([_number(t, "SimpleSetPredicate value") for t in tokens], dtype=np.float64)
            row = self._new_row()
            self.sets.append((row, self._slot(scope.resolve(elem.get("field"))), operator == "isIn", values))
            return row
        if tag == "CompoundPredicate":
            operator = elem.get("booleanOperator")
            # pypmml's xor is never true, whatever its operands: refused rather than mimicked.
            if operator not in ("and", "or"):
                raise NotCompilable(f"CompoundPredicate {operator!r} is not supported")
            children = [self.add(child, scope) for child in _kids(elem)]
            if len(children) < 2:
                raise NotCompilable("CompoundPredicate needs two or more predicates")
            row = self._new_row()
            self.compound.append((row, operator, children))
            return row
        raise NotCompilable(f"predicate <{tag}> is not supported")

    def _new_row(self) -> int:
        self.rows += 1
        return self.rows - 1

    def _slot(self, getter: Getter) -> int:
        if getter not in self._field_slots:
            self._field_slots[getter] = len(self.fields)
            self.fields.append(getter)
        return self._field_slots[getter]

    def finish(self) -> np.ndarray:
        """Freeze the table; return ``remap``, the final row of each row ``add`` returned.

        Rows are renumbered so that the simple predicates of each (operator,
        field) form one contiguous block, compared in one call straight into the
        result: no gathering of inputs, no scattering of results.
        """
        order = [0, 1]
        groups: dict[tuple[str, int], list[tuple[int, float]]] = {}
        for row, slot, operator, value in sorted(self.simple, key=lambda p: (p[2], p[1])):
            groups.setdefault((operator, slot), []).append((row, value))
        for items in groups.values():
            order += [row for row, _ in items]
        order += [row for row, _, _, _ in self.sets] + [row for row, _, _ in self.compound]
        remap = np.empty(self.rows, dtype=np.intp)
        remap[order] = np.arange(self.rows)
        self._groups, start = [], 2
        by_operator: dict[str, list] = {}
        for (operator, slot), items in groups.items():
            thresholds = np.asarray([value for _, value in items], dtype=np.float64)[:, None]
            self._groups.append((operator, slice(start, start + len(items)), slot, thresholds))
            by_operator.setdefault(operator, []).append((start, len(items), slot, thresholds))
            start += len(items)
        # The same rows per operator (contiguous, as groups were sorted by operator): for small
        # batches one gathered comparison per operator beats one comparison per field.
        self._operator_groups = [
            (
                operator,
                slice(parts[0][0], parts[-1][0] + parts[-1][1]),
                np.concatenate([np.full(size, slot, dtype=np.intp) for _, size, slot, _ in parts]),
                np.concatenate([thresholds for _, _, _, thresholds in parts]),
            )
            for operator, parts in by_operator.items()
        ]
        self.sets = [(int(remap[row]), slot, is_in, members) for row, slot, is_in, members in self.sets]
        self.compound = [(int(remap[row]), op, [int(remap[c]) for c in kids]) for row, op, kids in self.compound]
        columns = [getattr(g, "column", None) for g in self.fields]
        self._columns = np.asarray(columns, dtype=np.intp) if None not in columns else None
        return remap

    def evaluate(self, env: _Env) -> tuple[np.ndarray, np.ndarray]:
        """The (true, unknown) masks, [rows of this table, rows of ``env``]."""
        n = env.rows
        true = np.empty((self.rows, n), dtype=bool)
        true[0], true[1] = True, False
        unknown = np.zeros((self.rows, n), dtype=bool)
        values = missing = None
        if self.fields:
            values = (
                env.columns[self._columns] if self._columns is not None else np.vstack([g(env) for g in self.fields])
            )
            missing = np.isnan(values)
            if not missing.any():
                missing = None  # the usual case: no UNKNOWN anywhere, nothing to mask
        for operator, rows, slot, thresholds in self._groups if n > _WALK_LANES else self._operator_groups:
            gone = missing[slot] if missing is not None else np.zeros(n, dtype=bool)
            if operator in ("isMissing", "isNotMissing"):
                true[rows] = gone if operator == "isMissing" else ~gone
                continue
            with np.errstate(invalid="ignore"):
                _COMPARE[operator](values[slot], thresholds, out=true[rows])
            if missing is not None:
                true[rows] &= ~gone  # NaN != t is True in NumPy, UNKNOWN in PMML
                unknown[rows] = gone
        for row, slot, is_in, members in self.sets:
            inside = np.isin(values[slot], members)
            true[row] = inside if is_in else ~inside
            if missing is not None:
                true[row] &= ~missing[slot]
                unknown[row] = missing[slot]
        for row, operator, children in self.compound:  # children always precede their parent
            t, u = true[children], unknown[children]
            f = ~t & ~u
            if operator == "and":
                unknown[row] = ~f.any(axis=0) & u.any(axis=0)
                true[row] = t.all(axis=0)
            else:
                true[row] = t.any(axis=0)
                unknown[row] = ~true[row] & u.any(axis=0)
        return true, unknown


_COMPARE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "equal": np.equal,
    "notEqual": np.not_equal,
    "lessThan": np.less,
    "lessOrEqual": np.less_equal,
    "greaterThan": np.greater,
    "greaterOrEqual": np.greater_equal,
}


# --------------------------------------------------------------------------- models


@dataclass
class _Result:
    """One model's outputs for N rows.

    ``value``: regression prediction (NaN: none). ``label``: index into the
    document's labels (-1: none). ``probs``: [N, labels], NaN where the model
    gives no probability for a label.
    """

    value: np.ndarray | None = None
    label: np.ndarray | None = None
    probs: np.ndarray | None = None


class _Context:
    """What every model of one document shares: the function, the target and its ``n_classes`` labels."""

    def __init__(self, function: str, target: str, labels: _Labels | None) -> None:
        self.function = function
        self.target = target
        self.labels = labels
        self.n_classes = len(labels) if labels is not None else 0


#: An output field as PMML4S lays out a model's output series: ("pred",), ("prob", label or None for the
#: predicted label's), ("conf",), ("id",) or ("other",). A parent reads its members' series by position.
Slot = tuple


class _Model:
    """A compiled model element; ``layout`` lists the output series it hands a parent MiningModel."""

    layout: list[Slot]

    def evaluate(self, env: _Env) -> _Result:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self, n_labels: int) -> None:
        """Called once the document's label table is complete."""


_MODEL_TAGS = {"RegressionModel", "TreeModel", "MiningModel"}


def _check_model_common(elem: ET.Element, ctx: _Context, scope: _Scope, *, top: bool) -> tuple[_Scope, bool]:
    """Validate the parts every model element has; return the model's own scope and whether it names the target.

    A sub-model may omit the target (JPMML-SparkML's forest trees do); PMML4S
    then infers its classes from the model itself, which only a tree supports here.
    """
    if elem.get("functionName") != ctx.function:
        raise NotCompilable(f"<{_tag(elem)}> functionName {elem.get('functionName')!r} differs from {ctx.function!r}")
    if elem.get("isScorable", "true") != "true":
        raise NotCompilable("model is not scorable")
    if _find(elem, "Targets") is not None:
        raise NotCompilable("Targets is not supported")
    schema = _find(elem, "MiningSchema")
    if schema is None:
        raise NotCompilable(f"<{_tag(elem)}> has no MiningSchema")
    _only(schema, {"MiningField"})
    targets = []
    for mf in _kids(schema):
        usage = mf.get("usageType", "active")
        name = mf.get("name")
        if usage in ("target", "predicted"):
            targets.append(name)
            continue
        if usage in ("supplementary", "frequencyWeight", "analysisWeight"):
            continue
        if usage != "active":
            raise NotCompilable(f"MiningField usageType {usage!r}")
        if mf.get("optype", "continuous") != "continuous":
            raise NotCompilable(f"MiningField {name!r} is not continuous")
        if mf.get("outliers", "asIs") != "asIs":
            raise NotCompilable(f"MiningField {name!r} treats outliers")
        if mf.get("missingValueTreatment") == "returnInvalid":
            raise NotCompilable(f"MiningField {name!r} returns invalid on missing values")
        if not top and mf.get("missingValueReplacement") is not None:
            raise NotCompilable(f"MiningField {name!r} replaces missing derived values")
        scope.resolve(name)
    if targets != [ctx.target] and (top or targets):
        raise NotCompilable(f"<{_tag(elem)}> must name the target {ctx.target!r} (names {targets})")
    return scope.with_transformations(_find(elem, "LocalTransformations")), bool(targets)


_FEATURE_SLOTS = {"predictedValue": "pred", "probability": "prob", "confidence": "conf", "entityId": "id"}


def _output_layout(elem: ET.Element, ctx: _Context, *, final_only: bool) -> list[Slot] | None:
    """The OutputFields of ``elem`` as slots (None without an Output element)."""
    output = _find(elem, "Output")
    if output is None:
        return None
    layout: list[Slot] = []
    for of in _kids(output):
        if _tag(of) != "OutputField":
            raise NotCompilable(f"<{_tag(of)}> inside Output")
        if final_only and of.get("isFinalResult", "true") != "true":
            continue
        kind = _FEATURE_SLOTS.get(of.get("feature", "predictedValue"), "other")
        if kind == "prob":
            if ctx.labels is None:
                raise NotCompilable("probability output on a regression model")
            value = of.get("value")
            layout.append(("prob", None if value is None else ctx.labels.index(value)))
        else:
            layout.append((kind,))
    return layout


def _probability_labels(layout: list[Slot]) -> list[int]:
    return [slot[1] for slot in layout if slot[0] == "prob" and slot[1] is not None]


def _default_layout(ctx: _Context) -> list[Slot]:
    """PMML4S's default outputs of a model: the prediction, then for a classifier every class's probability."""
    if ctx.labels is None:
        return [("pred",)]
    return [("pred",), ("prob", None), *(("prob", c) for c in range(ctx.n_classes))]


def _compile_model(elem: ET.Element, ctx: _Context, scope: _Scope, *, top: bool) -> _Model:
    tag = _tag(elem)
    own, has_target = _check_model_common(elem, ctx, scope, top=top)
    if not has_target and tag != "TreeModel":
        raise NotCompilable(f"<{tag}> without a target")
    if tag == "RegressionModel":
        model: _Model = _Regression(elem, ctx, own)
    elif tag == "TreeModel":
        model = _TreeGroup([_Tree(elem, ctx, own, has_target=has_target)], ctx)
    elif tag == "MiningModel":
        model = _Mining(elem, ctx, own)
    else:
        raise NotCompilable(f"<{tag}> is not compiled")
    declared = _output_layout(elem, ctx, final_only=False)
    if declared is not None:  # a sub-model (no supplement output) shows only its Output
        model.layout = declared
    return model


class _Regression(_Model):
    """A RegressionModel: one table per class (classification) or one table (regression).

    Each table is its intercept plus its NumericPredictors added in document
    order, as PMML4S adds them, then normalised as PMML4S does.
    """

    def __init__(self, elem: ET.Element, ctx: _Context, scope: _Scope) -> None:
        _only(elem, {"MiningSchema", "Output", "LocalTransformations", "RegressionTable", "ModelStats",
                     "ModelExplanation", "ModelVerification"})  # fmt: skip
        self.ctx = ctx
        self.method = elem.get("normalizationMethod", "none")
        tables = [c for c in _kids(elem) if _tag(c) == "RegressionTable"]
        if not tables:
            raise NotCompilable("RegressionModel without RegressionTable")
        self.tables = [self._table(t, scope) for t in tables]
        if ctx.function == "regression":
            if len(tables) != 1:
                raise NotCompilable("regression RegressionModel with several tables")
            if self.method not in ("none", "softmax", "logit", "exp", "cloglog", "cauchit"):
                raise NotCompilable(f"regression normalizationMethod {self.method!r}")
            self.layout = _default_layout(ctx)
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
        self.layout = _default_layout(ctx)

    @staticmethod
    def _table(elem: ET.Element, scope: _Scope) -> tuple[float, list[tuple[Getter, float, int]]]:
        _only(elem, {"NumericPredictor"})
        terms = []
        for p in _kids(elem):
            exponent = p.get("exponent", "1")
            if not _INTEGER.match(exponent):
                raise NotCompilable(f"NumericPredictor exponent {exponent!r}")
            terms.append((scope.resolve(p.get("name")), _attr_number(p, "coefficient"), int(exponent)))
        return _attr_number(elem, "intercept", 0.0), terms

    @staticmethod
    def _linear(table: tuple[float, list[tuple[Getter, float, int]]], env: _Env) -> np.ndarray:
        intercept, terms = table
        total = np.full(env.rows, intercept)
        for getter, coefficient, exponent in terms:  # in document order, as PMML4S adds them
            x = getter(env)
            total = total + (x * coefficient if exponent == 1 else np.power(x, float(exponent)) * coefficient)
        return total

    def evaluate(self, env: _Env) -> _Result:
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
                return _Result(value=y)
            return self._classify(ys, env.rows)

    def _classify(self, ys: list[np.ndarray], n: int) -> _Result:
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
            picked = _max_by(np.column_stack(columns), self.order)
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
            second_wins = _java_greater(p2, p1)
            first_label = np.where(first_is_head, cats[0], cats[1])
            second_label = np.where(first_is_head, cats[1], cats[0])
            label = np.where(second_wins, second_label, first_label)
        probs[~valid] = np.nan
        label = np.where(valid, label, -1)
        return _Result(label=label, probs=probs)


class _Tree:
    """One TreeModel, flattened in document order: node 0 is the root.

    Per node: its children, its predicate's row in the group's predicate table,
    its ``score`` and its ScoreDistribution as {label: probability}.
    """

    def __init__(self, elem: ET.Element, ctx: _Context, scope: _Scope, *, has_target: bool = True) -> None:
        _only(elem, {"MiningSchema", "Output", "LocalTransformations", "Node", "ModelStats", "ModelExplanation",
                     "ModelVerification"})  # fmt: skip
        strategy = elem.get("missingValueStrategy", "none")
        if strategy not in _MISSING_STRATEGIES:
            raise NotCompilable(f"TreeModel missingValueStrategy {strategy!r}")
        self.missing_strategy = _MISSING_STRATEGIES[strategy]
        no_true = elem.get("noTrueChildStrategy", "returnNullPrediction")
        if no_true not in ("returnNullPrediction", "returnLastPrediction"):
            raise NotCompilable(f"noTrueChildStrategy {no_true!r}")
        self.last_on_no_true_child = no_true == "returnLastPrediction"
        self.ctx = ctx
        self.scope = scope
        self.has_target = has_target
        self.children, self.predicate, self.score, self.distribution = [], [], [], []
        self._elements: list[ET.Element] = []
        self._leaf_facts: list[tuple[bool, bool, list[int]]] = []  # (head has probability, has confidence, labels)
        root = _find(elem, "Node")
        if root is None:
            raise NotCompilable("TreeModel without a Node")
        self._flatten(root)
        self.layout = self.default_layout()

    def _flatten(self, root: ET.Element) -> None:
        stack = [(root, -1)]
        while stack:
            node, parent = stack.pop()
            index = len(self.children)
            self.children.append([])
            if parent >= 0:
                self.children[parent].append(index)
            self._elements.append(node)
            self.predicate.append(-1)
            score = node.get("score")
            if score is not None and self.ctx.labels is None:
                _number(score, "Node score")
            elif score is not None:
                self.ctx.labels.index(score)  # refused now if it is not one of the target's values
            self.score.append(score)
            self.distribution.append(self._distribution(node))
            kids = [c for c in _kids(node) if _tag(c) == "Node"]
            # Reversed so the stack pops them in document order and siblings stay in order.
            stack.extend((c, index) for c in reversed(kids))

    def _distribution(self, node: ET.Element) -> dict[int, float]:
        allowed = {"Node", "ScoreDistribution", "True", "False", "SimplePredicate", "CompoundPredicate",
                   "SimpleSetPredicate", "Partition"}  # fmt: skip
        _only(node, allowed)
        entries = [c for c in _kids(node) if _tag(c) == "ScoreDistribution"]
        if not entries:
            self._leaf_facts.append((False, False, []))
            return {}
        if self.ctx.labels is None:
            raise NotCompilable("ScoreDistribution in a regression tree")
        keys = [self.ctx.labels.index(e.get("value")) for e in entries]
        if len(set(keys)) != len(keys):
            raise NotCompilable("a Node repeats a ScoreDistribution value")
        counts = [_attr_number(e, "recordCount") for e in entries]
        given = [_attr_number(e, "probability") if e.get("probability") is not None else None for e in entries]
        total = 0.0
        for count in counts:  # left to right, as Scala's sum
            total += count
        probs = {k: (p if p is not None else (c / total if total > 0.0 else math.nan)) for k, c, p in
                 zip(keys, counts, given)}  # fmt: skip
        head = scala_map_order([self.ctx.labels.keys[k] for k in keys])[0]
        has_probability = total > 0.0 or given[head] is not None
        self._leaf_facts.append((has_probability, entries[head].get("confidence") is not None, keys))
        return probs

    def default_layout(self) -> list[Slot]:
        """PMML4S's default outputs of a TreeModel, decided by its first leaf (first child all the way down).

        The prediction; a confidence if the first entry of that leaf's
        distribution map has one; the probabilities of all classes if that entry
        has a probability, the classes being the target's or, without a target,
        that leaf's own labels; a node id if that leaf has an id.
        """
        node = 0
        while self.children[node]:
            node = self.children[node][0]
        layout: list[Slot] = [("pred",)]
        if self.ctx.labels is not None and self._leaf_facts[node][2]:
            has_probability, has_confidence, keys = self._leaf_facts[node]
            if has_confidence:
                layout.append(("conf",))
            if has_probability:
                classes = range(self.ctx.n_classes) if self.has_target else keys
                layout += [("prob", None), *(("prob", c) for c in classes)]
        if self._elements[node].get("id") is not None:
            layout.append(("id",))
        return layout

    def depth(self) -> int:
        """Edges on the longest path from the root to a leaf."""
        depth, level = 0, [0]
        while True:
            level = [k for node in level for k in self.children[node]]
            if not level:
                return depth
            depth += 1

    def compile_predicates(self, table: _PredicateTable) -> None:
        for index, node in enumerate(self._elements):
            if index == 0:
                continue  # PMML4S never evaluates the root's predicate
            preds = [c for c in _kids(node) if _tag(c) in _PREDICATES]
            if len(preds) != 1:
                raise NotCompilable("a Node needs exactly one predicate")
            self.predicate[index] = table.add(preds[0], self.scope)


_PREDICATES = {"True", "False", "SimplePredicate", "CompoundPredicate", "SimpleSetPredicate"}
_MISSING_STRATEGIES = {"none": 0, "lastPrediction": 1, "nullPrediction": 2}


class _TreeGroup(_Model):
    """Trees traversed together, one lane per (tree, row), a NumPy step per tree level."""

    def __init__(self, trees: list[_Tree], ctx: _Context) -> None:
        self.trees = trees
        self.ctx = ctx
        self.table = _PredicateTable()
        for tree in trees:
            tree.compile_predicates(self.table)
        self._remap = self.table.finish()
        self.layout = trees[0].layout if len(trees) == 1 else []

    def finish(self, n_labels: int) -> None:
        offsets, total = [], 0
        for tree in self.trees:
            offsets.append(total)
            total += len(tree.children)
        self.roots = np.asarray(offsets, dtype=np.intp)
        width = max([1, *(len(c) for t in self.trees for c in t.children)])
        self.null = total  # a sentinel node: the null prediction
        self.kids = np.full((total + 1, width), -1, dtype=np.intp)
        self.pred = np.zeros(total + 1, dtype=np.intp)
        self.leaf = np.zeros(total + 1, dtype=bool)
        self.node_label = np.full(total + 1, -1, dtype=np.int64)
        self.node_value = np.full(total + 1, np.nan)
        self.node_probs = np.full((total + 1, n_labels), np.nan)
        for tree, offset in zip(self.trees, offsets):
            for i, kids in enumerate(tree.children):
                self.kids[offset + i, : len(kids)] = [offset + k for k in kids]
                self.leaf[offset + i] = not kids
                self.pred[offset + i] = self._remap[max(tree.predicate[i], 0)]
                score = tree.score[i]
                if score is not None:
                    if self.ctx.labels is None:
                        self.node_value[offset + i] = float(score)
                    else:
                        self.node_label[offset + i] = self.ctx.labels.index(score)
                for label, p in tree.distribution[i].items():
                    self.node_probs[offset + i, label] = p
        self.missing_strategy = np.asarray([t.missing_strategy for t in self.trees])
        self.last_on_no_true = np.asarray([t.last_on_no_true_child for t in self.trees])
        if self.ctx.labels is not None:
            numeric = _numeric_labels([self.ctx.labels.text(i) for i in range(n_labels)])
            self.node_ext = _extend(self.node_probs, self.node_label, numeric)
        inner = np.nonzero(~self.leaf[: self.null])[0]
        self._inner = inner
        self._inner_kids = self.kids[inner]
        self._inner32, self._inner_kids32 = inner.astype(np.int32), self._inner_kids.astype(np.int32)
        self._inner_present = self._inner_kids >= 0
        self._inner_rows = self.pred[np.where(self._inner_present, self._inner_kids, 0)]  # predicate row per child
        tree_of = np.repeat(np.arange(len(self.trees)), [len(t.children) for t in self.trees])[inner]
        self._inner_last_on_unknown = self.missing_strategy[tree_of] == 1
        self._inner_last_on_no_true = self.last_on_no_true[tree_of]
        self._depth = max(t.depth() for t in self.trees)
        # Plain lists for the Python walk of small batches.
        self._kid_lists = [[int(k) for k in row if k >= 0] for row in self.kids]
        self._pred_list = self.pred.tolist()
        self._leaf_list = self.leaf.tolist()

    def final_nodes(self, env: _Env) -> np.ndarray:
        """The node each (tree, row) ends in, [trees, rows]; the sentinel ``null`` for no prediction.

        Vectorised in two steps: first, for every inner node and row, where the
        row goes from there (the first TRUE child; else the node itself, where
        it stops, or ``null``), then one lookup per tree level from the roots.
        """
        true, unknown = self.table.evaluate(env)
        n, n_trees = env.rows, len(self.trees)
        if n * n_trees <= _WALK_LANES:
            return self._walk(true, unknown, n)
        # No TRUE child: stop at the node (lastPrediction on UNKNOWN, or returnLastPrediction), else no prediction.
        null, inner = np.int32(self.null), self._inner32[:, None]
        if unknown.any():
            unknown_child = np.zeros((len(self._inner), n), dtype=bool)
            for k in range(self._inner_kids.shape[1]):
                unknown_child |= unknown[self._inner_rows[:, k]] & self._inner_present[:, k, None]
            stop_here = self._inner_last_on_no_true[:, None] | (unknown_child & self._inner_last_on_unknown[:, None])
        else:
            stop_here = self._inner_last_on_no_true[:, None]
        stopped = null + stop_here * (inner - null)
        # The first TRUE child wins. Selecting by arithmetic (exactly one term is non-zero)
        # runs several times faster than chained np.where on these [inner nodes, rows] arrays.
        chosen, taken = stopped, None
        for k in range(self._inner_kids.shape[1]):
            hit = true[self._inner_rows[:, k]]
            if not self._inner_present[:, k].all():
                hit &= self._inner_present[:, k, None]
            first = hit if taken is None else hit & ~taken
            chosen = chosen + first * (self._inner_kids32[:, k, None] - stopped)
            taken = hit if taken is None else taken | hit
        step = np.empty((len(self.leaf), n), dtype=np.int32)
        step[:] = np.arange(len(self.leaf), dtype=np.int32)[:, None]  # leaves and the sentinel lead to themselves
        step[self._inner] = chosen
        current = np.repeat(self.roots[:, None].astype(np.int32), n, axis=1)
        columns = np.arange(n)[None, :]
        for _ in range(self._depth):
            current = step[current, columns]
        return current

    def _walk(self, true: np.ndarray, unknown: np.ndarray, n: int) -> np.ndarray:
        """``final_nodes`` node by node in Python: for a few lanes, cheaper than a NumPy call per level."""
        true_rows, unknown_rows = true.T.tolist(), unknown.T.tolist()
        kids, pred, leaf = self._kid_lists, self._pred_list, self._leaf_list
        out = np.full((len(self.trees), n), self.null, dtype=np.intp)
        for t, root in enumerate(self.roots.tolist()):
            last_on_unknown = self.missing_strategy[t] == 1
            last_on_no_true = bool(self.last_on_no_true[t])
            for r in range(n):
                is_true, node = true_rows[r], root
                while not leaf[node]:
                    chosen = next((k for k in kids[node] if is_true[pred[k]]), -1)
                    if chosen < 0:
                        unknown_child = any(unknown_rows[r][pred[k]] for k in kids[node])
                        if (unknown_child and last_on_unknown) or last_on_no_true:
                            out[t, r] = node
                        break
                    node = chosen
                else:
                    out[t, r] = node
        return out

    def evaluate(self, env: _Env) -> _Result:
        final = self.final_nodes(env)[0]
        if self.ctx.labels is None:
            return _Result(value=self.node_value[final])
        return _Result(label=self.node_label[final], probs=self.node_probs[final])


def _extend(probs: np.ndarray, label: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """``probs`` [.., L] plus the columns an ensemble may read: NaN, the label as a number, its probability."""
    safe = np.maximum(label, 0)
    own = np.where(label >= 0, np.take_along_axis(probs, safe[..., None], axis=-1)[..., 0], np.nan)
    as_number = np.where(label >= 0, numeric[safe], np.nan)
    return np.concatenate([probs, np.full((*own.shape, 1), np.nan), as_number[..., None], own[..., None]], axis=-1)


_CLASSIFICATION_METHODS = {"average", "weightedAverage", "majorityVote", "weightedMajorityVote"}
_REGRESSION_METHODS = {"average", "weightedAverage", "sum", "weightedSum"}


class _Mining(_Model):
    """A MiningModel's Segmentation: members scored together, combined as PMML4S combines them.

    Tree members are traversed as one ``_TreeGroup``; other members (regressions,
    nested MiningModels) are scored one by one. Sums run over the fired segments
    in document order, so they round as pypmml's do.
    """

    def __init__(self, elem: ET.Element, ctx: _Context, scope: _Scope) -> None:
        _only(elem, {"MiningSchema", "Output", "LocalTransformations", "Segmentation", "ModelStats",
                     "ModelExplanation", "ModelVerification"})  # fmt: skip
        segmentation = _find(elem, "Segmentation")
        if segmentation is None:
            raise NotCompilable("MiningModel without Segmentation")
        self.method = segmentation.get("multipleModelMethod", "")
        allowed = _REGRESSION_METHODS if ctx.function == "regression" else _CLASSIFICATION_METHODS
        if self.method not in allowed:
            raise NotCompilable(f"{ctx.function} multipleModelMethod {self.method!r}")
        if segmentation.get("missingPredictionTreatment", "continue") != "continue":
            raise NotCompilable("missingPredictionTreatment other than continue")
        _only(segmentation, {"Segment"})
        self.ctx = ctx
        self.segment_table = _PredicateTable()
        self.segments: list[tuple[int, float, _Model | tuple[_TreeGroup, int]]] = []
        trees: list[tuple[int, _Tree]] = []
        for seg in _kids(segmentation):
            _only(seg, _PREDICATES | _MODEL_TAGS)
            preds = [c for c in _kids(seg) if _tag(c) in _PREDICATES]
            models = [c for c in _kids(seg) if _tag(c) in _MODEL_TAGS]
            if len(preds) != 1 or len(models) != 1:
                raise NotCompilable("a Segment needs one predicate and one model")
            row = self.segment_table.add(preds[0], scope)
            weight = _attr_number(seg, "weight", 1.0)
            if _tag(models[0]) == "TreeModel":
                own, has_target = _check_model_common(models[0], ctx, scope, top=False)
                tree = _Tree(models[0], ctx, own, has_target=has_target)
                declared = _output_layout(models[0], ctx, final_only=False)
                if declared is not None:
                    tree.layout = declared
                trees.append((len(self.segments), tree))
                self.segments.append((row, weight, None))  # type: ignore[arg-type]
            else:
                self.segments.append((row, weight, _compile_model(models[0], ctx, scope, top=False)))
        if not self.segments:
            raise NotCompilable("Segmentation without segments")
        remap = self.segment_table.finish()
        self.segments = [(int(remap[row]), weight, model) for row, weight, model in self.segments]
        # Every tree segment is traversed in one vectorised pass.
        self.group = _TreeGroup([t for _, t in trees], ctx) if trees else None
        for position, (i, _) in enumerate(trees):
            row, weight, _ = self.segments[i]
            self.segments[i] = (row, weight, (self.group, position))  # type: ignore[arg-type]
        self.layout = _default_layout(ctx)
        if ctx.function == "classification":
            # A member without a target votes its label as a string, which PMML4S then counts apart
            # from the same label voted as a number, one count overwriting the other.
            targetless = any(isinstance(m, tuple) and not m[0].trees[m[1]].has_target for _, _, m in self.segments)
            if "Vote" in self.method and targetless and ctx.labels.datatype != "string":  # type: ignore[union-attr]
                raise NotCompilable("a vote over members without a target on a non-string target")
            self.order = scala_map_order(ctx.labels.keys[: ctx.n_classes])  # type: ignore[union-attr]
            if self.method in ("average", "weightedAverage"):
                self.readers = self._readers()

    @staticmethod
    def _layout(model: _Model | tuple[_TreeGroup, int]) -> list[Slot]:
        return model[0].trees[model[1]].layout if isinstance(model, tuple) else model.layout

    def _readers(self) -> dict[int, list[list[Slot | None]]]:
        """For each possible first selected segment ("head"), class and segment: the slot PMML4S reads.

        PMML4S finds each class's probability by its position in the head's
        output series and reads that position in every segment's series: a
        segment with another layout yields whatever sits there, and a position
        past its end is NULL (NaN). None here means NaN.
        """
        layouts = [self._layout(m) for _, _, m in self.segments]
        always_first = self.segments[0][0] == 0  # the first segment's predicate is <True/>
        readers: dict[int, list[list[Slot | None]]] = {}
        for head in [0] if always_first else range(len(layouts)):
            per_class = []
            for c in range(self.ctx.n_classes):
                position = layouts[head].index(("prob", c)) if ("prob", c) in layouts[head] else -1
                row: list[Slot | None] = []
                for layout in layouts:
                    slot = layout[position] if 0 <= position < len(layout) else None
                    if slot is not None and slot[0] not in ("prob", "pred"):
                        raise NotCompilable(f"an ensemble member's {slot[0]} output would be read as a probability")
                    row.append(slot)
                per_class.append(row)
            readers[head] = per_class
        return readers

    def finish(self, n_labels: int) -> None:
        self._numeric = _numeric_labels([self.ctx.labels.text(i) for i in range(n_labels)]) if self.ctx.labels else None
        if self.group is not None:
            self.group.finish(n_labels)
        for _, _, model in self.segments:
            if not isinstance(model, tuple):
                model.finish(n_labels)
        self._rows = np.asarray([row for row, _, _ in self.segments], dtype=np.intp)
        self._all_fire = bool(np.all(self._rows == 0))  # every segment's predicate is <True/>
        self._weights = [w for _, w, _ in self.segments]
        if self.ctx.function == "classification" and self.method in ("average", "weightedAverage"):
            # Column of each member's extended output (see _extend) read for each class, per head.
            slot_column = {"nan": n_labels, "pred": n_labels + 1, "own": n_labels + 2}
            self._sources = {
                head: [
                    np.asarray(
                        [
                            slot_column["nan"] if slot is None
                            else slot_column["pred"] if slot[0] == "pred"
                            else slot_column["own"] if slot[1] is None
                            else slot[1]
                            for slot in (per_class[c][i] for c in range(self.ctx.n_classes))
                        ],
                        dtype=np.intp,
                    )
                    for i in range(len(self.segments))
                ]
                for head, per_class in self.readers.items()
            }  # fmt: skip
            only_trees = all(isinstance(m, tuple) for _, _, m in self.segments) and len(self._sources) == 1
            self._tree_sources = np.vstack(self._sources[0]) if only_trees else None

    def evaluate(self, env: _Env) -> _Result:
        n = env.rows
        fired = None if self._all_fire else self.segment_table.evaluate(env)[0][self._rows]
        count = np.full(n, float(len(self.segments))) if fired is None else fired.sum(axis=0).astype(np.float64)
        final = self.group.final_nodes(env) if self.group is not None else None
        with np.errstate(all="ignore"):
            if self.ctx.function == "regression":
                values = [
                    self.group.node_value[final[m[1]]] if isinstance(m, tuple) else m.evaluate(env).value
                    for _, _, m in self.segments
                ]
                total, weight_total = self._fold(np.stack(values), fired)
                value = total / count if self.method == "average" else total / weight_total
                value = total if self.method in ("sum", "weightedSum") else value
                return _Result(value=np.where(count > 0, value, np.nan))
            if self.method in ("average", "weightedAverage"):
                columns = self._average(env, fired, final, count, n)
            else:
                columns = self._votes(env, fired, final, count, n)
        assert self.ctx.labels is not None
        probs = np.full((n, len(self.ctx.labels)), np.nan)
        probs[:, : self.ctx.n_classes] = columns
        label = _max_by(columns, self.order)
        none = count == 0
        probs[none] = np.nan
        return _Result(label=np.where(none, -1, label), probs=probs)

    def _fold(self, values: np.ndarray, fired: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Sum over the fired segments of [segments, rows, ...] ``values`` (weighted if the method is), and of weights.

        Segments are added one by one in document order (``add.accumulate`` is
        sequential), as PMML4S folds them, so the sums round as pypmml's do.
        Unfired segments add 0.0, which changes nothing.
        """
        weights = np.asarray(self._weights).reshape((-1,) + (1,) * (values.ndim - 1))
        if "weighted" in self.method:
            values = values * weights
        if fired is not None:
            values = np.where(fired.reshape(fired.shape + (1,) * (values.ndim - 2)), values, 0.0)
        total = np.add.accumulate(values, axis=0)[-1]
        if fired is None:
            weight_total = np.full(values.shape[1], np.add.accumulate(weights.ravel())[-1])
        else:
            weight_total = np.add.accumulate(np.where(fired, weights.reshape(-1, 1), 0.0), axis=0)[-1]
        return total, weight_total

    def _average(self, env, fired, final, count, n) -> np.ndarray:
        """Class probabilities averaged over the fired segments, each read as PMML4S reads it."""
        assert self.ctx.labels is not None
        numeric = self._numeric
        heads = [0] if len(self._sources) == 1 else list(self._sources)
        head = None if len(heads) == 1 else np.argmax(fired, axis=0)
        if len(heads) == 1 and self._tree_sources is not None:  # a plain forest: one gather for all trees
            values = self.group.node_ext[final[:, :, None], self._tree_sources[:, None, :]]
            total, weight_total = self._fold(values, fired)
            return total / (count if self.method == "average" else weight_total)[:, None]
        tree_ext = None
        values = []
        for i, (_, _, member) in enumerate(self.segments):
            if isinstance(member, tuple):
                if tree_ext is None:
                    tree_ext = self.group.node_ext[final]  # [trees, rows, L + 3]
                ext = tree_ext[member[1]]
            else:
                r = member.evaluate(env)
                ext = _extend(r.probs, r.label, numeric)
            value = ext[:, self._sources[heads[0]][i]]
            for h in heads[1:]:
                value = np.where((head == h)[:, None], ext[:, self._sources[h][i]], value)
            values.append(value)
        total, weight_total = self._fold(np.stack(values), fired)
        return total / (count if self.method == "average" else weight_total)[:, None]

    def _votes(self, env, fired, final, count, n) -> np.ndarray:
        """Each class's (weighted) votes over the fired segments, divided by the number of fired segments."""
        k = self.ctx.n_classes
        votes = np.zeros((n, k))
        rows = np.arange(n)
        weighted = self.method.startswith("weighted")
        for i, (_, w, member) in enumerate(self.segments):
            label = self.group.node_label[final[member[1]]] if isinstance(member, tuple) else member.evaluate(env).label
            ok = (label >= 0) & (label < k)
            if fired is not None:
                ok &= fired[i]
            votes[rows[ok], label[ok]] += w if weighted else 1.0
        return votes / count[:, None]


# --------------------------------------------------------------------------- the document


@dataclass
class CompiledPmml:
    """A PMML document compiled to NumPy.

    Attributes:
        function: ``"regression"`` or ``"classification"``.
        input_names: The PMML input fields, in the column order :meth:`predict` takes.
        target: The target field's name.
        labels: For a classifier, the labels of the probability columns, in
            ``label_key`` order (as ``PmmlModel`` orders pypmml's outputs); else empty.
        model_element: The top-level model's element name, e.g. ``MiningModel``.
    """

    function: str
    input_names: list[str]
    target: str
    labels: tuple[str, ...]
    model_element: str
    _model: _Model
    _label_table: _Labels | None
    _output_labels: np.ndarray
    _numeric: np.ndarray
    _null_score: float = math.nan
    _cells: int = 1

    def predict(self, inputs: np.ndarray) -> RawPrediction:
        """Score float64 [N, len(input_names)] rows by ``PmmlModel``'s result rule.

        Regression: the predicted value. Classification: the predicted label as a
        number (NaN when pypmml's label is not numeric or absent) and the
        probabilities in ``labels`` order, NaN reported as 0.
        """
        inputs = np.asarray(inputs, dtype=np.float64)
        step = max(16, _CHUNK_CELLS // max(1, self._cells))
        parts = [self._predict(inputs[i : i + step]) for i in range(0, len(inputs), step)] or [self._predict(inputs)]
        if len(parts) == 1:
            return parts[0]
        probabilities = None if parts[0].probabilities is None else np.vstack([p.probabilities for p in parts])
        return RawPrediction(np.concatenate([p.scores for p in parts]), probabilities, parts[0].labels)

    def _predict(self, inputs: np.ndarray) -> RawPrediction:
        env = _Env(np.ascontiguousarray(inputs.T))
        with np.errstate(all="ignore"):
            result = self._model.evaluate(env)
        # pypmml's JSON has no infinities: it writes null, which PmmlModel reads as NaN (a probability as 0).
        if self.function == "regression":
            value = np.asarray(result.value, dtype=np.float64)
            return RawPrediction(scores=np.where(np.isfinite(value), value, np.nan))
        label = np.asarray(result.label)
        scores = np.where(label >= 0, self._numeric[np.maximum(label, 0)], self._null_score)
        if not len(self._output_labels):
            return RawPrediction(scores=scores, probabilities=None, labels=())
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
    if _tag(root) != "PMML":
        raise NotCompilable("the root element is not <PMML>")
    _only(root, {"Header", "MiningBuildTask", "DataDictionary", "TransformationDictionary"} | _ALL_MODEL_TAGS)
    models = [c for c in _kids(root) if _tag(c) in _ALL_MODEL_TAGS]
    if len(models) != 1:
        raise NotCompilable(f"the document holds {len(models)} model elements, not one")
    model_elem = models[0]
    if _tag(model_elem) not in _MODEL_TAGS:
        raise NotCompilable(f"<{_tag(model_elem)}> is not compiled")
    dictionary = _find(root, "DataDictionary")
    if dictionary is None:
        raise NotCompilable("no DataDictionary")
    _only(dictionary, {"DataField", "Taxonomy"})
    data_fields = {f.get("name"): f for f in _kids(dictionary) if _tag(f) == "DataField"}

    schema = _find(model_elem, "MiningSchema")
    if schema is None:
        raise NotCompilable("the model has no MiningSchema")
    mining = [mf for mf in _kids(schema) if _tag(mf) == "MiningField"]
    input_names = [mf.get("name") for mf in mining if mf.get("usageType", "active") == "active"]
    targets = [mf.get("name") for mf in mining if mf.get("usageType") in ("target", "predicted")]
    if len(targets) != 1 or targets[0] not in data_fields:
        raise NotCompilable("the model must have exactly one target DataField")
    target = targets[0]
    function = model_elem.get("functionName", "")
    if function not in ("regression", "classification"):
        raise NotCompilable(f"functionName {function!r}")

    columns: dict[str, Getter] = {}
    for position, name in enumerate(input_names):
        spec = data_fields.get(name)
        if spec is None:
            raise NotCompilable(f"input {name!r} is not a DataField")
        if spec.get("optype") != "continuous" or spec.get("dataType") != "double" or _kids(spec):
            raise NotCompilable(f"input {name!r} is not a plain continuous double")
        columns[name] = _Column(position)

    target_spec = data_fields[target]
    labels = None
    if function == "classification":
        if target_spec.get("optype") not in ("categorical",):
            raise NotCompilable("the classification target is not categorical")
        values = [v for v in _kids(target_spec) if _tag(v) == "Value"]
        if (
            not values
            or len(values) != len(_kids(target_spec))
            or any(v.get("property", "valid") != "valid" for v in values)
        ):
            raise NotCompilable("the classification target must list its valid Values, and only them")
        labels = _Labels(target_spec.get("dataType", "string"))
        for v in values:
            labels.index(v.get("value"))
        if len(labels) != len(values):
            raise NotCompilable("the target repeats a Value")
        labels.frozen = True
    elif target_spec.get("optype") != "continuous" or target_spec.get("dataType") not in ("double", "integer"):
        # (a float target would have pypmml round every prediction to float32)
        raise NotCompilable("the regression target is not a continuous double or integer")
    ctx = _Context(function, target, labels)

    base = _Scope(None, columns).with_transformations(_find(root, "TransformationDictionary"))
    model = _compile_model(model_elem, ctx, base, top=True)
    predicted_type = _predicted_type(model_elem, target_spec, function)

    output_labels: list[int] = []
    numeric = np.empty(0)
    if labels is not None:
        declared = _probability_labels(_output_layout(model_elem, ctx, final_only=True) or [])
        # pypmml's supplement output adds the default probability fields the Output lacks.
        defaults = _top_level_defaults(model, ctx)
        output_labels = list(declared) + [c for c in defaults if c not in declared]
        texts = [labels.text(i) for i in output_labels]
        if len(set(texts)) != len(texts):
            raise NotCompilable("two probability outputs share a label")
        order = sorted(range(len(output_labels)), key=lambda i: label_key(texts[i]))
        output_labels = [output_labels[i] for i in order]
        numeric = _numeric_labels([labels.text(i) for i in range(len(labels))])
    model.finish(len(labels) if labels is not None else 0)
    compiled = CompiledPmml(
        function=function,
        input_names=list(input_names),
        target=target,
        labels=tuple(labels.text(i) for i in output_labels) if labels is not None else (),
        model_element=_tag(model_elem),
        _model=model,
        _label_table=labels,
        _output_labels=np.asarray(output_labels, dtype=np.intp),
        _numeric=numeric,
    )
    compiled._cells = _predicate_rows(model)
    # pypmml writes a missing integer label as Long.MIN_VALUE, and PmmlModel reads that as a number.
    compiled._null_score = -(2.0**63) if predicted_type == "integer" else math.nan
    return compiled


_ALL_MODEL_TAGS = {
    "AnomalyDetectionModel", "AssociationModel", "BayesianNetworkModel", "BaselineModel", "ClusteringModel",
    "GaussianProcessModel", "GeneralRegressionModel", "MiningModel", "NaiveBayesModel", "NearestNeighborModel",
    "NeuralNetwork", "RegressionModel", "RuleSetModel", "SequenceModel", "Scorecard", "SupportVectorMachineModel",
    "TextModel", "TimeSeries", "TreeModel",
}  # fmt: skip


def _top_level_defaults(model: _Model, ctx: _Context) -> list[int]:
    """Labels of the default probability outputs pypmml adds to a top-level model."""
    if isinstance(model, _TreeGroup):
        return _probability_labels(model.trees[0].default_layout())
    return list(range(ctx.n_classes))


def _predicted_type(elem: ET.Element, target_spec: ET.Element, function: str) -> str | None:
    """The dataType pypmml reports the prediction in; refuse one that would convert our label or value."""
    output = _find(elem, "Output")
    for of in _kids(output) if output is not None else []:
        if of.get("feature", "predictedValue") != "predictedValue" or of.get("isFinalResult", "true") != "true":
            continue
        datatype = of.get("dataType")
        if function == "regression" and datatype != "double":
            raise NotCompilable(f"predicted value declared as {datatype!r}")
        if function == "classification" and datatype not in (target_spec.get("dataType"), "string"):
            raise NotCompilable(f"predicted label declared as {datatype!r}")
        return datatype
    return target_spec.get("dataType")


def _numeric_labels(texts: list[str]) -> np.ndarray:
    """Each label as ``pd.to_numeric(errors="coerce")`` reads it, as ``PmmlModel`` scores pypmml's labels."""
    import pandas as pd

    return pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").to_numpy(dtype=np.float64)


def _predicate_rows(model: _Model) -> int:
    if isinstance(model, _TreeGroup):  # the predicate masks, then per inner node its child masks and next node
        return 2 * model.table.rows + sum(len(t.children) for t in model.trees) * 10
    if isinstance(model, _Mining):
        rows = model.segment_table.rows + (_predicate_rows(model.group) if model.group is not None else 0)
        return rows + sum(_predicate_rows(m) for _, _, m in model.segments if not isinstance(m, tuple))
    return 1
