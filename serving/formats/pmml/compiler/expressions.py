"""Fields and expressions: TransformationDictionary, LocalTransformations, DerivedField and its expressions.

A :class:`Scope` resolves a field name at compile time to a
:data:`~serving.formats.pmml.compiler.evaluation.Getter`: an input column, or a
DerivedField of this scope or an enclosing one. Every getter carries the PMML
``datatype`` of its values and, for strings, their ``vocabulary``: a column
holds float64 values, NaN for a missing value; a string is the float code of
its position in ``vocabulary`` (-1: an invalid input kept as is, -2: a
constant of no known value; neither equals any value). :func:`field_constant`
turns a document's value for a field (a predicate's ``value``, a
CategoricalPredictor's) into that representation.

Expressions are evaluated as JPMML-Evaluator evaluates them: FieldRef,
Constant, NormContinuous (with outliers), NormDiscrete, Discretize, MapValues
and Apply (:mod:`.functions`), then cast to the DerivedField's dataType (a
``float`` field is rounded to float32). Where JPMML fails a record (a missing
argument to a function that does not tolerate one), the value is missing here.
Each DerivedField is computed at most once per evaluation.
"""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET

import numpy as np

from serving.formats.pmml.compiler.elements import (
    INTEGER_TEXT,
    NotCompilable,
    allow_only,
    child_elements,
    find_child,
    parse_number,
    tag_name,
)
from serving.formats.pmml.compiler.evaluation import Env, Getter

#: Codes of strings that equal no value: an invalid input kept asIs, and a constant no field value can take.
INVALID_CODE, UNMATCHED_CODE = -1.0, -2.0
NUMERIC = ("double", "float", "integer")


class Typed:
    """A compiled expression: its getter, the PMML dataType of its values and, for strings, their vocabulary."""

    def __init__(self, fn: Getter, datatype: str, vocabulary: tuple[str, ...] | None = None) -> None:
        self.fn = fn
        self.datatype = datatype
        self.vocabulary = vocabulary

    def __call__(self, env: Env) -> np.ndarray:
        """The expression's values in ``env``."""
        return self.fn(env)


def datatype_of(getter: Getter) -> str:
    """The PMML dataType of a getter's values (``double`` unless it says)."""
    return getattr(getter, "datatype", "double")


def vocabulary_of(getter: Getter) -> tuple[str, ...] | None:
    """The vocabulary of a string getter's codes, None for numbers."""
    return getattr(getter, "vocabulary", None)


def field_constant(getter: Getter, text: str | None, what: str) -> float:
    """The document's value ``text`` for the field of ``getter``, as that field's column holds it.

    Strings become their code (:data:`UNMATCHED_CODE` for a value the field
    never takes), numbers are parsed with the field's dataType (a float field's
    rounded to float32, as JPMML parses a value for a Float field).

    Raises:
        NotCompilable: the text is no value of that dataType.
    """
    vocabulary = vocabulary_of(getter)
    if vocabulary is not None:
        if text is None:
            raise NotCompilable(f"{what}: no value")
        return float(vocabulary.index(text)) if text in vocabulary else UNMATCHED_CODE
    return parse_value(text, datatype_of(getter), what)


def predicate_value(getter: Getter, operator: str, text: str | None) -> float:
    """A SimplePredicate's ``value`` for the field of ``getter``, as JPMML compares them (see :func:`field_constant`).

    Raises:
        NotCompilable: an ordering comparison on a string field, or a value of the wrong type.
    """
    if vocabulary_of(getter) is not None and operator not in ("equal", "notEqual"):
        raise NotCompilable(f"SimplePredicate {operator!r} on a string field")
    return field_constant(getter, text, "SimplePredicate value")


def array_values(getter: Getter, array: ET.Element) -> np.ndarray:
    """A SimpleSetPredicate's Array (``int``, ``real`` or ``string``; quoted tokens) for the field of ``getter``."""
    if array.get("type") not in ("int", "real", "string"):
        raise NotCompilable(f"Array of type {array.get('type')!r}")
    tokens = [
        quoted.replace('\\"', '"') if quoted else bare
        for quoted, bare in re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', array.text or "")
    ]
    return np.asarray([field_constant(getter, t, "Array value") for t in tokens], dtype=np.float64)


