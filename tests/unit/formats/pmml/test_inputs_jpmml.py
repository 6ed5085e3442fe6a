"""Inputs compiled to NumPy against JPMML-Evaluator: float/double/integer/string fields, missing and invalid values."""

from __future__ import annotations

import numpy as np
import pytest

from serving.formats.pmml.compiler import compile_pmml
from tests.unit.formats.pmml._rows_vs_jpmml import assert_rows_match, document, random_rows


def _model(fields: str, schema: str, predictors: str, intercept: float = 0.5) -> str:
    return document(
        f'<DataDictionary><DataField name="y" optype="continuous" dataType="double"/>{fields}</DataDictionary>'
        f'<RegressionModel functionName="regression"><MiningSchema><MiningField name="y" usageType="target"/>'
        f'{schema}</MiningSchema><RegressionTable intercept="{intercept}">{predictors}</RegressionTable>'
        "</RegressionModel>"
    )


def test_a_float_field_is_rounded_to_float32_as_jpmml_does(jpmml, tmp_path):
    text = _model(
        '<DataField name="f" optype="continuous" dataType="float"/>'
        '<DataField name="d" optype="continuous" dataType="double"/>',
        '<MiningField name="f"/><MiningField name="d"/>',
        '<NumericPredictor name="f" coefficient="1000"/><NumericPredictor name="d" coefficient="1000"/>',
    )
    rows = [{"f": v, "d": v} for v in (0.1, 1.0 / 3.0, 2.718281828459045, -123.456789, 1e-7)]
    compiled = assert_rows_match(jpmml, tmp_path, text, rows)
    # Rounding matters at this scale: the float field is not read as a double.
    unrounded = 0.5 + 1000 * 0.1 + 1000 * 0.1
    assert abs(compiled.predict(np.array([[0.1, 0.1]])).scores[0] - unrounded) > 1e-9


def test_an_integer_field_rejects_fractions_as_jpmml_does(jpmml, tmp_path):
    text = _model(
        '<DataField name="n" optype="continuous" dataType="integer"/>',
        '<MiningField name="n"/>',
        '<NumericPredictor name="n" coefficient="0.25"/>',
    )
    rows = [{"n": v} for v in (1.0, -4.0, 7.0, 2.5, None, 3e10, 12.0)]
    assert_rows_match(jpmml, tmp_path, text, rows)


@pytest.mark.parametrize(
    "treatment",
    [
        "",
        'missingValueReplacement="1.5"',
        'missingValueTreatment="asMean" missingValueReplacement="-2"',
        'missingValueTreatment="returnInvalid"',
        'invalidValueTreatment="asIs"',
        'invalidValueTreatment="asMissing"',
        'invalidValueTreatment="asMissing" missingValueReplacement="0.75"',
        'invalidValueTreatment="asValue" invalidValueReplacement="3"',
        'outliers="asMissingValues" lowValue="1" highValue="8"',
        'outliers="asExtremeValues" lowValue="1" highValue="8"',
    ],
)
def test_mining_field_treatments_equal_jpmml(jpmml, tmp_path, treatment):
    # x is valid in [0, 10]; -999 is its declared missing value and 5.5 a declared invalid one.
    fields = (
        '<DataField name="x" optype="continuous" dataType="double">'
        '<Interval closure="closedClosed" leftMargin="0" rightMargin="10"/>'
        '<Value value="-999" property="missing"/><Value value="5.5" property="invalid"/></DataField>'
        '<DataField name="z" optype="continuous" dataType="double"/>'
    )
    text = _model(
        fields,
        f'<MiningField name="x" {treatment}/><MiningField name="z"/>',
        '<NumericPredictor name="x" coefficient="0.3"/><NumericPredictor name="z" coefficient="-1.1"/>',
    )
    xs = [0.0, 2.0, 10.0, 12.0, -1.0, -999.0, 5.5, None, 7.25, 0.5, 9.0, 3.0, 4.0, 6.0]
    rows = [{"x": x, "z": 0.1 * i} for i, x in enumerate(xs)]
    assert_rows_match(jpmml, tmp_path, text, rows)


