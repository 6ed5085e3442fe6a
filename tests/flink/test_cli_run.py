"""``modelserving run``: the CLI runs the same job graph and writes results, dead letters and stats."""

from __future__ import annotations

import json

import pytest

from serving.cli import main
from tests.support.reference import PMML_LINEAR, TF_SAVED

pytestmark = pytest.mark.flink


def test_run_swaps_models_every_n_records(tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    code = main(
        [
            "run",
            "partitioned",
            "--model",
            f"{PMML_LINEAR}:pmml",
            "--model",
            f"{TF_SAVED}:tensorflow_saved",
            "--swap-every",
            "700",
            "--parallelism",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["record_id"] for r in rows] == [str(i) for i in range(1599)]
    fields = {"model_name", "model_version", "data_type", "record_id", "record_ts", "score", "duration_ns"}
    assert set(rows[0]) >= fields
    assert {r["model_name"] for r in rows[:700]} == {"winequalityLinearRegression"}
    assert {r["model_name"] for r in rows[700:]} == {"wine_savedmodel"}
    assert (tmp_path / "results.jsonl.deadletters").read_text() == ""
    stats = [json.loads(line) for line in (tmp_path / "results.jsonl.stats").read_text().splitlines()]
    assert {s["name"] for s in stats} == {"winequalityLinearRegression", "wine_savedmodel"}
    assert "1599 results" in capsys.readouterr().err


def test_run_with_a_missing_model_is_one_line_error(tmp_path, capsys):
    code = main(["run", "keyed", "--model", str(tmp_path / "nope.pmml") + ":pmml", "--out", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"modelserving run: error: model path {tmp_path / 'nope.pmml'} does not exist"]


def test_run_serves_a_data_type_its_schema_declares(tmp_path):
    """``run --schema``: diabetes rows (a CSV whose header has other columns, in another order) scored by ONNX.

    The record ids are the 0-based rows (the schema names no id field) and
    every score is scikit-learn's own ``predict`` for that row.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    frame = load_diabetes(as_frame=True, scaled=False).frame
    features = [c for c in frame.columns if c != "target"]
    schema = {"type": "record", "name": "diabetes", "fields": [{"name": c, "type": "double"} for c in features]}
    (tmp_path / "diabetes.avsc").write_text(json.dumps(schema))
    frame[["target", *reversed(features)]].to_csv(tmp_path / "diabetes.csv", index=False)
    oracle = LinearRegression().fit(frame[features].to_numpy(), frame["target"].to_numpy())
    onnx = convert_sklearn(oracle, initial_types=[("input", FloatTensorType([None, len(features)]))], target_opset=17)
    (tmp_path / "linear.onnx").write_bytes(onnx.SerializeToString())
    out = tmp_path / "results.jsonl"
    code = main(
        [
            "run", "keyed", "--schema", str(tmp_path / "diabetes.avsc"), "--data", str(tmp_path / "diabetes.csv"),
            "--model", f"{tmp_path / 'linear.onnx'}:onnx", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["record_id"] for r in rows] == [str(i) for i in range(len(frame))]
    assert {r["data_type"] for r in rows} == {"diabetes"}
    expected = oracle.predict(frame[features].to_numpy())
    got = [r["score"] for r in rows]
    assert max(abs(g - e) / max(1.0, abs(e)) for g, e in zip(got, expected)) < 1e-4  # ONNX computes in float32
