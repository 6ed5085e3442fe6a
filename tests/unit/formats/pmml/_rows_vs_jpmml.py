"""Shared by test_inputs_*, test_regression_* and test_glm_*: a handmade PMML scored compiled and by JPMML, row by row.

Rows are dicts ``{input field: value}`` (None or NaN: missing; strings for
string fields). Each row is evaluated by JPMML-Evaluator on its own, so a row
it rejects (an invalid value under ``returnInvalid``, say) is expected to have
no prediction from the compiled engine. The rule is issue 15's: regressors
within 1e-9; classifiers the same winning label and every probability JPMML
declares within 1e-9.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from serving.formats.pmml.compiler import compile_pmml
from serving.formats.pmml.compiler.document import CompiledPmml
from tests.support.jpmml import Oracle, OracleError

TOLERANCE = 1e-9
HEADER = '<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>'


def document(body: str) -> str:
    """A PMML 4.4 document around ``body`` (DataDictionary, transformations and the model)."""
    return f"{HEADER}{body}</PMML>"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def jpmml_rows(jpmml: Oracle, path: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """JPMML's result fields per row; None for a row it rejects."""
    out: list[dict[str, Any] | None] = []
    for row in rows:
        try:
            out.append(jpmml.evaluate(path, [{k: (None if _missing(v) else v) for k, v in row.items()}])[0])
        except OracleError:
            out.append(None)
    return out


def assert_rows_match(jpmml: Oracle, tmp_path: Path, text: str, rows: list[dict[str, Any]]) -> CompiledPmml:
    """Compile ``text`` and require JPMML's answer on every row; return the compiled document."""
    path = tmp_path / "model.pmml"
    path.write_text(text)
    compiled = compile_pmml(text)
    matrix = np.array([[row.get(name) for name in compiled.input_names] for row in rows], dtype=object)
    if not any(isinstance(v, str) for v in matrix.ravel()):
        matrix = np.array([[np.nan if _missing(v) else float(v) for v in r] for r in matrix], dtype=np.float64)
    got = compiled.predict(matrix)
    expected = jpmml_rows(jpmml, path, rows)
    target = jpmml.describe(path).target
    scored = sum(w is not None and w[target] is not None for w in expected)
    assert scored * 3 >= len(rows), f"JPMML scores only {scored} of {len(rows)} rows: the test rows are poor"
    probability_fields = jpmml.describe(path).probability_fields
    labels = list(compiled.labels)
    for i, (row, want) in enumerate(zip(rows, expected)):
        where = f"row {i} {row}: JPMML {want}"
        if compiled.function == "regression":
            value = None if want is None else want[target]
            if value is None:
                assert math.isnan(got.scores[i]), f"{where}, compiled {got.scores[i]}"
            else:
                assert abs(got.scores[i] - value) <= TOLERANCE, f"{where}, compiled {got.scores[i]}"
            continue
        label = None if want is None or want[target] is None else str(want[target])
        score = got.scores[i]
        served = None if math.isnan(score) else _label_of(labels, score)
        assert served == label, f"{where}, compiled label {served}"
        if label is None:
            continue
        for value, field in probability_fields.items():
            expect = want[field]
            served_p = got.probabilities[i, labels.index(value)] if value in labels else 0.0
            assert expect is not None and abs(served_p - expect) <= TOLERANCE, (
                f"{where}, compiled p({value})={served_p}"
            )
    return compiled


def _label_of(labels: list[str], score: float) -> str:
    try:
        values = [float(label) for label in labels]
    except ValueError:
        return labels[int(score)]
    return labels[values.index(float(score))]


def random_rows(names: dict[str, Any], n: int, seed: int, missing: float = 0.1) -> list[dict[str, Any]]:
    """``n`` rows: per name, a list of choices (strings) or a (low, high) range; some values missing."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        row: dict[str, Any] = {}
        for name, spec in names.items():
            if rng.random() < missing:
                row[name] = None
            elif isinstance(spec, list):
                row[name] = spec[int(rng.integers(len(spec)))]
            else:
                row[name] = float(rng.uniform(*spec))
        rows.append(row)
    return rows
