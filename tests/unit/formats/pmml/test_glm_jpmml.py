"""GeneralRegressionModel compiled to NumPy against JPMML-Evaluator: link functions, factors, covariates, classes."""

from __future__ import annotations

import pytest

from serving.formats.pmml.compiler import NotCompilable, compile_pmml
from tests.unit.formats.pmml._rows_vs_jpmml import assert_rows_match, document, random_rows

ROWS = random_rows({"x1": (0.1, 2.0), "x2": (-1.5, 1.5), "c": ["u", "v", "w", "q"]}, 60, seed=11)


def _dictionary(target: str) -> str:
    return (
        '<DataDictionary><DataField name="x1" optype="continuous" dataType="double"/>'
        '<DataField name="x2" optype="continuous" dataType="float"/>'
        '<DataField name="c" optype="categorical" dataType="string"><Value value="u"/><Value value="v"/>'
        f'<Value value="w"/></DataField>{target}</DataDictionary>'
    )


SCHEMA = (
    '<MiningSchema><MiningField name="y" usageType="target"/><MiningField name="x1"/><MiningField name="x2"/>'
    '<MiningField name="c" invalidValueTreatment="asIs"/></MiningSchema>'
)
LISTS = (
    '<ParameterList><Parameter name="p0" label="Intercept"/><Parameter name="p1"/><Parameter name="p2"/>'
    '<Parameter name="p3"/><Parameter name="p4"/><Parameter name="p5"/></ParameterList>'
    '<FactorList><Predictor name="c"/></FactorList>'
    '<CovariateList><Predictor name="x1"/><Predictor name="x2"/></CovariateList>'
    '<PPMatrix><PPCell value="u" predictorName="c" parameterName="p1"/>'
    '<PPCell value="v" predictorName="c" parameterName="p2"/>'
    '<PPCell value="1" predictorName="x1" parameterName="p3"/>'
    '<PPCell value="2" predictorName="x2" parameterName="p4"/>'
    '<PPCell value="w" predictorName="c" parameterName="p5"/><PPCell value="1" predictorName="x2" parameterName="p5"/>'
    "</PPMatrix>"
)


def _cells(scale: float, category: str | None = None) -> str:
    target = f' targetCategory="{category}"' if category else ""
    betas = [0.2, 0.3, -0.15, 0.4, -0.05, 0.25]
    return "".join(f'<PCell parameterName="p{i}"{target} beta="{b * scale}"/>' for i, b in enumerate(betas))


def _regression(attributes: str) -> str:
    return document(
        _dictionary('<DataField name="y" optype="continuous" dataType="double"/>')
        + f'<GeneralRegressionModel functionName="regression" {attributes}>{SCHEMA}{LISTS}'
        + f"<ParamMatrix>{_cells(1.0)}</ParamMatrix></GeneralRegressionModel>"
    )


@pytest.mark.parametrize(
    "attributes",
    [
        'modelType="regression"',
        'modelType="generalLinear"',
        'modelType="generalizedLinear" linkFunction="identity"',
        'modelType="generalizedLinear" linkFunction="log" distribution="poisson"',
        'modelType="generalizedLinear" linkFunction="log" offsetValue="0.5" trialsValue="3"',
        'modelType="generalizedLinear" linkFunction="logit" distribution="binomial"',
        'modelType="generalizedLinear" linkFunction="probit"',
        'modelType="generalizedLinear" linkFunction="cloglog"',
        'modelType="generalizedLinear" linkFunction="loglog"',
        'modelType="generalizedLinear" linkFunction="logc"',
        'modelType="generalizedLinear" linkFunction="power" linkParameter="-1" distribution="gamma"',
        'modelType="generalizedLinear" linkFunction="power" linkParameter="0.5"',
        'modelType="generalizedLinear" linkFunction="power" linkParameter="0"',
        'modelType="generalizedLinear" linkFunction="oddspower" linkParameter="0.3"',
        'modelType="generalizedLinear" linkFunction="negbin" distParameter="0.5"',
    ],
)
def test_glm_regression_equals_jpmml(jpmml, tmp_path, attributes):
    assert_rows_match(jpmml, tmp_path, _regression(attributes), ROWS)


def _classifier(model_type: str, labels: list[str], cells: str, extra: str = "") -> str:
    values = "".join(f'<Value value="{v}"/>' for v in labels)
    outputs = "".join(
        f'<OutputField name="p_{v}" optype="continuous" dataType="double" feature="probability" value="{v}"/>'
        for v in labels
    )
    return document(
        _dictionary(f'<DataField name="y" optype="categorical" dataType="string">{values}</DataField>')
        + f'<GeneralRegressionModel functionName="classification" modelType="{model_type}" {extra}>{SCHEMA}'
        + f"<Output>{outputs}</Output>{LISTS}<ParamMatrix>{cells}</ParamMatrix></GeneralRegressionModel>"
    )


def test_multinomial_logistic_equals_jpmml(jpmml, tmp_path):
    # "lo" has no cells: JPMML takes it as the reference category and moves it last.
    text = _classifier("multinomialLogistic", ["lo", "mid", "hi"], _cells(1.5, "hi") + _cells(-0.8, "mid"))
    assert_rows_match(jpmml, tmp_path, text, ROWS)


def test_multinomial_logistic_with_a_declared_reference_equals_jpmml(jpmml, tmp_path):
    text = _classifier("multinomialLogistic", ["a", "b"], _cells(2.0, "b"), extra='targetReferenceCategory="a"')
    assert_rows_match(jpmml, tmp_path, text, ROWS)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_binary_generalized_linear_classification_equals_jpmml(jpmml, tmp_path, link):
    text = _classifier(
        "generalizedLinear", ["no", "yes"], _cells(1.2), extra=f'linkFunction="{link}" targetReferenceCategory="no"'
    )
    assert_rows_match(jpmml, tmp_path, text, ROWS)


def test_ordinal_multinomial_is_refused_with_its_name():
    with pytest.raises(NotCompilable, match="ordinalMultinomial"):
        compile_pmml(_classifier("ordinalMultinomial", ["a", "b"], _cells(1.0)))
