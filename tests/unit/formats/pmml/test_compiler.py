"""The compiled PMML engine against pypmml, its oracle: same scores, labels and probabilities.

Every comparison scores the same rows with ``PmmlModel(engine="numpy")`` and
``PmmlModel(engine="pypmml")`` and requires agreement within 1e-9.
"""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from serving.cli import main
from serving.core.model import BatchScores, ModelDescriptor, ModelType
from serving.errors import ConfigError, ModelLoadError
from serving.formats import descriptor_from_path, load_model
from serving.formats.artifacts import resolve_artifact
from serving.formats.pmml.compiler import NotCompilable, compile_pmml
from serving.formats.pmml.model import ENGINE_ENV, PmmlModel
from serving.records import wine
from serving.training.examples import train_models
from tests.support.reference import PMML_FILES, PMML_FOREST, PMML_LINEAR, PMML_TREE

TOLERANCE = 1e-9


def _pmml(path: Path, engine: str | None = None) -> PmmlModel:
    descriptor = descriptor_from_path(path, ModelType.PMML)
    return PmmlModel(descriptor, resolve_artifact(descriptor), engine=engine)


def _from_text(text: str, engine: str | None, fields: str) -> PmmlModel:
    descriptor = ModelDescriptor(
        name="handmade", data_type="wine", model_type=ModelType.PMML, version="1", metadata={"feature_names": fields}
    )
    return PmmlModel(descriptor, text.encode(), engine=engine)


def _assert_same(got: BatchScores, want: BatchScores) -> float:
    """Fail unless labels, scores and probabilities agree within TOLERANCE; return the largest difference."""
    assert got.labels == want.labels
    np.testing.assert_allclose(got.scores, want.scores, atol=TOLERANCE, rtol=0)  # NaN matches NaN only
    if want.probabilities is None:
        assert got.probabilities is None
        return float(np.nanmax(np.abs(got.scores - want.scores), initial=0.0))
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=TOLERANCE, rtol=0)
    return float(max(np.nanmax(np.abs(got.scores - want.scores), initial=0.0),
                     np.max(np.abs(got.probabilities - want.probabilities), initial=0.0)))  # fmt: skip


def _compare(make, rows: np.ndarray) -> float:
    compiled, oracle = make("numpy"), make("pypmml")
    try:
        assert (compiled.engine, oracle.engine) == ("numpy", "pypmml")
        return _assert_same(compiled.score_batch(rows), oracle.score_batch(rows))
    finally:
        oracle.close()


# --------------------------------------------------------------------------- the reference and trained models


@pytest.mark.parametrize("path", PMML_FILES, ids=lambda p: p.stem)
def test_reference_pmml_compiles_and_matches_pypmml_on_every_row(path, wine_data):
    assert _compare(lambda engine: _pmml(path, engine), wine_data.features) <= TOLERANCE