def parse_value(text: str | None, datatype: str, what: str) -> float:
    """A number as JPMML parses it for ``datatype`` (double, float rounded to float32, integer, boolean)."""
    if datatype == "boolean":
        if text not in ("true", "false", "1", "0"):
            raise NotCompilable(f"{what}: {text!r} is not a boolean")
        return 1.0 if text in ("true", "1") else 0.0
    if datatype not in NUMERIC:
        raise NotCompilable(f"{what}: dataType {datatype!r}")
    stripped = (text or "").strip()
    if stripped in ("NaN", "Infinity", "-Infinity"):
        value = float(stripped.replace("Infinity", "inf"))
    else:
        value = parse_number(text, what)
    if datatype == "integer" and not value.is_integer():
        raise NotCompilable(f"{what}: {text!r} is not an integer")
    return float(np.float32(value)) if datatype == "float" else value


def common_type(a: str, b: str) -> str:
    """JPMML's ``TypeUtil.getCommonDataType`` of two numeric types."""
    if a == b:
        return a
    if "double" in (a, b):
        return "double"
    if "float" in (a, b):
        return "float"
    raise NotCompilable(f"no common numeric type of {a!r} and {b!r}")


def cast(expr: Getter, datatype: str, what: str) -> Getter:
    """``expr`` converted to ``datatype`` as JPMML casts a value (float: rounded to float32)."""
    source, vocabulary = datatype_of(expr), vocabulary_of(expr)
    if datatype == "string":
        if vocabulary is None:
            raise NotCompilable(f"{what}: a number cast to a string")
        return expr
    if vocabulary is not None:  # strings parsed as numbers
        table = np.asarray([_parse_or_nan(v, datatype) for v in vocabulary] + [np.nan, np.nan])
        return Typed(lambda env: _lookup(table, expr(env)), datatype)
    if datatype == source or (datatype == "double" and source in ("float", "integer", "boolean")):
        return expr if datatype == source else Typed(expr, datatype)
    if datatype == "float":
        return Typed(lambda env: expr(env).astype(np.float32).astype(np.float64), "float")
    if datatype == "integer":  # JPMML refuses a fraction: no value here
        return Typed(lambda env: _integral(expr(env)), "integer")
    if datatype == "boolean":
        return Typed(lambda env: np.where((expr(env) == 0) | (expr(env) == 1), expr(env), np.nan), "boolean")
    raise NotCompilable(f"{what}: cannot cast {source!r} to {datatype!r}")


def _parse_or_nan(text: str, datatype: str) -> float:
    try:
        return parse_value(text, datatype, "value")
    except NotCompilable:
        return math.nan


def _integral(x: np.ndarray) -> np.ndarray:
    return np.where((x == np.floor(x)) & (np.abs(x) <= 2.0**31 - 1), x, np.nan)


