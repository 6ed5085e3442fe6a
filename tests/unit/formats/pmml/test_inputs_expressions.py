"""DerivedField expressions compiled to NumPy against JPMML-Evaluator (what sklearn2pmml and JPMML-SparkML write)."""

from __future__ import annotations

import pytest

from serving.formats.pmml.compiler import NotCompilable, compile_pmml
from tests.unit.formats.pmml._rows_vs_jpmml import assert_rows_match, document

DICTIONARY = """<DataDictionary>
<DataField name="y" optype="continuous" dataType="double"/>
<DataField name="x" optype="continuous" dataType="double"/>
<DataField name="f" optype="continuous" dataType="float"/>
<DataField name="n" optype="continuous" dataType="integer"/>
<DataField name="s" optype="categorical" dataType="string">
<Value value="a"/><Value value="b"/><Value value="c"/></DataField>
</DataDictionary>"""

SCHEMA = """<MiningSchema><MiningField name="y" usageType="target"/><MiningField name="x"/><MiningField name="f"/>
<MiningField name="n"/><MiningField name="s"/></MiningSchema>"""

ROWS = [
    {"x": x, "f": f, "n": n, "s": s}
    for x, f, n, s in zip(
        [-2.5, -1.0, -0.3, 0.0, 0.4, 1.0, 1.7, 2.5, 3.9, 5.0, None, 0.5, 2.0, -4.0, 0.05, 1.25],
        [0.1, 0.2, None, 1.0 / 3.0, -0.7, 2.2, 3.3, -1.9, 0.6, 1.1, 0.8, None, 4.4, 0.01, -0.5, 2.0],
        [1.0, 2.0, 3.0, -1.0, 0.0, 5.0, 2.0, 7.0, None, 4.0, 2.0, 1.0, -3.0, 6.0, 2.0, 8.0],
        ["a", "b", "c", "a", None, "b", "c", "a", "b", "c", "a", "b", "a", None, "c", "b"],
    )
]


def _model(derived: str, predictors: str, local: str = "") -> str:
    return document(
        DICTIONARY
        + f"<TransformationDictionary>{derived}</TransformationDictionary>"
        + f'<RegressionModel functionName="regression">{SCHEMA}'
        + (f"<LocalTransformations>{local}</LocalTransformations>" if local else "")
        + f'<RegressionTable intercept="0.25">{predictors}</RegressionTable></RegressionModel>'
    )


def _field(name: str, expression: str, datatype: str = "double", optype: str = "continuous") -> str:
    return f'<DerivedField name="{name}" optype="{optype}" dataType="{datatype}">{expression}</DerivedField>'


def _numeric(name: str, coefficient: float = 1.0) -> str:
    return f'<NumericPredictor name="{name}" coefficient="{coefficient}"/>'


def _categorical(name: str, values: list[str]) -> str:
    return "".join(
        f'<CategoricalPredictor name="{name}" value="{v}" coefficient="{0.5 + i}"/>' for i, v in enumerate(values)
    )


def _apply(function: str, *args: str, extra: str = "") -> str:
    return f'<Apply function="{function}"{extra}>{"".join(args)}</Apply>'


X, F, N, S = ('<FieldRef field="x"/>', '<FieldRef field="f"/>', '<FieldRef field="n"/>', '<FieldRef field="s"/>')


def _c(value: str, datatype: str | None = "double") -> str:
    return f'<Constant dataType="{datatype}">{value}</Constant>' if datatype else f"<Constant>{value}</Constant>"


