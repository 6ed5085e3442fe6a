"""MiningModel semantics against JPMML-Evaluator: every compiled method, missing predictions, ties, chains.

Each document is scored by the compiled engine and by JPMML on rows with
missing values (NaN), and must agree by the contract of test_compiler.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from serving.formats.pmml.compiler import NotCompilable, compile_pmml
from tests.unit.formats.pmml.test_compiler import compiled_equals_jpmml
from tests.unit.formats.pmml.test_semantics_trees import NAN, ROWS, document, sd

P = '<SimplePredicate field="x0" operator="lessOrEqual" value="0"/>'
SCHEMA = (
    '<MiningSchema><MiningField name="x0"/><MiningField name="x1"/>'
    '<MiningField name="y" usageType="target"/></MiningSchema>'
)
INPUTS = '<MiningSchema><MiningField name="x0"/><MiningField name="x1"/></MiningSchema>'


def tree(nodes: str, function: str = "classification", schema: str = SCHEMA) -> str:
    return f'<TreeModel functionName="{function}" missingValueStrategy="nullPrediction">{schema}{nodes}</TreeModel>'


def leaf(score: str, **counts: float) -> str:
    """A tree that always ends in one leaf."""
    return tree(f'<Node score="{score}"><True/>{sd(**counts)}</Node>')


def maybe(score: str, **counts: float) -> str:
    """A tree with no prediction unless x0 <= 0."""
    return tree(f'<Node score="r"><True/>{sd(r=1)}<Node score="{score}">{P}{sd(**counts)}</Node></Node>')


def mining(method: str, segments: list[tuple[str, float, str]], function="classification", treatment="") -> str:
    body = "".join(f'<Segment weight="{w}">{p}{m}</Segment>' for p, w, m in segments)
    extra = f' missingPredictionTreatment="{treatment}"' if treatment else ""
    return (
        f'<MiningModel functionName="{function}">{SCHEMA}'
        f'<Segmentation multipleModelMethod="{method}"{extra}>{body}</Segmentation></MiningModel>'
    )


def regression_document(model: str) -> str:
    return document(model).replace(
        '<DataField name="y" optype="categorical" dataType="string"><Value value="a"/><Value value="b"/>'
        '<Value value="c"/><Value value="r"/></DataField>',
        '<DataField name="y" optype="continuous" dataType="double"/>',
    )


CLASSIFIERS = [("<True/>", 1.0, leaf("a", a=1, b=1, c=2)), ("<True/>", 2.0, maybe("b", a=1, b=3)),
               (P, 1.0, leaf("c", c=1, b=1)), ("<True/>", 0.5, leaf("c", b=1, c=3))]  # fmt: skip


def _combinations(methods: list[str]) -> list[tuple[str, str]]:
    """Every (method, missingPredictionTreatment) JPMML accepts (a modelChain may not skip segments)."""
    treatments = ["continue", "returnMissing", "skipSegment"]
    return [(m, t) for m in methods for t in treatments if (m, t) != ("modelChain", "skipSegment")]


@pytest.mark.parametrize(
    ("method", "treatment"),
    _combinations(["average", "weightedAverage", "majorityVote", "weightedMajorityVote", "selectFirst", "modelChain"]),
)
def test_classification_methods_and_missing_predictions_equal_jpmml(method, treatment, jpmml, tmp_path):
    text = document(mining(method, CLASSIFIERS, treatment=treatment))
    compiled_equals_jpmml(jpmml, tmp_path, text, ROWS)


def _value(v: float, guarded: bool = False) -> str:
    nodes = f'<Node score="{v}"><True/></Node>'
    if guarded:
        nodes = f'<Node score="0"><True/><Node score="{v}">{P}</Node></Node>'
    return tree(
        nodes,
        "regression",
        INPUTS.replace("</MiningSchema>", '<MiningField name="y" usageType="target"/></MiningSchema>'),
    )


REGRESSORS = [("<True/>", 1.0, _value(1)), ("<True/>", 2.0, _value(2)), ("<True/>", 0.5, _value(4, True)),
              (P, 1.0, _value(10)), ("<True/>", 1.5, _value(-3))]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "treatment"),
    _combinations(
        ["sum", "weightedSum", "average", "weightedAverage", "median", "weightedMedian", "selectFirst", "modelChain"]
    ),
)
def test_regression_methods_and_missing_predictions_equal_jpmml(method, treatment, jpmml, tmp_path):
    text = regression_document(mining(method, REGRESSORS, "regression", treatment))
    compiled_equals_jpmml(jpmml, tmp_path, text, ROWS)
    compiled_equals_jpmml(jpmml, tmp_path, text.replace('weight="2.0"', 'weight="2.5"'), ROWS)


def test_ties_go_to_the_label_mentioned_first_and_to_the_first_vote(jpmml, tmp_path):
    first = [("<True/>", 1.0, leaf("c", b=0, a=1)), ("<True/>", 1.0, leaf("c", a=0, b=1))]
    votes = [("<True/>", 1.0, leaf("b")), ("<True/>", 1.0, leaf("a"))]
    for method, segments in [("average", first), ("average", first[::-1]), ("majorityVote", votes),
                             ("majorityVote", votes[::-1])]:  # fmt: skip
        compiled_equals_jpmml(jpmml, tmp_path, document(mining(method, segments)), ROWS[:1])
    assert compile_pmml(document(mining("average", first))).predict(ROWS[:1]).scores[0] == 1.0  # b
    assert compile_pmml(document(mining("average", first[::-1]))).predict(ROWS[:1]).scores[0] == 0.0  # a


def _boosted(labels_type: str) -> str:
    """A boosted binary classifier as sklearn2pmml writes one: a decision function chained into a logit."""
    trees = "".join(
        f'<Segment><True/><TreeModel functionName="regression" missingValueStrategy="nullPrediction" '
        f'noTrueChildStrategy="returnLastPrediction">{INPUTS}<Node score="{s}"><True/>'
        f'<Node score="{s * 2}"><SimplePredicate field="x{k}" operator="lessOrEqual" value="0.5"/></Node>'
        f'<Node score="{-s}"><SimplePredicate field="x{k}" operator="greaterThan" value="0.5"/></Node></Node>'
        "</TreeModel></Segment>"
        for k, s in ((0, 0.7), (1, -0.4))
    )
    decision = (
        f'<MiningModel functionName="regression">{INPUTS}<Output><OutputField name="decisionFunction(1)" '
        'optype="continuous" dataType="double" isFinalResult="false"/></Output>'
        '<Targets><Target rescaleConstant="-0.69" rescaleFactor="0.1"/></Targets>'
        f'<Segmentation multipleModelMethod="sum" missingPredictionTreatment="returnMissing">{trees}'
        "</Segmentation></MiningModel>"
    )
    probabilities = "".join(
        f'<OutputField name="probability({v})" optype="continuous" dataType="double" feature="probability" '
        f'value="{v}"/>'
        for v in ("0", "1")
    )
    logit = (
        '<RegressionModel functionName="classification" normalizationMethod="logit"><MiningSchema>'
        '<MiningField name="y" usageType="target"/><MiningField name="decisionFunction(1)"/></MiningSchema>'
        f"<Output>{probabilities}</Output>"
        '<RegressionTable intercept="0.0" targetCategory="1"><NumericPredictor name="decisionFunction(1)" '
        'coefficient="1.0"/></RegressionTable><RegressionTable intercept="0.0" targetCategory="0"/>'
        "</RegressionModel>"
    )
    chain = (
        f'<MiningModel functionName="classification">{SCHEMA}<Segmentation multipleModelMethod="modelChain" '
        f'missingPredictionTreatment="returnMissing"><Segment><True/>{decision}</Segment>'
        f"<Segment><True/>{logit}</Segment></Segmentation></MiningModel>"
    )
    return document(chain, ("0", "1"), labels_type)


@pytest.mark.parametrize("labels_type", ["integer", "string"])
def test_a_boosted_classifier_chain_equals_jpmml(labels_type, jpmml, tmp_path):
    rows = np.array([[x0, x1] for x0 in (NAN, 0.0, 0.5, 1.0) for x1 in (NAN, 0.2, 0.9)])
    # JPMML's own probability outputs (of the chain's last member) are the oracle: with non-string
    # labels, probability fields added to the top-level MiningModel read 0 in JPMML.
    compiled_equals_jpmml(jpmml, tmp_path, _boosted(labels_type), rows, inject=False)
    assert compile_pmml(_boosted(labels_type)).model_element == "MiningModel"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (document(mining("max", CLASSIFIERS)), "max"),
        (document(mining("median", CLASSIFIERS)), "median"),
        (document(mining("sum", CLASSIFIERS)), "sum"),
        (document(mining("selectAll", CLASSIFIERS)), "selectAll"),
        (document(mining("modelChain", CLASSIFIERS, treatment="skipSegment")), "skipSegment"),
        (document(mining("selectFirst", [("<True/>", 1.0, leaf("a", a=1).replace('<MiningField name="y" usageType="target"/>', ""))])),  # noqa: E501
         "without a target"),
        (document(mining("average", [("<True/>", 1.0, mining("majorityVote", CLASSIFIERS, treatment="continue"))])),
         "nested vote"),
        (document(mining("average", [("<True/>", 1.0, tree('<Node score="a"><True/></Node>'))])),
         "without a ScoreDistribution"),
    ],
    ids=["max", "median", "sum", "selectAll", "chain-skipSegment", "selectFirst-targetless", "nested-vote",
         "average-no-distribution"],
)  # fmt: skip
def test_what_is_not_reproduced_is_refused(text, reason):
    with pytest.raises(NotCompilable, match=reason):
        compile_pmml(text)
