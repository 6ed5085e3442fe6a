"""Shared by the test_families_* modules: score a PMML document compiled and with JPMML-Evaluator, and compare.

The contract (issue 15): regressors within 1e-9; classifiers the same winning
label and every probability JPMML declares within 1e-9. JPMML is the oracle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from serving.formats.pmml.compiler import compile_pmml
from serving.formats.pmml.compiler.document import CompiledPmml
from tests.support.jpmml import Oracle

TOLERANCE = 1e-9
DATA = Path(__file__).with_name("data")


def _label_texts(compiled: CompiledPmml, scores: np.ndarray) -> list[str | None]:
    """The served scores back as label strings (None: no prediction), by ``PmmlModel``'s result rule."""
    labels = list(compiled.labels)
    try:
        values = [float(label) for label in labels]
    except ValueError:
        return [None if np.isnan(s) else labels[int(s)] for s in scores]
    return [None if np.isnan(s) else labels[values.index(float(s))] for s in scores]


def assert_matches_jpmml(jpmml: Oracle, path: Path, rows: np.ndarray) -> CompiledPmml:
    """Compile ``path``, score ``rows`` (NaN: missing; an object matrix may hold strings) and require JPMML's answers.

    Returns the compiled model.
    """
    compiled = compile_pmml(path.read_bytes())
    got = compiled.predict(rows)
    records = [{n: v if isinstance(v, str) or v is None else float(v) for n, v in zip(compiled.input_names, r)}
               for r in rows]  # fmt: skip
    answers = jpmml.answers(path, records)
    if compiled.function == "regression":
        np.testing.assert_allclose(got.scores, answers.predicted, rtol=0, atol=TOLERANCE)  # NaN matches NaN
        return compiled
    expected = [None if p is None else str(p) for p in answers.predicted]
    predicted = _label_texts(compiled, got.scores)
    wrong = [i for i, (g, e) in enumerate(zip(predicted, expected)) if g != e]
    assert not wrong, f"{len(wrong)} labels differ, first row {wrong[0]}: {predicted[wrong[0]]} != {expected[wrong[0]]}"
    for label, want in answers.probabilities.items():
        column = got.probabilities[:, list(compiled.labels).index(label)]
        scored = ~np.isnan(want)  # JPMML gives no probability where it gives no prediction
        np.testing.assert_allclose(column[scored], want[scored], rtol=0, atol=TOLERANCE, err_msg=label)
    return compiled


def write(tmp_path: Path, name: str, text: str) -> Path:
    """Write a handmade document for the oracle (which reads paths)."""
    path = tmp_path / f"{name}.pmml"
    path.write_text(text)
    return path


def data_dictionary(inputs: list[str], target: str, labels: list[str] | None) -> str:
    """A DataDictionary of continuous double inputs and a target (categorical strings, or a continuous double)."""
    fields = "".join(f'<DataField name="{n}" optype="continuous" dataType="double"/>' for n in inputs)
    if labels is None:
        return f'<DataDictionary>{fields}<DataField name="{target}" optype="continuous" dataType="double"/>' + (
            "</DataDictionary>"
        )
    values = "".join(f'<Value value="{v}"/>' for v in labels)
    target_field = f'<DataField name="{target}" optype="categorical" dataType="string">{values}</DataField>'
    return f"<DataDictionary>{fields}{target_field}</DataDictionary>"


def mining_schema(inputs: list[str], target: str) -> str:
    """A MiningSchema of the inputs and the target."""
    active = "".join(f'<MiningField name="{n}"/>' for n in inputs)
    return f'<MiningSchema><MiningField name="{target}" usageType="target"/>{active}</MiningSchema>'


def probability_outputs(labels: list[str]) -> str:
    """An Output with a probability field per label."""
    fields = "".join(
        f'<OutputField name="p_{v}" optype="continuous" dataType="double" feature="probability" value="{v}"/>'
        for v in labels
    )
    return f"<Output>{fields}</Output>"


def document(body: str) -> str:
    """A PMML 4.4 document around ``body`` (the DataDictionary and the model)."""
    return f'<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>{body}</PMML>'