def test_lightgbm_nan_missing_declarations_compile_and_equal_jpmml(jpmml, tmp_path):
    text = _model(
        '<DataField name="a" optype="continuous" dataType="double"><Value value="NaN" property="missing"/></DataField>',
        '<MiningField name="a" missingValueReplacement="4"/>',
        '<NumericPredictor name="a" coefficient="2"/>',
    )
    assert_rows_match(jpmml, tmp_path, text, [{"a": 1.0}, {"a": None}, {"a": -3.5}])


@pytest.mark.parametrize(
    "treatment",
    ["", 'invalidValueTreatment="asIs"', 'invalidValueTreatment="asMissing"', 'missingValueReplacement="b"',
     'invalidValueTreatment="asValue" invalidValueReplacement="c"'],
)  # fmt: skip
def test_a_string_input_compiles_and_equals_jpmml(jpmml, tmp_path, treatment):
    fields = (
        '<DataField name="s" optype="categorical" dataType="string">'
        '<Value value="a"/><Value value="b"/><Value value="c"/><Value value="N/A" property="missing"/></DataField>'
        '<DataField name="x" optype="continuous" dataType="double"/>'
    )
    text = _model(
        fields,
        f'<MiningField name="s" {treatment}/><MiningField name="x"/>',
        '<NumericPredictor name="x" coefficient="0.5"/><CategoricalPredictor name="s" value="a" coefficient="1.5"/>'
        '<CategoricalPredictor name="s" value="b" coefficient="-0.75"/>'
        '<CategoricalPredictor name="s" value="c" coefficient="0.125"/>',
    )
    rows = random_rows({"s": ["a", "b", "c", "zz", "N/A"], "x": (-1.0, 1.0)}, 40, seed=5, missing=0.15)
    compiled = assert_rows_match(jpmml, tmp_path, text, rows)
    assert compiled.input_names == ["s", "x"]


def test_a_plain_double_document_takes_no_encoding_pass():
    text = _model(
        '<DataField name="x" optype="continuous" dataType="double"/>',
        '<MiningField name="x"/>',
        '<NumericPredictor name="x" coefficient="2"/>',
    )
    compiled = compile_pmml(text)
    assert compiled._encoder is not None and compiled._encoder.plain
    assert compiled.predict(np.array([[1.5], [np.nan]])).scores[0] == 3.5


def test_tree_predicates_on_string_and_float_fields_equal_jpmml(jpmml, tmp_path):
    # Thresholds on a float field are parsed as floats; string values compare as the field's categories.
    fields = (
        '<DataField name="s" optype="categorical" dataType="string"><Value value="red"/><Value value="green"/>'
        '<Value value="blue"/><Value value="dark red"/></DataField>'
        '<DataField name="f" optype="continuous" dataType="float"/>'
    )
    text = document(
        f'<DataDictionary><DataField name="y" optype="continuous" dataType="double"/>{fields}</DataDictionary>'
        '<TreeModel functionName="regression" noTrueChildStrategy="returnLastPrediction">'
        '<MiningSchema><MiningField name="y" usageType="target"/><MiningField name="s" invalidValueTreatment="asIs"/>'
        '<MiningField name="f"/></MiningSchema>'
        '<Node score="0"><True/>'
        '<Node score="1"><SimplePredicate field="s" operator="equal" value="red"/>'
        '<Node score="11"><SimplePredicate field="f" operator="lessOrEqual" value="0.1"/></Node>'
        '<Node score="12"><True/></Node></Node>'
        '<Node score="2"><SimpleSetPredicate field="s" booleanOperator="isIn">'
        '<Array type="string" n="2">"dark red" blue</Array></SimpleSetPredicate>'
        '<Node score="21"><SimplePredicate field="f" operator="greaterThan" value="0.3"/></Node></Node>'
        '<Node score="3"><SimplePredicate field="s" operator="notEqual" value="purple"/></Node>'
        "</Node></TreeModel>"
    )
    f32_tenth = float(np.float32(0.1))
    rows = [
        {"s": s, "f": f}
        for s in ("red", "green", "blue", "dark red", "zz", None)
        for f in (0.1, f32_tenth, 0.2, 0.3, float(np.float32(0.3)), 0.7, None)
    ]
    assert_rows_match(jpmml, tmp_path, text, rows)
