"""NormContinuous, Discretize and MapValues: expressions that map a value piecewise, as JPMML does.

NormContinuous interpolates between the LinearNorms of the interval JPMML's
binary search finds (``outliers``: asIs extrapolates, asMissingValues gives a
missing value, asExtremeValues the first or last norm); a missing value gives
``mapMissingTo``. Discretize takes the first DiscretizeBin whose Interval holds the value (else
``defaultValue``, else missing); MapValues the first InlineTable row whose
input columns all equal the FieldColumnPairs' values (else ``defaultValue``).
A missing input gives ``mapMissingTo``. The result is of the element's
``dataType`` (default ``string``: codes of the values it can take).
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET

import numpy as np

from serving.formats.pmml.compiler.elements import NotCompilable, allow_only, child_elements, number_attribute, tag_name
from serving.formats.pmml.compiler.evaluation import Env, Getter
from serving.formats.pmml.compiler.expressions import (
    Scope,
    Typed,
    field_constant,
    find_required,
    parse_value,
    vocabulary_of,
)
from serving.formats.pmml.compiler.inputs import parse_typed


class _Outputs:
    """The values a mapping can produce, in the mapping's dataType: numbers, or codes of a vocabulary."""

    def __init__(self, datatype: str) -> None:
        if datatype not in ("string", "double", "float", "integer"):
            raise NotCompilable(f"mapping to dataType {datatype!r}")
        self.datatype = datatype
        self.vocabulary: list[str] = []

    def value(self, text: str | None) -> float:
        if text is None:
            return math.nan
        if self.datatype != "string":
            return parse_value(text, self.datatype, "mapped value")
        if text not in self.vocabulary:
            self.vocabulary.append(text)
        return float(self.vocabulary.index(text))

    def typed(self, fn: Getter) -> Typed:
        return Typed(fn, self.datatype, tuple(self.vocabulary) if self.datatype == "string" else None)


def norm_continuous(elem: ET.Element, scope: Scope) -> Typed:
    """Compile a NormContinuous element: JPMML's piecewise-linear interpolation, with its outlier treatments."""
    allow_only(elem, {"LinearNorm"})
    norms = [(number_attribute(n, "orig"), number_attribute(n, "norm")) for n in child_elements(elem)]
    if len(norms) < 2 or any(b[0] <= a[0] for a, b in itertools.pairwise(norms)):
        raise NotCompilable("NormContinuous needs two or more LinearNorms in increasing orig order")
    outliers = elem.get("outliers", "asIs")
    if outliers not in ("asIs", "asMissingValues", "asExtremeValues"):
        raise NotCompilable(f"NormContinuous outliers={outliers!r}")
    missing = parse_value(elem.get("mapMissingTo"), "double", "mapMissingTo") if elem.get("mapMissingTo") else np.nan
    getter = scope.resolve(elem.get("field"))
    if vocabulary_of(getter) is not None:
        raise NotCompilable("NormContinuous of a string field")
    origs = np.asarray([o for o, _ in norms])
    last = len(norms) - 1

    def evaluate(env: Env) -> np.ndarray:
        x = getter(env)
        index = _find_orig(origs, x)
        outlier = (index < 0) | (index >= last) | np.isnan(x)
        segment = np.clip(index, 0, last - 1)
        lo_orig, hi_orig = origs[segment], origs[segment + 1]
        lo_norm = np.asarray([n for _, n in norms])[segment]
        hi_norm = np.asarray([n for _, n in norms])[segment + 1]
        out = lo_norm + ((x - lo_orig) / (hi_orig - lo_orig)) * (hi_norm - lo_norm)
        if outliers == "asMissingValues":
            out = np.where(outlier, np.nan, out)
        elif outliers == "asExtremeValues":
            out = np.where(outlier & (index < 0), norms[0][1], np.where(outlier & (index >= last), norms[-1][1], out))
        return np.where(np.isnan(x), missing, out)

    return Typed(evaluate, "double")