@pytest.fixture(scope="module")
def trained_pmml(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The PMML files ``serving.training.examples`` writes with nyoka (trained once for this module)."""
    out = tmp_path_factory.mktemp("trained")
    artifacts = train_models(wine.reference_csv(), out, seed=7, epochs=1)
    paths = [a.path for a in artifacts if a.model_type == "pmml"]
    assert {p.name for p in paths} == {"wine_linear_regression.pmml", "wine_decision_tree.pmml"}
    return paths


def test_trained_pmml_compiles_and_matches_pypmml_on_every_row(trained_pmml, wine_data):
    for path in trained_pmml:
        assert _pmml(path).engine == "numpy", path.name
        assert _compare(lambda engine, path=path: _pmml(path, engine), wine_data.features) <= TOLERANCE, path.name


@pytest.mark.parametrize("path", PMML_FILES, ids=lambda p: p.stem)
def test_one_record_per_call_equals_the_batch(path, wine_data):
    # Small batches walk the trees in Python, big ones level by level in NumPy.
    model = _pmml(path, "numpy")
    rows = wine_data.features[::40]
    batch = model.score_batch(rows)
    singles = [model.score(row) for row in rows]
    np.testing.assert_array_equal([s.score for s in singles], batch.scores)
    if batch.probabilities is not None:
        np.testing.assert_array_equal([s.probabilities for s in singles], batch.probabilities)


def _thresholds(path: Path) -> list[tuple[str, float]]:
    root = ET.parse(path).getroot()
    found = {
        (e.get("field"), float(e.get("value")))
        for e in root.iter()
        if e.tag.endswith("SimplePredicate") and e.get("value") is not None
    }
    return sorted(found)


@pytest.mark.parametrize("path", [PMML_TREE, PMML_FOREST], ids=lambda p: p.stem)
def test_rows_exactly_on_split_thresholds_match_pypmml(path, wine_data):
    column = {wine.FEATURE_NAMES[i].replace("_", " ").lower(): i for i in range(wine.N_FEATURES)}
    bases = wine_data.features[[0, 100, 800, 1500]]
    rows = []
    for field, value in _thresholds(path):
        for base in bases:
            for x in (value, np.nextafter(value, np.inf), np.nextafter(value, -np.inf)):
                row = base.copy()
                row[column[field.lower()]] = x
                rows.append(row)
    rows = np.asarray(rows)
    assert _compare(lambda engine: _pmml(path, engine), rows) <= TOLERANCE
    if path == PMML_TREE:
        # The rows do sit on the boundaries: the tree splits "<= t" against "> t", and one ulp
        # above t changes some predictions.
        scores = _pmml(path, "numpy").score_batch(rows).scores.reshape(-1, 3)
        assert np.any(scores[:, 0] != scores[:, 1])


def test_the_comparison_fails_when_the_compiled_model_is_wrong(wine_data):
    # Move one split of the reference tree: compiled from the tampered text, it must disagree.
    text = PMML_TREE.read_text()
    tampered = text.replace('operator="lessOrEqual" value="10.2"', 'operator="lessOrEqual" value="10.6"', 1)
    assert tampered != text
    wrong = _from_text(tampered, "numpy", ",".join(wine.FEATURE_NAMES))
    oracle = _pmml(PMML_TREE, "pypmml")
    try:
        with pytest.raises(AssertionError):
            _assert_same(wrong.score_batch(wine_data.features), oracle.score_batch(wine_data.features))
    finally:
        oracle.close()


# --------------------------------------------------------------------------- engine choice and fallback

NAIVE_BAYES = """<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>
<DataDictionary>
  <DataField name="alcohol" optype="continuous" dataType="double"/>
  <DataField name="pH" optype="continuous" dataType="double"/>
  <DataField name="quality" optype="categorical" dataType="string"><Value value="5"/><Value value="6"/></DataField>
</DataDictionary>
<NaiveBayesModel functionName="classification" threshold="0.001">
  <MiningSchema><MiningField name="alcohol"/><MiningField name="pH"/>
    <MiningField name="quality" usageType="target"/></MiningSchema>
  <BayesInputs>
    <BayesInput fieldName="alcohol"><TargetValueStats>
      <TargetValueStat value="5"><GaussianDistribution mean="9.9" variance="0.6"/></TargetValueStat>
      <TargetValueStat value="6"><GaussianDistribution mean="10.6" variance="1.1"/></TargetValueStat>
    </TargetValueStats></BayesInput>
    <BayesInput fieldName="pH"><TargetValueStats>
      <TargetValueStat value="5"><GaussianDistribution mean="3.30" variance="0.02"/></TargetValueStat>
      <TargetValueStat value="6"><GaussianDistribution mean="3.32" variance="0.03"/></TargetValueStat>
    </TargetValueStats></BayesInput>
  </BayesInputs>
  <BayesOutput fieldName="quality"><TargetValueCounts>
    <TargetValueCount value="5" count="681"/><TargetValueCount value="6" count="638"/>
  </TargetValueCounts></BayesOutput>
</NaiveBayesModel></PMML>"""


def test_an_uncompilable_model_falls_back_to_pypmml(wine_data):
    with pytest.raises(NotCompilable, match="NaiveBayesModel"):
        compile_pmml(NAIVE_BAYES)
    model = _from_text(NAIVE_BAYES, None, ",".join(wine.FEATURE_NAMES))
    try:
        assert model.engine == "pypmml" and "NaiveBayesModel" in model.engine_note
        scores = model.score_batch(wine_data.features)
        assert scores.labels == ("5", "6") and set(np.unique(scores.scores)) <= {5.0, 6.0}
    finally:
        model.close()
    with pytest.raises(ModelLoadError, match="cannot be compiled"):
        _from_text(NAIVE_BAYES, "numpy", ",".join(wine.FEATURE_NAMES))


def test_an_unsupported_construct_in_a_supported_model_falls_back_too(wine_data):
    # pypmml never finds an xor true; the compiler refuses xor rather than copy that.
    xor = PMML_TREE.read_text().replace(
        '<SimplePredicate field="alcohol" operator="lessOrEqual" value="10.2"/>',
        '<CompoundPredicate booleanOperator="xor"><True/>'
        '<SimplePredicate field="alcohol" operator="lessOrEqual" value="10.2"/></CompoundPredicate>',
        1,
    )
    model = _from_text(xor, None, ",".join(wine.FEATURE_NAMES))
    try:
        assert model.engine == "pypmml" and "xor" in model.engine_note
        assert len(model.score_batch(wine_data.features[:5])) == 5
    finally:
        model.close()


def test_engine_defaults_to_numpy_and_the_environment_can_force_pypmml(monkeypatch):
    descriptor = descriptor_from_path(PMML_LINEAR, ModelType.PMML)
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    assert load_model(descriptor).engine == "numpy"
    monkeypatch.setenv(ENGINE_ENV, "pypmml")
    forced = load_model(descriptor)
    try:
        assert forced.engine == "pypmml" and forced.engine_note == "requested"
    finally:
        forced.close()
    monkeypatch.setenv(ENGINE_ENV, "jvm")
    with pytest.raises(ConfigError, match="auto, numpy, pypmml"):
        load_model(descriptor)


def test_the_engine_is_logged_once_at_load(caplog):
    with caplog.at_level("INFO", logger="modelserving.formats.pmml"):
        _pmml(PMML_LINEAR)
    records = [r for r in caplog.records if r.getMessage() == "pmml engine"]
    assert len(records) == 1 and records[0].engine == "numpy"


# --------------------------------------------------------------------------- transformations, ties, NaN

STANDARDISED_REGRESSION = """<PMML xmlns="http://www.dmg.org/PMML-4_3" version="4.3"><Header/>
<DataDictionary>
  <DataField name="alcohol" optype="continuous" dataType="double"/>
  <DataField name="sulphates" optype="continuous" dataType="double"/>
  <DataField name="volatile acidity" optype="continuous" dataType="double"/>
  <DataField name="quality" optype="continuous" dataType="double"/>
</DataDictionary>
<TransformationDictionary>
  <DerivedField name="z_alcohol" optype="continuous" dataType="double">
    <Apply function="/"><Apply function="-"><FieldRef field="alcohol"/><Constant dataType="double">10.42</Constant>
    </Apply><Constant dataType="double">1.0656</Constant></Apply>
  </DerivedField>
  <DerivedField name="n_sulphates" optype="continuous" dataType="double">
    <NormContinuous field="sulphates"><LinearNorm orig="0.4" norm="0"/><LinearNorm orig="0.7" norm="0.5"/>
      <LinearNorm orig="1.2" norm="1"/></NormContinuous>
  </DerivedField>
</TransformationDictionary>
<RegressionModel functionName="regression" normalizationMethod="exp">
  <MiningSchema><MiningField name="alcohol"/><MiningField name="sulphates"/><MiningField name="volatile acidity"/>
    <MiningField name="quality" usageType="target"/></MiningSchema>
  <LocalTransformations>
    <DerivedField name="log_va" optype="continuous" dataType="double">
      <Apply function="ln"><FieldRef field="volatile acidity"/></Apply></DerivedField>
    <DerivedField name="mix" optype="continuous" dataType="double">
      <Apply function="max"><FieldRef field="z_alcohol"/><Apply function="*"><FieldRef field="log_va"/>
      <Constant dataType="double">-1.5</Constant></Apply><Apply function="pow"><FieldRef field="n_sulphates"/>
      <Constant dataType="integer">2</Constant></Apply></Apply></DerivedField>
  </LocalTransformations>
  <RegressionTable intercept="1.6">
    <NumericPredictor name="z_alcohol" coefficient="0.09"/><NumericPredictor name="n_sulphates" coefficient="0.2"/>
    <NumericPredictor name="log_va" coefficient="-0.1" exponent="2"/><NumericPredictor name="mix" coefficient="0.01"/>
  </RegressionTable>
</RegressionModel></PMML>"""


def test_derived_fields_match_pypmml(wine_data):
    model = _from_text(STANDARDISED_REGRESSION, None, ",".join(wine.FEATURE_NAMES))
    assert model.engine == "numpy"
    make = lambda engine: _from_text(STANDARDISED_REGRESSION, engine, ",".join(wine.FEATURE_NAMES))  # noqa: E731
    assert _compare(make, wine_data.features) <= TOLERANCE


def _leaf_forest(labels: list[str], datatype: str, tied: tuple[str, str], missing: str | None) -> str:
    """Two one-leaf trees averaged: ``tied`` share the probability mass; ``missing`` is absent from one leaf."""
    mining = '<MiningSchema><MiningField name="x0"/><MiningField name="y" usageType="target"/></MiningSchema>'

    def tree(drop: str | None) -> str:
        entries = "".join(
            f'<ScoreDistribution value="{v}" recordCount="{1 if v in tied else 0}"/>' for v in labels if v != drop
        )
        root = f'<Node score="{labels[0]}"><True/>{entries}</Node>'
        return f'<TreeModel functionName="classification">{mining}{root}</TreeModel>'

    values = "".join(f'<Value value="{v}"/>' for v in labels)
    return (
        '<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/><DataDictionary>'
        '<DataField name="x0" optype="continuous" dataType="double"/>'
        f'<DataField name="y" optype="categorical" dataType="{datatype}">{values}</DataField></DataDictionary>'
        f'<MiningModel functionName="classification">{mining}<Segmentation multipleModelMethod="average">'
        f"<Segment><True/>{tree(None)}</Segment><Segment><True/>{tree(missing)}</Segment>"
        "</Segmentation></MiningModel></PMML>"
    )


@pytest.mark.parametrize(
    ("labels", "datatype"),
    [
        (["a", "b", "c"], "string"),
        (["5", "6", "7", "4", "8", "3"], "string"),
        (["x1", "Quality", "g", "10", "e", "5", "h"], "string"),
        (["3", "4", "5", "6", "7", "8"], "integer"),
        (["-1", "65536", "3000000000", "12", "0"], "integer"),
        (["1.5", "0.25", "-3.5", "7.0", "1e-3", "100.125"], "double"),
    ],
)
def test_ties_and_missing_probabilities_resolve_as_pypmml_does(labels, datatype):
    # The winner of an ensemble is Scala's maxBy over a Map: its iteration order (insertion up to
    # four classes, hash order above) breaks ties, and a NaN probability beats every number.
    rnd = random.Random(len(labels))
    cases = [(tuple(rnd.sample(labels, 2)), None) for _ in range(2)]
    cases += [(tuple(rnd.sample(labels, 2)), rnd.choice(labels)) for _ in range(2)]
    for tied, missing in cases:
        text = _leaf_forest(labels, datatype, tied, missing)
        assert _compare(lambda engine, text=text: _from_text(text, engine, "x0"), np.zeros((1, 1))) <= TOLERANCE


# --------------------------------------------------------------------------- random documents


class _RandomPmml:
    """Random small PMML documents over four inputs, built from what the compiler claims to support."""

    GRID = (-2.0, -1.0, 0.0, 0.5, 1.0, 3.0)
    LABELS = {
        "string": ["a", "b", "c", "d", "e", "5", "10"],
        "integer": ["3", "4", "5", "6", "7", "8", "100"],
        "double": ["1.5", "2.0", "0.25", "-3.5", "7.0", "0.1"],
    }

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.function = self.r.choice(["classification", "classification", "regression"])
        self.datatype = self.r.choice(list(self.LABELS))
        self.labels = self.r.sample(self.LABELS[self.datatype], self.r.choice([2, 3, 5, 6]))
        self.fields = ["x0", "x1", "x2", "x3"]

    def schema(self, target: bool = True) -> str:
        fields = "".join(f'<MiningField name="x{i}"/>' for i in range(4))
        return f"<MiningSchema>{fields}" + ('<MiningField name="y" usageType="target"/>' * target) + "</MiningSchema>"

    def derived(self) -> str:
        r, out = self.r, []
        for i in range(r.choice([0, 1, 2])):
            a, b = r.choice(self.fields), r.choice(self.fields)
            expr = r.choice([
                f'<Apply function="+"><FieldRef field="{a}"/><FieldRef field="{b}"/></Apply>',
                f'<Apply function="/"><FieldRef field="{a}"/><FieldRef field="{b}"/></Apply>',
                f'<Apply function="ln"><FieldRef field="{a}"/></Apply>',
                f'<Apply function="round"><FieldRef field="{a}"/></Apply>',
                f'<NormContinuous field="{a}"><LinearNorm orig="-1" norm="0"/>'
                '<LinearNorm orig="2" norm="1"/></NormContinuous>',
            ])  # fmt: skip
            out.append(f'<DerivedField name="d{i}" optype="continuous" dataType="double">{expr}</DerivedField>')
            self.fields.append(f"d{i}")
        return f"<TransformationDictionary>{''.join(out)}</TransformationDictionary>" if out else ""

    def predicate(self, depth: int = 0) -> str:
        r, field = self.r, self.r.choice(self.fields)
        roll = r.random()
        if roll < 0.7 or depth:
            op = r.choice(
                ["lessThan", "lessOrEqual", "greaterThan", "greaterOrEqual", "equal", "notEqual", "isMissing"]
            )
            value = "" if op == "isMissing" else f' value="{r.choice(self.GRID)}"'
            return f'<SimplePredicate field="{field}" operator="{op}"{value}/>'
        if roll < 0.8:
            values = " ".join(str(v) for v in r.sample(self.GRID, 3))
            op = r.choice(["isIn", "isNotIn"])
            return f'<SimpleSetPredicate field="{field}" booleanOperator="{op}"><Array type="real" n="3">{values}</Array></SimpleSetPredicate>'  # noqa: E501
        if roll < 0.93:
            op = r.choice(["and", "or"])
            return (
                f'<CompoundPredicate booleanOperator="{op}">{self.predicate(1)}{self.predicate(1)}</CompoundPredicate>'
            )
        return r.choice(["<True/>", "<False/>"])

    def node(self, depth: int, predicate: str) -> str:
        r = self.r
        score = ""
        if r.random() < 0.9:
            score = f' score="{r.choice(self.labels) if self.function == "classification" else r.choice(self.GRID)}"'
        entries = ""
        if self.function == "classification":
            present = [v for v in self.labels if r.random() < 0.8] or self.labels[:1]
            entries = "".join(
                f'<ScoreDistribution value="{v}" recordCount="{r.choice([0, 1, 1, 2])}"/>' for v in present
            )
        kids = ""
        if depth < 3 and r.random() < 0.7:
            kids = "".join(self.node(depth + 1, self.predicate()) for _ in range(r.choice([2, 2, 3])))
        return f"<Node{score}>{predicate}{entries}{kids}</Node>"

    def tree(self, target: bool = True) -> str:
        r = self.r
        mvs = r.choice(["none", "lastPrediction", "nullPrediction"])
        ntc = r.choice(["returnNullPrediction", "returnLastPrediction"])
        return (
            f'<TreeModel functionName="{self.function}" missingValueStrategy="{mvs}" noTrueChildStrategy="{ntc}">'
            f"{self.schema(target)}{self.node(0, '<True/>')}</TreeModel>"
        )

    def table(self, category: str | None) -> str:
        r = self.r
        predictors = "".join(
            f'<NumericPredictor name="{f}" coefficient="{r.choice([0.5, 1.0, -1.0, 2.0])}"/>'
            for f in r.sample(self.fields, 2)
        )
        target = f' targetCategory="{category}"' if category is not None else ""
        return f'<RegressionTable intercept="{r.choice([0.0, 0.5])}"{target}>{predictors}</RegressionTable>'

    def regression(self) -> str:
        r = self.r
        if self.function == "regression":
            method = r.choice(["none", "logit", "exp"])
            return f'<RegressionModel functionName="regression" normalizationMethod="{method}">{self.schema()}{self.table(None)}</RegressionModel>'  # noqa: E501
        method = r.choice(["softmax", "simplemax", "none"] + ["logit"] * (len(self.labels) == 2))
        tables = "".join(self.table(v) for v in self.labels)
        return f'<RegressionModel functionName="classification" normalizationMethod="{method}">{self.schema()}{tables}</RegressionModel>'  # noqa: E501

    def mining(self) -> str:
        r = self.r
        methods = (
            ["average", "weightedAverage", "sum"] if self.function == "regression" else ["average", "majorityVote"]
        )
        segments = []
        for _ in range(r.choice([2, 3])):
            predicate = "<True/>" if r.random() < 0.7 else self.predicate(1)
            # JPMML-SparkML's forest members name no target; votes over those only work for strings.
            target = self.function == "regression" or self.datatype != "string" or r.random() < 0.5
            member = self.tree(target) if r.random() < 0.7 else self.regression()
            segments.append(f'<Segment weight="{r.choice([0.5, 1.0])}">{predicate}{member}</Segment>')
        return (
            f'<MiningModel functionName="{self.function}">{self.schema()}'
            f'<Segmentation multipleModelMethod="{r.choice(methods)}">{"".join(segments)}</Segmentation></MiningModel>'
        )

    def document(self) -> str:
        inputs = "".join(f'<DataField name="x{i}" optype="continuous" dataType="double"/>' for i in range(4))
        if self.function == "classification":
            values = "".join(f'<Value value="{v}"/>' for v in self.labels)
            target = f'<DataField name="y" optype="categorical" dataType="{self.datatype}">{values}</DataField>'
        else:
            target = '<DataField name="y" optype="continuous" dataType="double"/>'
        derived = self.derived()
        model = self.r.choice([self.tree, self.regression, self.mining, self.mining])()
        return (
            f'<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/><DataDictionary>{inputs}{target}'
            f"</DataDictionary>{derived}{model}</PMML>"
        )


def test_random_documents_match_pypmml():
    grid = np.array(np.meshgrid(*[_RandomPmml.GRID] * 4)).reshape(4, -1).T
    compiled = 0
    for seed in range(30):
        text = _RandomPmml(seed).document()
        try:
            compile_pmml(text)
        except NotCompilable:
            continue
        compiled += 1
        make = lambda engine, text=text: _from_text(text, engine, "x0,x1,x2,x3")  # noqa: E731
        try:
            _compare(make, grid)
        except AssertionError as exc:
            pretty = re.sub("><", ">\n<", text)
            raise AssertionError(f"seed {seed} differs from pypmml:\n{exc}\n{pretty}") from None
    assert compiled >= 20


# --------------------------------------------------------------------------- bench-models


def test_bench_models_reports_both_pmml_engines(capsys):
    assert main(["bench-models", "--model", f"{PMML_LINEAR}:pmml", "--single", "3", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "pypmml" in out and "vs pypmml" in out
