"""TreeModel semantics against JPMML-Evaluator: the walk with missing inputs, the strategies, the distributions.

Each document is scored by the compiled engine and by JPMML on rows with
missing values (NaN), and must agree by the contract of test_compiler.py.
Documents JPMML itself fails on, or whose semantics it does not implement, are
refused (``NotCompilable``) rather than scored some other way.
"""

from __future__ import annotations

import numpy as np
import pytest

from serving.formats.pmml.compiler import NotCompilable, compile_pmml
from tests.unit.formats.pmml.test_compiler import compiled_equals_jpmml

NAN = np.nan
#: x0 missing, x0 <= 0, x0 > 0; x1 missing or not.
ROWS = np.array([[NAN, 0.0], [-1.0, 0.0], [1.0, 0.0], [NAN, NAN], [-1.0, NAN], [0.0, 1.0]])
LE = '<SimplePredicate field="x0" operator="lessOrEqual" value="0"/>'
GT = '<SimplePredicate field="x0" operator="greaterThan" value="0"/>'


def document(model: str, labels: tuple[str, ...] = ("a", "b", "c", "r"), datatype: str = "string") -> str:
    """A document over inputs x0, x1 and a categorical target y around ``model``."""
    values = "".join(f'<Value value="{v}"/>' for v in labels)
    return (
        '<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/><DataDictionary>'
        '<DataField name="x0" optype="continuous" dataType="double"/>'
        '<DataField name="x1" optype="continuous" dataType="double"/>'
        f'<DataField name="y" optype="categorical" dataType="{datatype}">{values}</DataField>'
        f"</DataDictionary>{model}</PMML>"
    )


def tree(nodes: str, attributes: str = "") -> str:
    schema = (
        '<MiningSchema><MiningField name="x0"/><MiningField name="x1"/>'
        '<MiningField name="y" usageType="target"/></MiningSchema>'
    )
    return f'<TreeModel functionName="classification" {attributes}>{schema}{nodes}</TreeModel>'


def sd(**counts: float) -> str:
    return "".join(f'<ScoreDistribution value="{k}" recordCount="{v}"/>' for k, v in counts.items())


def split(first: str = LE, second: str = GT, root: str = "<True/>", root_score: str = ' score="r"') -> str:
    """A root (score r) with children n1 (score a) and n2 (score b), ``defaultChild`` n2."""
    return (
        f'<Node{root_score} defaultChild="n2">{root}{sd(a=1, b=1, c=2)}'
        f'<Node id="n1" score="a">{first}{sd(a=3, b=1)}</Node>'
        f'<Node id="n2" score="b">{second}{sd(b=3, c=1)}</Node></Node>'
    )


@pytest.mark.parametrize("missing", ["none", "lastPrediction", "nullPrediction", "defaultChild"])
@pytest.mark.parametrize("no_true_child", ["returnNullPrediction", "returnLastPrediction"])
def test_every_missing_value_and_no_true_child_strategy_equals_jpmml(missing, no_true_child, jpmml, tmp_path):
    attributes = f'missingValueStrategy="{missing}" noTrueChildStrategy="{no_true_child}"'
    compiled_equals_jpmml(jpmml, tmp_path, document(tree(split(), attributes)), ROWS)


def test_an_unknown_child_ends_the_walk_before_a_later_true_one(jpmml, tmp_path):
    # x0 missing: n1 is UNKNOWN; under nullPrediction that ends the walk although n2 is <True/>.
    for missing in ("none", "nullPrediction", "lastPrediction", "defaultChild"):
        text = document(tree(split(second="<True/>"), f'missingValueStrategy="{missing}"'))
        compiled_equals_jpmml(jpmml, tmp_path, text, ROWS)
    assert np.isnan(compile_pmml(document(tree(split(second="<True/>"), 'missingValueStrategy="nullPrediction"')))
                    .predict(ROWS[:1]).scores[0])  # fmt: skip


def test_the_root_predicate_is_evaluated(jpmml, tmp_path):
    for root in ("<False/>", LE, GT):
        compiled_equals_jpmml(jpmml, tmp_path, document(tree(split(root=root))), ROWS)


def test_return_last_prediction_needs_a_score_on_the_node(jpmml, tmp_path):
    text = document(
        tree(split(first="<False/>", second="<False/>", root_score=""), 'noTrueChildStrategy="returnLastPrediction"')
    )
    compiled_equals_jpmml(jpmml, tmp_path, text, ROWS)
    assert np.isnan(compile_pmml(text).predict(ROWS[1:2]).scores[0])


