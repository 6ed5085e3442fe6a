"""Inputs: the top-level model's active MiningFields, prepared per batch as JPMML-Evaluator prepares them.

The inputs become the columns :meth:`~serving.formats.pmml.compiler.document.CompiledPmml.predict`
takes, in MiningSchema order, as a float64 matrix or (with string inputs) an
object matrix. :class:`InputEncoder` prepares them as JPMML-Evaluator's
``InputFieldUtil`` does, once per batch:

* ``double`` fields as they are; ``float`` fields rounded to float32 (JPMML casts
  the value to a Java ``Float``); ``integer`` fields must hold integral values;
* categorical ``string`` fields become float codes, the index of the value among
  the field's valid Values (see :func:`~serving.formats.pmml.compiler.expressions.field_constant`);
* NaN or None is a missing value, and so is a declared ``<Value property="missing">``;
  a value outside the declared valid Values or Intervals, or a declared invalid
  one, is invalid;
* then the MiningField's treatments: ``missingValueReplacement`` (any
  missingValueTreatment but ``returnInvalid``), ``invalidValueTreatment``
  (``returnInvalid``, ``asIs``, ``asMissing``, ``asValue`` with
  ``invalidValueReplacement``) and ``outliers`` with ``lowValue``/``highValue``.

``returnInvalid`` makes JPMML fail the record; here the row is flagged and
scores as no prediction. In a column, NaN is a missing value and, for string
fields, code -1 an invalid value kept ``asIs`` (it equals no declared value).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from serving.formats.pmml.compiler.base import Result
from serving.formats.pmml.compiler.elements import (
    NotCompilable,
    allow_only,
    child_elements,
    find_child,
    parse_number,
    tag_name,
)
from serving.formats.pmml.compiler.evaluation import Column, Getter

#: The input dataTypes compiled, and the code of an invalid string kept asIs.
NUMERIC_TYPES = ("double", "float", "integer")
INVALID_CODE = -1.0
_INT_MAX = 2.0**31 - 1


def parse_typed(text: str | None, datatype: str, what: str) -> float:
    """A numeric PMML value as a float64 in the representation of ``datatype`` (float: rounded to float32)."""
    if text is not None and text.strip() in ("NaN", "Infinity", "-Infinity", "+Infinity"):
        value = float(text.strip().replace("Infinity", "inf"))
    else:
        value = parse_number(text, what)
    if datatype == "integer" and not value.is_integer():
        raise NotCompilable(f"{what}: {text!r} is not an integer")
    return float(np.float32(value)) if datatype == "float" else value


@dataclass
class InputField:
    """One input column: its declared domain and the MiningField's treatments, ready to apply per batch."""

    name: str
    datatype: str
    vocabulary: tuple[str, ...] | None = None  # string fields: the valid Values, in order
    valid: np.ndarray | None = None  # numeric fields with valid Values
    missing_values: list = field(default_factory=list)
    invalid_values: list = field(default_factory=list)
    intervals: list[tuple[float, float, bool, bool]] = field(default_factory=list)
    missing_replacement: float | None = None
    missing_invalid: bool = False  # missingValueTreatment="returnInvalid"
    invalid_treatment: str = "returnInvalid"
    invalid_replacement: float | None = None
    outliers: str = "asIs"
    low: float = -math.inf
    high: float = math.inf

    def code(self, text: str | None, what: str) -> float:
        """A value of this field (declared text) in its column's representation."""
        if self.vocabulary is None:
            return parse_typed(text, self.datatype, what)
        if text not in self.vocabulary:
            raise NotCompilable(f"{what}: {text!r} is not a valid value of {self.name!r}")
        return float(self.vocabulary.index(text))

    def encode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """This field's column from the caller's values, and the rows that JPMML would reject."""
        if self.vocabulary is not None:
            values, missing, invalid = self._strings(raw)
        else:
            values, missing, invalid = self._numbers(raw)
        rejected = np.zeros(len(values), dtype=bool)
        if invalid.any():
            treatment = self.invalid_treatment
            if treatment == "returnInvalid":
                rejected |= invalid
            elif treatment == "asMissing":
                missing = missing | invalid
            elif self.invalid_replacement is not None:  # asIs or asValue with a replacement
                values = np.where(invalid, self.invalid_replacement, values)
            elif self.vocabulary is not None:
                values = np.where(invalid, INVALID_CODE, values)
            elif treatment == "asValue":
                raise NotCompilable(f"{self.name!r}: asValue without invalidValueReplacement")
        if self.outliers != "asIs" and self.vocabulary is None:
            ok = ~missing & ~invalid
            low, high = ok & (values < self.low), ok & (values > self.high)
            if self.outliers == "asMissingValues":
                missing = missing | low | high
            else:
                values = np.where(low, self.low, np.where(high, self.high, values))
        if missing.any():
            if self.missing_invalid:
                rejected |= missing
            replacement = np.nan if self.missing_replacement is None else self.missing_replacement
            values = np.where(missing, replacement, values)
        return values, rejected

    def _numbers(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        incompatible = np.zeros(len(raw), dtype=bool)
        if raw.dtype == object:
            import pandas as pd

            try:  # numbers and None, in one pass
                values = pd.Series(raw, dtype=object).astype(np.float64).to_numpy()
            except (TypeError, ValueError):  # something that is no number: invalid, value by value
                values = np.empty(len(raw))
                for i, v in enumerate(raw):
                    try:
                        values[i] = np.nan if v is None else float(v)
                    except (TypeError, ValueError):
                        values[i], incompatible[i] = 0.0, True
        else:
            values = raw.astype(np.float64, copy=False)
        missing = np.isnan(values)
        if self.datatype == "float":
            values = values.astype(np.float32).astype(np.float64)
        elif self.datatype == "integer":
            bad = ~missing & ((values != np.floor(values)) | (np.abs(values) > _INT_MAX))
            incompatible |= bad
        for value in self.missing_values:
            missing |= values == value
        invalid = incompatible & ~missing
        for value in self.invalid_values:
            invalid |= ~missing & (values == value)
        if self.valid is not None:
            invalid |= ~missing & ~np.isin(values, self.valid)
        if self.intervals:
            inside = np.zeros(len(values), dtype=bool)
            for lo, hi, lo_closed, hi_closed in self.intervals:
                above = values >= lo if lo_closed else values > lo
                below = values <= hi if hi_closed else values < hi
                inside |= above & below
            invalid |= ~missing & ~invalid & ~inside
        return values, missing, invalid

    def _strings(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self.vocabulary is not None
        import pandas as pd

        texts = pd.Series(raw, dtype=object)
        missing = texts.isna().to_numpy()
        if any(not isinstance(v, str) for v in texts[~missing]):
            texts = texts.where(missing, texts.astype(str))  # JPMML reads any other value as its text
        if self.missing_values:
            missing |= texts.isin(self.missing_values).to_numpy()
        codes = pd.Categorical(texts, categories=list(self.vocabulary)).codes.astype(np.float64)
        invalid = ~missing & (codes < 0)
        if self.invalid_values:
            invalid |= ~missing & texts.isin(self.invalid_values).to_numpy()
        values = np.where(missing, np.nan, np.where(invalid, 0.0, codes))
        return values, missing, invalid


class InputEncoder:
    """The caller's [N, inputs] matrix (float64, or object with strings) to the evaluation's [inputs, N] columns."""

    def __init__(self, fields: list[InputField]) -> None:
        self.fields = fields
        self.plain = all(f.vocabulary is None and _is_plain(f) for f in fields)

    def encode(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The float64 [inputs, N] columns, and the rows JPMML would reject (None when there are none)."""
        if self.plain and inputs.dtype == np.float64:  # the usual case: no declared domain, nothing to do
            return np.ascontiguousarray(inputs.T), None
        columns = np.empty((len(self.fields), len(inputs)))
        rejected = np.zeros(len(inputs), dtype=bool)
        for j, spec in enumerate(self.fields):
            columns[j], bad = spec.encode(inputs[:, j])
            rejected |= bad
        return columns, (rejected if rejected.any() else None)


def _is_plain(spec: InputField) -> bool:
    return (
        spec.datatype == "double"
        and spec.valid is None
        and not spec.missing_values
        and not spec.invalid_values
        and not spec.intervals
        and spec.missing_replacement is None
        and not spec.missing_invalid
        and spec.outliers == "asIs"
    )


def input_fields(
    model_elem: ET.Element, input_names: list[str | None], fields: dict[str | None, ET.Element]
) -> tuple[dict[str, Getter], InputEncoder]:
    """The getter of each input by name (its column, carrying ``datatype`` and ``vocabulary``), and its encoder.

    Raises:
        NotCompilable: an input is no DataField, or of a type or with a
            treatment not implemented here.
    """
    schema = find_child(model_elem, "MiningSchema")
    mining = {mf.get("name"): mf for mf in child_elements(schema)} if schema is not None else {}
    columns: dict[str, Getter] = {}
    specs = []
    for position, name in enumerate(input_names):
        spec = fields.get(name)
        if spec is None or name is None:
            raise NotCompilable(f"input {name!r} is not a DataField")
        parsed = _input_field(name, spec, mining[name])
        specs.append(parsed)
        column = Column(position)
        column.datatype = parsed.datatype  # type: ignore[attr-defined]
        column.vocabulary = parsed.vocabulary  # type: ignore[attr-defined]
        columns[name] = column
    return columns, InputEncoder(specs)


def _input_field(name: str, spec: ET.Element, mf: ET.Element) -> InputField:
    datatype, optype = spec.get("dataType"), mf.get("optype") or spec.get("optype")
    if mf.get("optype") not in (None, spec.get("optype")):
        raise NotCompilable(f"MiningField {name!r} changes the optype")
    allow_only(spec, {"Value", "Interval"})
    if datatype == "string":
        if optype not in ("categorical", "ordinal"):
            raise NotCompilable(f"string input {name!r} is not categorical")
    elif datatype not in NUMERIC_TYPES or optype not in ("continuous", "categorical", "ordinal"):
        raise NotCompilable(f"input {name!r} of dataType {datatype!r} and optype {optype!r}")
    out = InputField(name, datatype)
    valid: list[str] = []
    for v in child_elements(spec):
        if tag_name(v) == "Interval":
            if optype != "continuous":
                raise NotCompilable(f"Interval on non-continuous input {name!r}")
            closure = v.get("closure", "")
            if closure not in ("openOpen", "openClosed", "closedOpen", "closedClosed"):
                raise NotCompilable(f"Interval closure {closure!r}")
            lo = parse_typed(v.get("leftMargin"), "double", "leftMargin") if v.get("leftMargin") else -math.inf
            hi = parse_typed(v.get("rightMargin"), "double", "rightMargin") if v.get("rightMargin") else math.inf
            out.intervals.append((lo, hi, closure.startswith("closed"), closure.endswith("Closed")))
            continue
        text, prop = v.get("value"), v.get("property", "valid")
        if prop == "valid":
            valid.append(text)  # type: ignore[arg-type]
        elif prop in ("missing", "invalid"):
            parsed = text if datatype == "string" else parse_typed(text, datatype, f"{name!r} Value")
            (out.missing_values if prop == "missing" else out.invalid_values).append(parsed)
        else:
            raise NotCompilable(f"Value property {prop!r}")
    if datatype == "string":
        if not valid:
            raise NotCompilable(f"string input {name!r} declares no valid Values")
        out.vocabulary = tuple(valid)
    elif valid:
        out.valid = np.asarray([parse_typed(t, datatype, f"{name!r} Value") for t in valid])
    out.missing_values = [m for m in out.missing_values if not (isinstance(m, float) and math.isnan(m))]
    _treatments(out, mf)
    return out


def _treatments(out: InputField, mf: ET.Element) -> None:
    name = out.name
    treatment = mf.get("missingValueTreatment", "asIs")
    if treatment not in ("asIs", "asMean", "asMode", "asMedian", "asValue", "returnInvalid"):
        raise NotCompilable(f"MiningField {name!r} missingValueTreatment {treatment!r}")
    out.missing_invalid = treatment == "returnInvalid"
    if mf.get("missingValueReplacement") is not None:
        out.missing_replacement = out.code(mf.get("missingValueReplacement"), "missingValueReplacement")
    out.invalid_treatment = mf.get("invalidValueTreatment", "returnInvalid")
    if out.invalid_treatment not in ("returnInvalid", "asIs", "asMissing", "asValue"):
        raise NotCompilable(f"MiningField {name!r} invalidValueTreatment {out.invalid_treatment!r}")
    if mf.get("invalidValueReplacement") is not None:
        out.invalid_replacement = out.code(mf.get("invalidValueReplacement"), "invalidValueReplacement")
    out.outliers = mf.get("outliers", "asIs")
    if out.outliers not in ("asIs", "asMissingValues", "asExtremeValues"):
        raise NotCompilable(f"MiningField {name!r} outliers {out.outliers!r}")
    if out.outliers != "asIs":
        if out.vocabulary is not None or (mf.get("lowValue") is None and mf.get("highValue") is None):
            raise NotCompilable(f"MiningField {name!r} outliers need a continuous field and a bound")
        if mf.get("lowValue") is not None:
            out.low = out.code(mf.get("lowValue"), "lowValue")
        if mf.get("highValue") is not None:
            out.high = out.code(mf.get("highValue"), "highValue")


def rejected_rows(result: Result, rejected: np.ndarray) -> Result:
    """``result`` with no prediction in the ``rejected`` rows (JPMML fails those records)."""
    value = None if result.value is None else np.where(rejected, np.nan, result.value)
    label = None if result.label is None else np.where(rejected, -1, result.label)
    probs = None if result.probs is None else np.where(rejected[:, None], np.nan, result.probs)
    return Result(value=value, label=label, probs=probs)
