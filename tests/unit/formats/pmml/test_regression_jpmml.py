"""RegressionModel compiled to NumPy against JPMML-Evaluator: every normalizationMethod, predictor kind and Targets."""

from __future__ import annotations

import pytest

from serving.formats.pmml.compiler import NotCompilable, compile_pmml
from tests.unit.formats.pmml._rows_vs_jpmml import assert_rows_match, document, random_rows

INPUTS = {"x1": (-3.0, 3.0), "x2": (-2.0, 2.0), "c": ["red", "green", "blue", "violet"]}

DICTIONARY = """<DataDictionary>
<DataField name="x1" optype="continuous" dataType="double"/>
<DataField name="x2" optype="continuous" dataType="float"/>
<DataField name="c" optype="categorical" dataType="string">
<Value value="red"/><Value value="green"/><Value value="blue"/></DataField>
{target}
</DataDictionary>"""

SCHEMA = """<MiningSchema><MiningField name="y" usageType="target"/><MiningField name="x1"/>
<MiningField name="x2"/><MiningField name="c" invalidValueTreatment="asIs"/></MiningSchema>"""


def _table(intercept: float, k: float, category: str | None = None) -> str:
    head = f'<RegressionTable intercept="{intercept}"' + (f' targetCategory="{category}">' if category else ">")
    return (
        f'{head}<NumericPredictor name="x1" coefficient="{0.7 * k}"/>'
        f'<NumericPredictor name="x2" exponent="2" coefficient="{-0.3 * k}"/>'
        f'<CategoricalPredictor name="c" value="red" coefficient="{0.4 * k}"/>'
        f'<CategoricalPredictor name="c" value="green" coefficient="{-0.25 * k}"/>'
        f'<PredictorTerm coefficient="{0.15 * k}"><FieldRef field="x1"/><FieldRef field="x2"/></PredictorTerm>'
        "</RegressionTable>"
    )


def _regression(method: str, targets: str = "") -> str:
    target = '<DataField name="y" optype="continuous" dataType="double"/>'
    return document(
        DICTIONARY.format(target=target)
        + f'<RegressionModel functionName="regression" normalizationMethod="{method}">{SCHEMA}{targets}'
        + _table(0.2, 0.5)
        + "</RegressionModel>"
    )


def _classifier(method: str, labels: list[str], empty_last: bool = False) -> str:
    values = "".join(f'<Value value="{v}"/>' for v in labels)
    target = f'<DataField name="y" optype="categorical" dataType="string">{values}</DataField>'
    outputs = "".join(
        f'<OutputField name="p_{v}" optype="continuous" dataType="double" feature="probability" value="{v}"/>'
        for v in labels
    )
    tables = [_table(0.1 * i - 0.2, 0.4 + 0.3 * i, v) for i, v in enumerate(labels)]
    if empty_last:
        tables[-1] = f'<RegressionTable intercept="0" targetCategory="{labels[-1]}"/>'
    return document(
        DICTIONARY.format(target=target)
        + f'<RegressionModel functionName="classification" normalizationMethod="{method}">{SCHEMA}'
        + f"<Output>{outputs}</Output>"
        + "".join(tables)
        + "</RegressionModel>"
    )


ROWS = random_rows(INPUTS, 60, seed=3)


@pytest.mark.parametrize("method", ["none", "softmax", "logit", "exp", "probit", "cloglog", "loglog", "cauchit"])
def test_regression_normalizations_equal_jpmml(jpmml, tmp_path, method):
    assert_rows_match(jpmml, tmp_path, _regression(method), ROWS)


@pytest.mark.parametrize("method", ["none", "logit", "probit", "cloglog", "loglog", "cauchit", "softmax", "simplemax"])
def test_binary_classification_equals_jpmml(jpmml, tmp_path, method):
    assert_rows_match(jpmml, tmp_path, _classifier(method, ["yes", "no"]), ROWS)


def test_binary_softmax_with_an_empty_second_table_is_a_logit_as_in_jpmml(jpmml, tmp_path):
    assert_rows_match(jpmml, tmp_path, _classifier("softmax", ["yes", "no"], empty_last=True), ROWS)


@pytest.mark.parametrize("method", ["none", "softmax", "simplemax", "logit"])
def test_multiclass_classification_equals_jpmml(jpmml, tmp_path, method):
    assert_rows_match(jpmml, tmp_path, _classifier(method, ["a", "b", "c"]), ROWS)


def test_a_multiclass_probit_is_refused_as_jpmml_refuses_it():
    with pytest.raises(NotCompilable, match="probit"):
        compile_pmml(_classifier("probit", ["a", "b", "c"]))


@pytest.mark.parametrize(
    "target",
    [
        '<Target field="y" rescaleFactor="2.5" rescaleConstant="-1.25"/>',
        '<Target field="y" min="-0.5" max="0.75" rescaleFactor="3"/>',
        '<Target field="y" rescaleFactor="10" castInteger="round"/>',
        '<Target field="y" rescaleFactor="10" castInteger="floor"/>',
        '<Target field="y" rescaleFactor="10" castInteger="ceiling"/>',
        '<Target field="y" rescaleConstant="1"><TargetValue defaultValue="42"/></Target>',
    ],
)
def test_regression_targets_equal_jpmml(jpmml, tmp_path, target):
    assert_rows_match(jpmml, tmp_path, _regression("none", f"<Targets>{target}</Targets>"), ROWS)


def test_classification_prior_probabilities_answer_missing_inputs_as_in_jpmml(jpmml, tmp_path):
    text = _classifier("softmax", ["a", "b", "c"]).replace(
        "<Output>",
        '<Targets><Target field="y"><TargetValue value="a" priorProbability="0.2"/>'
        '<TargetValue value="b" priorProbability="0.5"/><TargetValue value="c" priorProbability="0.3"/>'
        "</Target></Targets><Output>",
    )
    rows = [*ROWS, {"x1": None, "x2": 1.0, "c": "red"}]
    assert_rows_match(jpmml, tmp_path, text, rows)