NUMERIC_CASES = {
    "norm_continuous_as_is": '<NormContinuous field="x"><LinearNorm orig="-1" norm="0"/>'
    '<LinearNorm orig="1" norm="0.5"/><LinearNorm orig="3" norm="2"/></NormContinuous>',
    "norm_continuous_as_missing": '<NormContinuous field="x" outliers="asMissingValues" mapMissingTo="9">'
    '<LinearNorm orig="-1" norm="0"/><LinearNorm orig="2.5" norm="1"/></NormContinuous>',
    "norm_continuous_extreme": '<NormContinuous field="f" outliers="asExtremeValues"><LinearNorm orig="-1" norm="-3"/>'
    '<LinearNorm orig="2" norm="3"/></NormContinuous>',
    "norm_discrete_string": '<NormDiscrete field="s" value="b" mapMissingTo="0.5"/>',
    "norm_discrete_integer": '<NormDiscrete field="n" value="2"/>',
    "arithmetic": _apply("/", _apply("*", _apply("+", X, F), _c("2.5")), _apply("-", N, _c("0.5"))),
    "integer_division": _apply("/", N, _c("2", "integer")),
    "untyped_constants": _apply("+", _apply("*", N, _c("3", None)), _c("0.125", None)),
    "float_arithmetic": _apply("*", F, _c("3.3", "float")),
    "math": _apply(
        "+",
        _apply("exp", _apply("/", X, _c("4"))),
        _apply("ln", _apply("+", _apply("abs", X), _c("1"))),
        extra="",
    ),
    "log_sqrt_pow": _apply(
        "-", _apply("log10", _apply("+", _apply("pow", F, _c("2")), _c("1"))), _apply("sqrt", _apply("abs", X))
    ),
    "rounding": _apply(
        "+", _apply("floor", X), _apply("*", _apply("ceil", F), _apply("round", _apply("*", X, _c("1.5"))))
    ),
    "threshold": _apply("threshold", X, _c("0.5")),
    "aggregates": _apply(
        "+",
        _apply("min", X, F, _c("1")),
        _apply("max", X, F),
        _apply("sum", X, F, N),
        _apply("avg", X, F, N),
        extra="",
    ).replace('function="+"', 'function="sum"'),
    "product": _apply("product", X, F),
    "if_comparisons": _apply(
        "if",
        _apply("and", _apply("greaterThan", X, _c("0")), _apply("equal", S, _c("a", "string"))),
        _apply("*", X, _c("2")),
        _apply("-", X, _c("1")),
    ),
    "if_without_else_default": _apply("if", _apply("lessOrEqual", F, _c("0.5")), F, extra=' defaultValue="-7"'),
    "missing_checks": _apply(
        "+",
        _apply("if", _apply("isMissing", X), _c("10"), _c("0")),
        _apply("if", _apply("isNotMissing", S), _c("1"), _c("2")),
    ),
    "is_in": _apply("if", _apply("isIn", S, _c("a", "string"), _c("c", "string")), _c("3"), _c("-3")),
    "not_or": _apply(
        "if",
        _apply("not", _apply("or", _apply("lessThan", X, _c("-1")), _apply("notEqual", S, _c("b", "string")))),
        _c("1"),
        _c("0"),
    ),
    "map_missing_to": _apply("*", X, F, extra=' mapMissingTo="100"'),
    "if_map_missing_to": _apply("if", _apply("greaterOrEqual", X, _c("0")), F, X, extra=' mapMissingTo="55"'),
    "field_ref_map_missing_to": '<FieldRef field="x" mapMissingTo="-5"/>',
    "discretize_numeric": '<Discretize field="x" dataType="double" defaultValue="-1" mapMissingTo="99">'
    '<DiscretizeBin binValue="1"><Interval closure="openClosed" rightMargin="0"/></DiscretizeBin>'
    '<DiscretizeBin binValue="2"><Interval closure="openOpen" leftMargin="0" rightMargin="2"/></DiscretizeBin>'
    "</Discretize>",
    "map_values_numeric": '<MapValues outputColumn="out" dataType="double" defaultValue="0.5" mapMissingTo="-2">'
    '<FieldColumnPair field="s" column="in"/><InlineTable><row><in>a</in><out>1.5</out></row>'
    "<row><in>b</in><out>-4</out></row></InlineTable></MapValues>",
}


@pytest.mark.parametrize("name", sorted(NUMERIC_CASES))
def test_numeric_expressions_equal_jpmml(jpmml, tmp_path, name):
    text = _model(_field("d", NUMERIC_CASES[name]), _numeric("d", 0.75) + _numeric("x", 0.1))
    if "x" in NUMERIC_CASES[name] and "mapMissingTo" in NUMERIC_CASES[name]:
        text = text.replace(_numeric("x", 0.1), "")  # a missing x would hide the replacement
    assert_rows_match(jpmml, tmp_path, text, ROWS)


def test_a_float_derived_field_is_rounded_to_float32_as_jpmml_does(jpmml, tmp_path):
    derived = _field("d", _apply("/", X, _c("3")), datatype="float")
    assert_rows_match(jpmml, tmp_path, _model(derived, _numeric("d", 1000.0)), [r for r in ROWS if r["x"] is not None])


def test_string_valued_expressions_feed_categorical_predictors_as_in_jpmml(jpmml, tmp_path):
    discretized = _field(
        "bin",
        '<Discretize field="x" defaultValue="high" mapMissingTo="none">'
        '<DiscretizeBin binValue="low"><Interval closure="closedOpen" leftMargin="-10" rightMargin="0"/>'
        "</DiscretizeBin>"
        '<DiscretizeBin binValue="mid"><Interval closure="closedOpen" leftMargin="0" rightMargin="2"/></DiscretizeBin>'
        "</Discretize>",
        datatype="string",
        optype="categorical",
    )
    mapped = _field(
        "group",
        '<MapValues outputColumn="data:out" defaultValue="other" xmlns:data="http://jpmml.org/jpmml-model/InlineTable">'
        '<FieldColumnPair field="s" column="data:in"/><InlineTable><row><data:in>a</data:in><data:out>vowel</data:out>'
        "</row><row><data:in>b</data:in><data:out>consonant</data:out></row></InlineTable></MapValues>",
        datatype="string",
        optype="categorical",
    )
    chosen = _field(
        "pick", _apply("if", _apply("greaterThan", F, _c("0")), S, _c("z", "string")), "string", "categorical"
    )
    predictors = (
        _categorical("bin", ["low", "mid", "high", "none"])
        + _categorical("group", ["vowel", "consonant", "other"])
        + _categorical("pick", ["a", "b", "c", "z"])
    )
    assert_rows_match(jpmml, tmp_path, _model(discretized + mapped + chosen, predictors), ROWS)


def test_local_transformations_see_the_dictionary_and_the_inputs(jpmml, tmp_path):
    global_field = _field("g", _apply("*", X, _c("2")))
    local = _field("l", _apply("+", '<FieldRef field="g"/>', N))
    assert_rows_match(jpmml, tmp_path, _model(global_field, _numeric("l", 0.5), local=local), ROWS)


def test_an_unknown_function_is_refused_with_its_name():
    with pytest.raises(NotCompilable, match="uppercase"):
        compile_pmml(_model(_field("d", _apply("uppercase", S), "string"), _numeric("x")))