def _lookup(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``table[code]`` per row; NaN (missing) and the negative codes map to the table's last entries."""
    index = np.where(np.isnan(codes), -1, codes).astype(np.intp)
    index = np.where(np.isnan(codes), len(table) - 1, np.where(index < 0, len(table) - 2, index))
    return table[index]


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
        raise NotCompilable(f"field {name!r} is not an input or a compiled derived field")

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
    name = elem.get("name")
    datatype = elem.get("dataType", "")
    if datatype not in (*NUMERIC, "string", "boolean"):
        raise NotCompilable(f"DerivedField {name!r} of dataType {datatype!r}")
    kids = child_elements(elem)
    if len(kids) != 1:
        raise NotCompilable(f"DerivedField {name!r} needs exactly one expression")
    expression = cast(compile_expression(kids[0], scope), datatype, f"DerivedField {name!r}")
    slot = next(_SLOTS)

    def get(env: Env) -> np.ndarray:
        value = env.cache.get(slot)
        if value is None:
            value = env.cache[slot] = np.asarray(expression(env), dtype=np.float64)
        return value

    return Typed(get, datatype, vocabulary_of(expression))


#: Cache keys of derived fields within one evaluation.
_SLOTS = itertools.count()


def constant(value: float, datatype: str, vocabulary: tuple[str, ...] | None = None) -> Typed:
    """An expression of one value on every row."""
    return Typed(lambda env: np.full(env.rows, value), datatype, vocabulary)


def compile_expression(elem: ET.Element, scope: Scope) -> Typed | Getter:
    """Compile one expression element to a typed getter.

    Raises:
        NotCompilable: the element, or anything in it, is not supported.
    """
    tag = tag_name(elem)
    if tag == "Constant":
        return _constant(elem)
    if tag == "FieldRef":
        allow_only(elem, set())
        getter = scope.resolve(elem.get("field"))
        if elem.get("mapMissingTo") is None:
            return getter
        return with_missing(getter, elem.get("mapMissingTo"), "FieldRef mapMissingTo")
    if tag == "NormContinuous":
        from serving.formats.pmml.compiler.mapping import norm_continuous

        return norm_continuous(elem, scope)
    if tag == "NormDiscrete":
        allow_only(elem, set())
        if elem.get("method", "indicator") != "indicator":
            raise NotCompilable("NormDiscrete method other than indicator")
        getter = scope.resolve(elem.get("field"))
        value = field_constant(getter, elem.get("value"), "NormDiscrete value")
        indicator = Typed(lambda env: np.where(np.isnan(getter(env)), np.nan, getter(env) == value), "double")
        missing = elem.get("mapMissingTo")
        return indicator if missing is None else with_missing(indicator, missing, "NormDiscrete mapMissingTo")
    if tag == "Discretize":
        from serving.formats.pmml.compiler.mapping import discretize

        return discretize(elem, scope)
    if tag == "MapValues":
        from serving.formats.pmml.compiler.mapping import map_values

        return map_values(elem, scope)
    if tag == "Apply":
        from serving.formats.pmml.compiler.functions import apply

        return apply(elem, scope)
    raise NotCompilable(f"expression <{tag}> is not supported")


def _constant(elem: ET.Element) -> Typed:
    if elem.get("missing") == "true":
        return constant(math.nan, elem.get("dataType", "double"))
    text = elem.text or ""
    datatype = elem.get("dataType")
    if datatype is None:  # JPMML's TypeUtil.getConstantDataType
        stripped = text.strip()
        if not stripped:
            datatype = "string"
        elif INTEGER_TEXT.match(stripped):
            datatype = "integer"
        else:
            try:
                parse_value(stripped, "double", "Constant")
                datatype = "double"
            except NotCompilable:
                datatype = "string"
    if datatype == "string":
        return constant(0.0, "string", (text,))
    if not text.strip():  # an empty non-string constant is missing
        return constant(math.nan, datatype)
    return constant(parse_value(text.strip(), datatype, "Constant"), datatype)


def replacement(expr: Getter, text: str | None, what: str) -> tuple[float, tuple[str, ...] | None]:
    """``text`` (a mapMissingTo or defaultValue) as a value of ``expr``, and ``expr``'s vocabulary extended by it."""
    vocabulary = vocabulary_of(expr)
    if vocabulary is not None:
        if text not in vocabulary:
            vocabulary = (*vocabulary, text)  # type: ignore[assignment]
        return float(vocabulary.index(text)), vocabulary  # type: ignore[union-attr, arg-type]
    datatype = datatype_of(expr)
    return parse_value(text, datatype if datatype != "boolean" else "double", what), None


def with_missing(expr: Getter, text: str | None, what: str) -> Typed:
    """``expr`` with its missing values replaced by ``text`` (a mapMissingTo or defaultValue)."""
    value, vocabulary = replacement(expr, text, what)
    return Typed(lambda env: _fill(expr(env), value), datatype_of(expr), vocabulary)


def _fill(x: np.ndarray, value: float) -> np.ndarray:
    return np.where(np.isnan(x), value, x)


def unify(exprs: list[Getter]) -> tuple[list[Getter], str, tuple[str, ...] | None]:
    """Expressions of one representation: numbers of their common type, or strings recoded to one vocabulary."""
    vocabularies = [vocabulary_of(e) for e in exprs]
    if all(v is None for v in vocabularies):
        datatype = datatype_of(exprs[0])
        for e in exprs[1:]:
            datatype = common_type(datatype, datatype_of(e))
        return exprs, datatype, None
    if any(v is None for v in vocabularies):
        raise NotCompilable("strings mixed with numbers")
    merged: list[str] = []
    for v in vocabularies:
        merged += [s for s in v if s not in merged]  # type: ignore[union-attr]
    out: list[Getter] = []
    for e, v in zip(exprs, vocabularies):
        if list(v) == merged[: len(v)]:  # type: ignore[arg-type]
            out.append(e)
        else:
            table = np.asarray([merged.index(s) for s in v] + [UNMATCHED_CODE, math.nan], dtype=np.float64)  # type: ignore[union-attr]
            out.append(_recoded(e, table))
    return out, "string", tuple(merged)


def _recoded(expr: Getter, table: np.ndarray) -> Getter:
    def get(env: Env) -> np.ndarray:
        codes = expr(env)
        return np.where(codes == INVALID_CODE, INVALID_CODE, _lookup(table, codes))

    return get


def find_required(elem: ET.Element, name: str) -> ET.Element:
    """The child ``name`` of ``elem``, or NotCompilable."""
    child = find_child(elem, name)
    if child is None:
        raise NotCompilable(f"<{tag_name(elem)}> lacks <{name}>")
    return child
