"""``modelserving score``: JSON lines in input order; errors are one line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from serving.cli import main
from serving.records import wine
from tests.support.reference import PMML_FOREST, PMML_LINEAR, TF_GRAPH


def test_score_writes_one_line_per_row_in_order(capsys, tmp_path, wine_data, jpmml):
    """The reference forest, scored by the CLI, gives JPMML-Evaluator's winning label and distribution."""
    rows = tmp_path / "some.csv"
    rows.write_text("\n".join(";".join(str(v) for v in r) for r in wine_data.features[:25]))
    assert main(["score", "--model", str(PMML_FOREST), "--type", "pmml", "--data", str(rows)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["row"] for x in lines] == list(range(25))
    oracle = jpmml.answers(PMML_FOREST, [dict(zip(wine.FEATURE_NAMES, r.tolist())) for r in wine_data.features[:25]])
    assert [x["score"] for x in lines] == [float(label) for label in oracle.predicted]
    assert lines[0]["score"] == 5.0
    for i, line in enumerate(lines):
        got = dict(zip(line["labels"], line["probabilities"]))
        assert got == pytest.approx({k: v[i] for k, v in oracle.probabilities.items()}, abs=1e-9, rel=0)


def test_score_classifier_gives_probabilities(capsys, wine_data):
    assert main(["score", "--model", str(TF_GRAPH), "--type", "tensorflow", "--data", str(wine.reference_csv())]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 1599
    assert all(len(x["probabilities"]) == 9 and x["score"] == np.argmax(x["probabilities"]) for x in lines)


@pytest.mark.parametrize(
    "args",
    [
        ["score", "--model", "missing.pb", "--type", "tensorflow", "--data", str(wine.reference_csv())],
        ["score", "--model", str(PMML_LINEAR), "--type", "pmml", "--data", "/dev/null"],
        ["score", "--model", str(TF_GRAPH), "--type", "pmml", "--data", str(wine.reference_csv())],
    ],
    ids=["missing-model", "empty-data", "wrong-type"],
)
def test_cli_errors_are_one_line_and_non_zero(args):
    proc = subprocess.run([sys.executable, "-m", "serving.cli", *args], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("modelserving score: error:"), proc.stderr
