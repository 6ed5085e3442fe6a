"""The compiled PMML engine against JPMML-Evaluator, its oracle: same values, labels and probabilities.

Every comparison scores the same rows with the compiled engine and with
JPMML-Evaluator (the ``jpmml`` fixture of tests/support/jpmml.py) and requires
regressors within 1e-9, and classifiers with the same winning label and every
probability within 1e-9. JPMML reports a classifier's probabilities through
OutputFields, so :func:`with_probability_outputs` gives the document one per
target value before JPMML reads it (which changes no prediction).
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from serving.cli import main
from serving.core.model import ModelDescriptor, ModelType
from serving.errors import ConfigError, ModelLoadError
from serving.formats import descriptor_from_path, load_model
from serving.formats.artifacts import resolve_artifact
from serving.formats.pmml.compiler import NotCompilable, compile_pmml
from serving.formats.pmml.model import ENGINE_ENV, PmmlModel
from serving.records import wine
from serving.training.examples import train_models
from tests.support.jpmml import Answers, OracleError
from tests.support.reference import PMML_FILES, PMML_FOREST, PMML_LINEAR, PMML_TREE

TOLERANCE = 1e-9
_MODEL_TAGS = ("MiningModel", "TreeModel", "RegressionModel", "NeuralNetwork", "NaiveBayesModel",
               "SupportVectorMachineModel", "NearestNeighborModel", "GeneralRegressionModel")  # fmt: skip


def with_probability_outputs(text: str) -> str:
    """``text`` with an OutputField per target value on its top-level classifier, so JPMML reports each probability."""
    root = ET.fromstring(text)
    namespace = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    ET.register_namespace("", namespace)
    ns = f"{{{namespace}}}" if namespace else ""
    model = next(c for c in root if c.tag.removeprefix(ns) in _MODEL_TAGS)
    if model.get("functionName") != "classification":
        return text
    schema = model.find(f"{ns}MiningSchema")
    target = next(f.get("name") for f in schema if f.get("usageType") in ("target", "predicted"))
    field = next(f for f in root.find(f"{ns}DataDictionary") if f.get("name") == target)
    output = model.find(f"{ns}Output")
    if output is None:
        output = ET.Element(f"{ns}Output")
        model.insert(list(model).index(schema) + 1, output)
    values = [v.get("value") for v in field if v.tag == f"{ns}Value" and v.get("property", "valid") == "valid"]
    for i, value in enumerate(values):
        attributes = {"name": f"oracle_probability_{i}", "optype": "continuous", "dataType": "double",
                      "feature": "probability", "value": value}  # fmt: skip
        ET.SubElement(output, f"{ns}OutputField", attributes)
    return ET.tostring(root, encoding="unicode")


def jpmml_answers(jpmml, tmp_path: Path, text: str, names: list[str], rows: np.ndarray, *, inject: bool = True):
    """JPMML's answers for ``rows`` (NaN: a missing value) of the document ``text`` with inputs ``names``.

    ``inject``: add the probability OutputFields (else the document's own are read).
    """
    path = tmp_path / f"oracle_{abs(hash(text))}_{inject}.pmml"
    path.write_text(with_probability_outputs(text) if inject else text)
    records = [{n: (None if np.isnan(v) else float(v)) for n, v in zip(names, row)} for row in rows]
    try:
        return _all_answers(jpmml, path, records)
    except OracleError:
        pass
    # JPMML fails some rows (an ensemble whose members were all skipped, say): the compiled
    # engine gives no prediction there, so those rows are expected to have none.
    description = jpmml.describe(path)  # raises if JPMML refuses the document itself
    rows_answers = []
    for record in records:
        try:
            rows_answers.append(_all_answers(jpmml, path, [record]))
        except OracleError:
            rows_answers.append(None)
    regression = description.function == "regression"
    predicted = [(np.nan if regression else None) if a is None else a.predicted[0] for a in rows_answers]
    probabilities = {
        label: np.asarray([np.nan if a is None else a.probabilities[label][0] for a in rows_answers])
        for label in description.probability_fields
    }
    return Answers(description, np.asarray(predicted, dtype=np.float64 if regression else object), probabilities)


def _all_answers(jpmml, path: Path, records: list[dict]):
    """``jpmml.answers``, failing when rows are lost (jpmml_evaluator's evaluateAll drops the rows that fail)."""
    answers = jpmml.answers(path, records)
    if len(answers.predicted) != len(records):
        raise OracleError(f"JPMML answered {len(answers.predicted)} of {len(records)} rows")
    return answers


def assert_equals_jpmml(answers, scores: np.ndarray, probabilities: np.ndarray | None, labels: tuple[str, ...]) -> None:
    """Fail unless the served ``scores``/``probabilities`` equal JPMML's ``answers`` by the contract."""
    if answers.description.function == "regression":
        np.testing.assert_allclose(scores, answers.predicted, atol=TOLERANCE, rtol=0)  # NaN matches NaN only
        return
    numeric = all(_is_number(label) for label in labels)
    want = np.asarray(
        [np.nan if p is None else (float(p) if numeric else labels.index(p)) for p in answers.predicted], dtype=float
    )
    np.testing.assert_array_equal(scores, want, err_msg="winning labels differ")
    assert probabilities is not None
    for j, label in enumerate(labels):
        expected = np.nan_to_num(answers.probabilities[label], nan=0.0)  # no prediction: reported as 0
        np.testing.assert_allclose(probabilities[:, j], expected, atol=TOLERANCE, rtol=0, err_msg=f"P({label})")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def compiled_equals_jpmml(jpmml, tmp_path: Path, text: str, rows: np.ndarray, *, inject: bool = True) -> None:
    """Compile ``text`` and require it to equal JPMML on ``rows`` (columns in the compiled input order)."""
    compiled = compile_pmml(text)
    got = compiled.predict(rows)
    answers = jpmml_answers(jpmml, tmp_path, text, compiled.input_names, rows, inject=inject)
    assert_equals_jpmml(answers, got.scores, got.probabilities, compiled.labels)


def _pmml(path: Path, engine: str | None = None) -> PmmlModel:
    descriptor = descriptor_from_path(path, ModelType.PMML)
    return PmmlModel(descriptor, resolve_artifact(descriptor), engine=engine)


def _from_text(text: str, engine: str | None, fields: str) -> PmmlModel:
    descriptor = ModelDescriptor(
        name="handmade", data_type="wine", model_type=ModelType.PMML, version="1", metadata={"feature_names": fields}
    )
    return PmmlModel(descriptor, text.encode(), engine=engine)


def _served_equals_jpmml(jpmml, tmp_path: Path, model: PmmlModel, text: str, features: np.ndarray) -> None:
    served = model.score_batch(features)
    records = np.asarray([list(model.record_dict(row).values()) for row in features], dtype=np.float64)
    answers = jpmml_answers(jpmml, tmp_path, text, list(model.record_dict(features[0])), records)
    assert_equals_jpmml(answers, served.scores, served.probabilities, served.labels)


# --------------------------------------------------------------------------- the reference and trained models


@pytest.mark.parametrize("path", PMML_FILES, ids=lambda p: p.stem)
def test_reference_pmml_compiles_and_equals_jpmml_on_every_row(path, wine_data, jpmml, tmp_path):
    model = _pmml(path, "numpy")
    _served_equals_jpmml(jpmml, tmp_path, model, path.read_text(), wine_data.features)


def test_the_reference_forest_scores_5_on_row_0_with_jpmmls_distribution(wine_data, jpmml):
    served = _pmml(PMML_FOREST, "numpy").score_batch(wine_data.features[:1])
    assert served.labels == ("3", "4", "5", "6", "7", "8") and served.scores[0] == 5.0
    # The distribution the issue quotes (JPMML's, rounded), and JPMML's exact values.
    np.testing.assert_allclose(served.probabilities[0], [0.0075, 0.0417, 0.6685, 0.2675, 0.0148, 0.0], atol=5e-5)
    record = dict(zip(wine.FEATURE_NAMES, map(float, wine_data.features[0])))
    exact = jpmml.answers(PMML_FOREST, [record]).probabilities
    np.testing.assert_allclose(served.probabilities[0], [exact[c][0] for c in served.labels], atol=TOLERANCE, rtol=0)


@pytest.fixture(scope="module")
def trained_pmml(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The PMML files ``serving.training.examples`` writes with nyoka (trained once for this module)."""
    out = tmp_path_factory.mktemp("trained")
    artifacts = train_models(wine.reference_csv(), out, seed=7, epochs=1)
    paths = [a.path for a in artifacts if a.model_type == "pmml"]
    assert {p.name for p in paths} == {"wine_linear_regression.pmml", "wine_decision_tree.pmml"}
    return paths


def test_trained_pmml_compiles_and_equals_jpmml_on_every_row(trained_pmml, wine_data, jpmml, tmp_path):
    for path in trained_pmml:
        model = _pmml(path)
        assert model.engine == "numpy", path.name
        _served_equals_jpmml(jpmml, tmp_path, model, path.read_text(), wine_data.features)


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
def test_rows_exactly_on_split_thresholds_and_missing_values_equal_jpmml(path, wine_data, jpmml, tmp_path):
    column = {name.lower(): i for i, name in enumerate(wine.FEATURE_NAMES)}
    bases = wine_data.features[[0, 100, 800, 1500]]
    rows = []
    for field, value in _thresholds(path):
        for base in bases:
            for x in (value, np.nextafter(value, np.inf), np.nextafter(value, -np.inf), np.nan):
                row = base.copy()
                row[column[field.lower()]] = x
                rows.append(row)
    rows = np.asarray(rows)
    model = _pmml(path, "numpy")
    _served_equals_jpmml(jpmml, tmp_path, model, path.read_text(), rows)
    if path == PMML_TREE:
        # The rows do sit on the boundaries: the tree splits "<= t" against "> t", and one ulp
        # above t changes some predictions; a missing value ends some walks without a prediction.
        scores = model.score_batch(rows).scores.reshape(-1, 4)
        assert np.any(scores[:, 0] != scores[:, 1]) and np.isnan(scores[:, 3]).any()


def test_the_comparison_fails_when_the_compiled_model_is_wrong(wine_data, jpmml, tmp_path):
    # Move one split of the reference tree: compiled from the tampered text, it must disagree with JPMML.
    text = PMML_TREE.read_text()
    tampered = text.replace('operator="lessOrEqual" value="10.2"', 'operator="lessOrEqual" value="10.6"', 1)
    assert tampered != text
    wrong = _from_text(tampered, "numpy", ",".join(wine.FEATURE_NAMES))
    with pytest.raises(AssertionError):
        _served_equals_jpmml(jpmml, tmp_path, wrong, text, wine_data.features)


# --------------------------------------------------------------------------- engine choice and fallback

RULE_SET = """<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>
<DataDictionary>
  <DataField name="alcohol" optype="continuous" dataType="double"/>
  <DataField name="quality" optype="categorical" dataType="string"><Value value="5"/><Value value="6"/></DataField>
</DataDictionary>
<RuleSetModel functionName="classification">
  <MiningSchema><MiningField name="alcohol"/><MiningField name="quality" usageType="target"/></MiningSchema>
  <RuleSet defaultScore="5" defaultConfidence="1"><RuleSelectionMethod criterion="firstHit"/>
    <SimpleRule score="6" confidence="1">
      <SimplePredicate field="alcohol" operator="greaterThan" value="10.5"/></SimpleRule>
  </RuleSet>
</RuleSetModel></PMML>"""


def test_an_uncompilable_model_falls_back_to_pypmml(wine_data):
    with pytest.raises(NotCompilable, match="RuleSetModel"):
        compile_pmml(RULE_SET)
    model = _from_text(RULE_SET, None, ",".join(wine.FEATURE_NAMES))
    try:
        assert model.engine == "pypmml" and "RuleSetModel" in model.engine_note
        scores = model.score_batch(wine_data.features)
        assert set(np.unique(scores.scores)) == {5.0, 6.0}
    finally:
        model.close()
    with pytest.raises(ModelLoadError, match="cannot be compiled"):
        _from_text(RULE_SET, "numpy", ",".join(wine.FEATURE_NAMES))


def test_an_unsupported_construct_in_a_supported_model_falls_back_too(wine_data):
    # JPMML does not implement weightedConfidence, so there is no oracle to compile it against.
    text = PMML_TREE.read_text().replace("<TreeModel ", '<TreeModel missingValueStrategy="weightedConfidence" ', 1)
    model = _from_text(text, None, ",".join(wine.FEATURE_NAMES))
    try:
        assert model.engine == "pypmml" and "weightedConfidence" in model.engine_note
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


# --------------------------------------------------------------------------- transformations and ties

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


def test_derived_fields_equal_jpmml(wine_data, jpmml, tmp_path):
    model = _from_text(STANDARDISED_REGRESSION, None, ",".join(wine.FEATURE_NAMES))
    assert model.engine == "numpy"
    _served_equals_jpmml(jpmml, tmp_path, model, STANDARDISED_REGRESSION, wine_data.features)


def _leaf_forest(labels: list[str], datatype: str, tied: tuple[str, str], missing: str | None) -> str:
    """Two one-leaf trees averaged: ``tied`` share the probability mass; ``missing`` is absent from one leaf."""
    mining = '<MiningSchema><MiningField name="x0"/><MiningField name="y" usageType="target"/></MiningSchema>'

    def tree(drop: str | None, order: list[str]) -> str:
        entries = "".join(
            f'<ScoreDistribution value="{v}" recordCount="{1 if v in tied else 0}"/>' for v in order if v != drop
        )
        root = f'<Node score="{labels[0]}"><True/>{entries}</Node>'
        return f'<TreeModel functionName="classification">{mining}{root}</TreeModel>'

    values = "".join(f'<Value value="{v}"/>' for v in labels)
    return (
        '<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/><DataDictionary>'
        '<DataField name="x0" optype="continuous" dataType="double"/>'
        f'<DataField name="y" optype="categorical" dataType="{datatype}">{values}</DataField></DataDictionary>'
        f'<MiningModel functionName="classification">{mining}<Segmentation multipleModelMethod="average">'
        f"<Segment><True/>{tree(None, labels[::-1])}</Segment><Segment><True/>{tree(missing, labels)}</Segment>"
        "</Segmentation></MiningModel></PMML>"
    )


@pytest.mark.parametrize(
    ("labels", "datatype"),
    [
        (["a", "b", "c"], "string"),
        (["5", "6", "7", "4", "8", "3"], "string"),
        (["x1", "Quality", "g", "10", "e", "5", "h"], "string"),
        (["3", "4", "5", "6", "7", "8"], "integer"),
        (["-1", "65536", "2147483647", "12", "0"], "integer"),
        (["1.5", "0.25", "-3.5", "7.0", "100.125"], "double"),
    ],
)
def test_ties_and_absent_labels_resolve_as_jpmml_does(labels, datatype, jpmml, tmp_path):
    # A tie goes to the label the members mention first; a label a leaf omits counts as 0 in the average.
    rnd = random.Random(len(labels))
    cases = [(tuple(rnd.sample(labels, 2)), None) for _ in range(2)]
    cases += [(tuple(rnd.sample(labels, 2)), rnd.choice(labels)) for _ in range(2)]
    for tied, missing in cases:
        compiled_equals_jpmml(jpmml, tmp_path, _leaf_forest(labels, datatype, tied, missing), np.zeros((1, 1)))


# --------------------------------------------------------------------------- bench-models


def test_bench_models_reports_both_pmml_engines(capsys):
    assert main(["bench-models", "--model", f"{PMML_LINEAR}:pmml", "--single", "3", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "pypmml" in out and "vs pypmml" in out
