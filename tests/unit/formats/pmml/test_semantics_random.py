"""Random PMML documents in the compiled subset, scored by the compiled engine and by JPMML-Evaluator.

The generator writes only what the compiler claims to support (so every
document must compile): trees with every missingValueStrategy JPMML
implements, both noTrueChildStrategies, binary and multi splits, predicates
with missing inputs, ScoreDistributions by probability or recordCount; and
MiningModels with every compiled method and missingPredictionTreatment, nested
segments and model chains. Rows include missing values.
"""

from __future__ import annotations

import itertools
import random
import re

import numpy as np

from serving.formats.pmml.compiler import NotCompilable, compile_pmml
from tests.unit.formats.pmml.test_compiler import compiled_equals_jpmml

# --------------------------------------------------------------------------- random documents


class _RandomPmml:
    """Random small PMML documents over four inputs, built only from what the compiler claims to support."""

    GRID = (-2.0, -1.0, 0.0, 0.5, 1.0, 3.0, np.nan)
    LABELS = {
        "string": ["a", "b", "c", "d", "e", "5", "10"],
        "integer": ["3", "4", "5", "6", "7", "8", "100"],
        "double": ["1.5", "2.0", "0.25", "-3.5", "7.0", "0.1"],
    }
    METHODS = {
        "regression": ["sum", "weightedSum", "average", "weightedAverage", "median", "weightedMedian",
                       "selectFirst", "modelChain"],
        "classification": ["average", "weightedAverage", "majorityVote", "weightedMajorityVote",
                           "selectFirst", "modelChain"],
    }  # fmt: skip

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.function = self.r.choice(["classification", "classification", "regression"])
        self.datatype = self.r.choice(list(self.LABELS))
        self.labels = self.r.sample(self.LABELS[self.datatype], self.r.choice([2, 3, 5, 6]))
        self.fields = ["x0", "x1", "x2", "x3"]
        self.ids = itertools.count()

    def schema(self, target: bool = True, chained: tuple[str, ...] = ()) -> str:
        fields = "".join(f'<MiningField name="{f}"/>' for f in ["x0", "x1", "x2", "x3", *chained])
        return f"<MiningSchema>{fields}" + ('<MiningField name="y" usageType="target"/>' * target) + "</MiningSchema>"

    def derived(self) -> str:
        r, out = self.r, []
        for i in range(r.choice([0, 1, 2])):
            a, b = r.choice(self.fields), r.choice(self.fields)
            expr = r.choice([
                f'<Apply function="+"><FieldRef field="{a}"/><FieldRef field="{b}"/></Apply>',
                f'<Apply function="*"><FieldRef field="{a}"/><Constant dataType="double">-0.5</Constant></Apply>',
                f'<NormContinuous field="{a}"><LinearNorm orig="-1" norm="0"/>'
                '<LinearNorm orig="2" norm="1"/></NormContinuous>',
            ])  # fmt: skip
            out.append(f'<DerivedField name="d{i}" optype="continuous" dataType="double">{expr}</DerivedField>')
        names = [f"d{i}" for i in range(len(out))]
        self.derived_names = names
        return f"<TransformationDictionary>{''.join(out)}</TransformationDictionary>" if out else ""

    def predicate(self, fields: list[str], depth: int = 0) -> str:
        r, field = self.r, self.r.choice(fields)
        roll = r.random()
        if roll < 0.65 or depth:
            op = r.choice(["lessThan", "lessOrEqual", "greaterThan", "greaterOrEqual", "equal", "notEqual",
                           "isMissing", "isNotMissing"])  # fmt: skip
            value = "" if op.endswith("Missing") else f' value="{r.choice(self.GRID[:-1])}"'
            return f'<SimplePredicate field="{field}" operator="{op}"{value}/>'
        if roll < 0.75:
            values = " ".join(str(v) for v in r.sample(self.GRID[:-1], 3))
            op = r.choice(["isIn", "isNotIn"])
            return f'<SimpleSetPredicate field="{field}" booleanOperator="{op}"><Array type="real" n="3">{values}</Array></SimpleSetPredicate>'  # noqa: E501
        if roll < 0.93:
            op = r.choice(["and", "or", "xor", "surrogate"])
            parts = "".join(self.predicate(fields, 1) for _ in range(r.choice([2, 3])))
            return f'<CompoundPredicate booleanOperator="{op}">{parts}</CompoundPredicate>'
        return r.choice(["<True/>", "<False/>"])

    def node(self, tree: dict, depth: int, predicate: str) -> str:
        r = self.r
        node_id = f"n{next(self.ids)}"
        leaf = not (depth < 3 and r.random() < 0.7)
        kids, default = "", ""
        if not leaf:
            count = 2 if tree["binary"] else r.choice([2, 2, 3])
            children = [self.node(tree, depth + 1, self.predicate(tree["fields"])) for _ in range(count)]
            kids = "".join(children)
            if tree["mvs"] == "defaultChild":
                default = (
                    f' defaultChild="{r.choice(re.findall(r"<Node id=.(n[0-9]+)", "".join(c[:20] for c in children)))}"'
                )
        score = ""
        if leaf or tree["mvs"] == "lastPrediction" or r.random() < 0.5:
            value = r.choice(self.labels) if tree["function"] == "classification" else r.choice(self.GRID[:-1])
            score = f' score="{value}"'
        entries = ""
        if tree["function"] == "classification":
            # (the node's own score always among them, as exporters write it)
            present = [v for v in self.labels if r.random() < 0.8 or f' score="{v}"' == score] or self.labels[:1]
            r.shuffle(present)
            if r.random() < 0.3:
                weights = [r.choice([0.1, 0.2, 0.5]) for _ in present]
                entries = "".join(f'<ScoreDistribution value="{v}" recordCount="1" probability="{w}"/>'
                                  for v, w in zip(present, weights))  # fmt: skip
            else:
                counts = [r.choice([0, 1, 1, 2]) for _ in present]
                counts[0] = counts[0] or 1
                entries = "".join(
                    f'<ScoreDistribution value="{v}" recordCount="{c}"/>' for v, c in zip(present, counts)
                )
        return f'<Node id="{node_id}"{score}{default}>{predicate}{entries}{kids}</Node>'

    def tree(self, target: bool = True, function: str | None = None, fields: list[str] | None = None) -> str:
        r = self.r
        tree = {
            "mvs": r.choice(["none", "lastPrediction", "nullPrediction", "defaultChild"]),
            "binary": r.random() < 0.5,
            "function": function or self.function,
            "fields": fields or self.fields,
        }
        ntc = r.choice(["returnNullPrediction", "returnLastPrediction"])
        split = "binarySplit" if tree["binary"] else "multiSplit"
        root = "<True/>" if r.random() < 0.8 else self.predicate(tree["fields"], 1)
        penalty = ' missingValuePenalty="0.8"' if r.random() < 0.2 else ""
        chained = tuple(f for f in tree["fields"] if f.startswith("f"))
        return (
            f'<TreeModel functionName="{tree["function"]}" missingValueStrategy="{tree["mvs"]}" '
            f'noTrueChildStrategy="{ntc}" splitCharacteristic="{split}"{penalty}>'
            f"{self.schema(target, chained)}{self.node(tree, 0, root)}</TreeModel>"
        )

    def regression(self, output: str = "") -> str:
        """A regression RegressionModel (with ``output``, an OutputField, for a chain)."""
        r = self.r
        predictors = "".join(
            f'<NumericPredictor name="{f}" coefficient="{r.choice([0.5, 1.0, -1.0, 2.0])}"/>'
            for f in r.sample(self.fields, 2)
        )
        table = f'<RegressionTable intercept="{r.choice([0.0, 0.5])}">{predictors}</RegressionTable>'
        out = f'<Output><OutputField name="{output}" optype="continuous" dataType="double"/></Output>' if output else ""
        target = self.function == "regression"
        return f'<RegressionModel functionName="regression">{self.schema(target)}{out}{table}</RegressionModel>'

    def mining(self, depth: int = 0) -> str:
        r = self.r
        methods = self.METHODS[self.function]
        if self.datatype != "string" and self.function == "classification":
            # JPMML's probability outputs of selectFirst and modelChain read 0 unless the labels are strings
            methods = [m for m in methods if m not in ("selectFirst", "modelChain")]
        method = r.choice(methods)
        treatment = r.choice(["continue", "returnMissing"] + ["skipSegment"] * (method != "modelChain"))
        if depth and "ajorityVote" in method and treatment == "continue":
            treatment = "returnMissing"  # a nested vote under continue is refused (see mining.py)
        segments, chained = [], []
        for i in range(r.choice([2, 3, 4])):
            predicate = "<True/>" if r.random() < 0.7 else self.predicate(self.fields, 1)
            if method == "modelChain" and i == 0:
                chained.append(f"f{depth}")
                segments.append(f"<Segment><True/>{self.regression(output=chained[-1])}</Segment>")
                continue
            fields = self.fields + chained
            # JPMML passes on a member selected as a whole only if it names the target (and, for a
            # classifier, is not a MiningModel): the compiler refuses the others.
            whole = method in ("selectFirst", "modelChain")
            if depth == 0 and r.random() < 0.15:
                member = self.mining(depth + 1)
            elif self.function == "regression" and r.random() < 0.2 and not chained:
                member = self.regression()
            else:
                member = self.tree(target=whole or r.random() < 0.7, fields=fields)
            weight = r.choice([0.5, 1.0, 2.0])
            segments.append(f'<Segment weight="{weight}">{predicate}{member}</Segment>')
        return (
            f'<MiningModel functionName="{self.function}">{self.schema()}'
            f'<Segmentation multipleModelMethod="{method}" missingPredictionTreatment="{treatment}">'
            f"{''.join(segments)}</Segmentation></MiningModel>"
        )

    def document(self) -> str:
        inputs = "".join(f'<DataField name="x{i}" optype="continuous" dataType="double"/>' for i in range(4))
        if self.function == "classification":
            values = "".join(f'<Value value="{v}"/>' for v in self.labels)
            target = f'<DataField name="y" optype="categorical" dataType="{self.datatype}">{values}</DataField>'
        else:
            target = '<DataField name="y" optype="continuous" dataType="double"/>'
        derived = self.derived()
        self.fields = self.fields + self.derived_names
        model = self.r.choice([self.tree, self.mining, self.mining])()
        return (
            f'<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/><DataDictionary>{inputs}{target}'
            f"</DataDictionary>{derived}{model}</PMML>"
        )


def test_random_documents_equal_jpmml(jpmml, tmp_path):
    rng = np.random.default_rng(0)
    grid = np.array(np.meshgrid(*[_RandomPmml.GRID] * 4)).reshape(4, -1).T
    grid = grid[rng.choice(len(grid), 400, replace=False)]
    compiled = 0
    for seed in range(100):
        text = _RandomPmml(seed).document()
        try:
            compile_pmml(text)
        except NotCompilable as exc:
            raise AssertionError(f"seed {seed}: the generator writes only supported PMML, yet: {exc}") from None
        compiled += 1
        try:
            compiled_equals_jpmml(jpmml, tmp_path, text, grid)
        except AssertionError as exc:
            pretty = re.sub("><", ">\n<", text)
            raise AssertionError(f"seed {seed} differs from JPMML:\n{exc}\n{pretty}") from None
    assert compiled == 100