def _find_orig(origs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """JPMML's binary search for the LinearNorm interval of ``x``: its start, or -1 (a last orig found alone is last).

    Replayed step by step, since which of two closed intervals sharing an orig it returns depends on the path.
    """
    last = len(origs) - 1
    low, high = np.zeros(x.shape, dtype=np.intp), np.full(x.shape, last, dtype=np.intp)
    found = np.full(x.shape, -1, dtype=np.intp)
    active = ~np.isnan(x)
    while active.any():
        active &= low <= high
        mid = np.clip(low + (high - low) // 2, 0, last)
        at_or_above = active & (x >= origs[mid])
        nxt = origs[np.minimum(mid + 1, last)]
        hit = at_or_above & ((mid == last) | (x <= nxt))
        found = np.where(hit, mid, found)
        low = np.where(at_or_above & ~hit, mid + 1, low)
        high = np.where(active & ~at_or_above, mid - 1, high)
        active &= ~hit
    return found


def discretize(elem: ET.Element, scope: Scope) -> Typed:
    """Compile a Discretize element."""
    allow_only(elem, {"DiscretizeBin"})
    field = scope.resolve(elem.get("field"))
    if vocabulary_of(field) is not None:
        raise NotCompilable("Discretize of a string field")
    outputs = _Outputs(elem.get("dataType", "string"))
    bins = []
    for b in child_elements(elem):
        interval = find_required(b, "Interval")
        closure = interval.get("closure", "")
        if closure not in ("openOpen", "openClosed", "closedOpen", "closedClosed"):
            raise NotCompilable(f"Interval closure {closure!r}")
        lo = (
            parse_typed(interval.get("leftMargin"), "double", "leftMargin") if interval.get("leftMargin") else -math.inf
        )
        hi = (
            parse_typed(interval.get("rightMargin"), "double", "rightMargin")
            if interval.get("rightMargin")
            else math.inf
        )
        bins.append(
            (lo, hi, closure.startswith("closed"), closure.endswith("Closed"), outputs.value(b.get("binValue")))
        )
    default = outputs.value(elem.get("defaultValue"))
    missing = outputs.value(elem.get("mapMissingTo"))

    def evaluate(env: Env) -> np.ndarray:
        x = field(env)
        out = np.full(env.rows, default)
        done = np.isnan(x)
        for lo, hi, lo_closed, hi_closed, value in bins:
            hit = ~done & (x >= lo if lo_closed else x > lo) & (x <= hi if hi_closed else x < hi)
            out[hit] = value
            done |= hit
        return np.where(np.isnan(x), missing, out)

    return outputs.typed(evaluate)


def map_values(elem: ET.Element, scope: Scope) -> Typed:
    """Compile a MapValues element with an InlineTable."""
    allow_only(elem, {"FieldColumnPair", "InlineTable"})
    pairs = [c for c in child_elements(elem) if tag_name(c) == "FieldColumnPair"]
    if not pairs:
        raise NotCompilable("MapValues without FieldColumnPair")
    fields = [scope.resolve(p.get("field")) for p in pairs]
    columns = [_column(p.get("column")) for p in pairs]
    output = _column(elem.get("outputColumn"))
    outputs = _Outputs(elem.get("dataType", "string"))
    table = find_required(elem, "InlineTable")
    rows = []
    for row in child_elements(table):
        if tag_name(row) != "row":
            raise NotCompilable(f"<{tag_name(row)}> in InlineTable")
        cells = {tag_name(c): (c.text or "") for c in child_elements(row)}
        if output not in cells or any(c not in cells for c in columns):
            raise NotCompilable("an InlineTable row lacks a column")
        keys = [field_constant(f, cells[c], "MapValues input") for f, c in zip(fields, columns)]
        rows.append((keys, outputs.value(cells[output])))
    default = outputs.value(elem.get("defaultValue"))
    missing = outputs.value(elem.get("mapMissingTo"))

    def evaluate(env: Env) -> np.ndarray:
        xs = [f(env) for f in fields]
        gone = np.zeros(env.rows, dtype=bool)
        for x in xs:
            gone |= np.isnan(x)
        out = np.full(env.rows, default)
        done = gone.copy()
        for keys, value in rows:
            hit = ~done
            for x, key in zip(xs, keys):
                hit &= x == key
            out[hit] = value
            done |= hit
        return np.where(gone, missing, out)

    return outputs.typed(evaluate)


def _column(name: str | None) -> str:
    if not name:
        raise NotCompilable("MapValues names no column")
    return name.rsplit(":", 1)[-1]  # an InlineTable cell's tag, without its namespace prefix