@pytest.mark.parametrize(
    "predicate",
    [
        '<SimplePredicate field="x0" operator="isMissing"/>',
        '<SimplePredicate field="x0" operator="isNotMissing"/>',
        f'<CompoundPredicate booleanOperator="xor">{LE}<SimplePredicate field="x1" operator="equal" value="0"/>'
        "</CompoundPredicate>",
        f'<CompoundPredicate booleanOperator="surrogate">{LE}'
        '<SimplePredicate field="x1" operator="lessOrEqual" value="0"/><False/></CompoundPredicate>',
        f'<CompoundPredicate booleanOperator="and">{LE}<SimplePredicate field="x1" operator="isMissing"/>'
        "</CompoundPredicate>",
        f'<CompoundPredicate booleanOperator="or">{LE}<SimplePredicate field="x1" operator="isMissing"/>'
        "</CompoundPredicate>",
        '<SimpleSetPredicate field="x0" booleanOperator="isNotIn"><Array type="real" n="2">-1 1</Array>'
        "</SimpleSetPredicate>",
    ],
    ids=["isMissing", "isNotMissing", "xor", "surrogate", "and", "or", "isNotIn"],
)
def test_predicates_on_missing_values_equal_jpmml(predicate, jpmml, tmp_path):
    for missing in ("none", "nullPrediction"):
        text = document(tree(split(first=predicate, second="<True/>"), f'missingValueStrategy="{missing}"'))
        compiled_equals_jpmml(jpmml, tmp_path, text, ROWS)


def test_distributions_are_normalised_and_the_score_is_the_label(jpmml, tmp_path):
    given = '<ScoreDistribution value="a" recordCount="1" probability="0.2"/>'
    given += '<ScoreDistribution value="b" recordCount="3" probability="0.3"/>'
    nodes = [
        f'<Node score="c" recordCount="10"><True/>{sd(a=1, b=3)}</Node>',  # by recordCount, not the Node's
        f'<Node score="c"><True/>{given}</Node>',  # probabilities summing to 0.5
        f'<Node score="a" recordCount="1"><True/>{sd(a=0.3333333333333333, b=0.6666666666666666)}</Node>',
    ]
    for node in nodes:
        compiled_equals_jpmml(jpmml, tmp_path, document(tree(node, 'splitCharacteristic="binarySplit"')), ROWS)
    assert compile_pmml(document(tree(nodes[0]))).predict(ROWS[:1]).scores[0] == 2.0  # c: the score, not b


def test_missing_value_penalty_changes_no_probability(jpmml, tmp_path):
    text = document(tree(split(), 'missingValueStrategy="lastPrediction" missingValuePenalty="0.5"'))
    compiled_equals_jpmml(jpmml, tmp_path, text, ROWS)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (document(tree(split(), 'missingValueStrategy="weightedConfidence"')), "weightedConfidence"),
        (document(tree(split(), 'missingValueStrategy="aggregateNodes"')), "aggregateNodes"),
        (document(tree('<Node score="a"><True/><Node><True/></Node></Node>')), "leaf Node without a score"),
        (document(tree(split(root_score=""), 'missingValueStrategy="lastPrediction"')), "every inner Node"),
        (document(tree(split().replace(' defaultChild="n2"', ""), 'missingValueStrategy="defaultChild"')),
         "defaultChild"),
        (document(tree('<Node score="a"><True/><ScoreDistribution value="a" recordCount="1" probability="1"/>'
                       '<ScoreDistribution value="b" recordCount="1"/></Node>')), "some ScoreDistributions"),
        (document(tree(f'<Node score="a"><True/>{sd(a=0, b=0)}</Node>')), "sums to 0"),
        (document(tree('<Node score="1"><True/></Node>'), ("1", "3000000000"), "integer"), "32-bit"),
    ],
    ids=["weightedConfidence", "aggregateNodes", "no-score", "lastPrediction-no-score", "no-defaultChild",
         "partial-probability", "zero-sum", "long-label"],
)  # fmt: skip
def test_what_jpmml_fails_on_or_does_not_implement_is_refused(text, reason):
    with pytest.raises(NotCompilable, match=reason):
        compile_pmml(text)
