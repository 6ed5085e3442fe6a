"""``modelserving run``: the CLI runs the same job graph and writes results, dead letters and stats."""

from __future__ import annotations

import json
from hashlib import blake2b

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


def test_run_serves_a_data_type_its_schema_declares_with_a_shadow_a_canary_and_a_decoy(tmp_path):
    """``run --schema``: diabetes rows (a CSV whose header has other columns, in another order) scored by ONNX.

    The record ids are the 0-based rows (the schema names no id field) and
    every score is scikit-learn's own ``predict`` for that row. A ridge model
    shadows it (compared on every record), a lasso serves as a canary at 0.3
    (the ids blake2b picks), and a decoy archives every input.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Lasso, LinearRegression, Ridge

    frame = load_diabetes(as_frame=True, scaled=False).frame
    features = [c for c in frame.columns if c != "target"]
    schema = {"type": "record", "name": "diabetes", "fields": [{"name": c, "type": "double"} for c in features]}
    (tmp_path / "diabetes.avsc").write_text(json.dumps(schema))
    frame[["target", *reversed(features)]].to_csv(tmp_path / "diabetes.csv", index=False)
    oracle = LinearRegression().fit(frame[features].to_numpy(), frame["target"].to_numpy())
    onnx = convert_sklearn(oracle, initial_types=[("input", FloatTensorType([None, len(features)]))], target_opset=17)
    (tmp_path / "linear.onnx").write_bytes(onnx.SerializeToString())
    x, y = frame[features].to_numpy(), frame["target"].to_numpy()
    others = {"ridge": Ridge(alpha=1.0).fit(x, y), "lasso": Lasso(alpha=0.5).fit(x, y)}
    for name, model in others.items():
        converted = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, len(features)]))])
        (tmp_path / f"{name}.onnx").write_bytes(converted.SerializeToString())
    out = tmp_path / "results.jsonl"
    code = main(
        [
            "run", "keyed", "--schema", str(tmp_path / "diabetes.avsc"), "--data", str(tmp_path / "diabetes.csv"),
            "--model", f"{tmp_path / 'linear.onnx'}:onnx", "--out", str(out),
            "--shadow", f"{tmp_path / 'ridge.onnx'}:onnx", "--canary", f"{tmp_path / 'lasso.onnx'}:onnx@0.3", "--decoy",
        ]
    )  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [str(i) for i in range(len(frame))]
    assert [r["record_id"] for r in rows] == ids
    assert {r["data_type"] for r in rows} == {"diabetes"}

    def close(got, want) -> bool:  # ONNX computes in float32
        return abs(got - want) / max(1.0, abs(want)) < 1e-4

    canary_version = next(r["model_version"] for r in rows if r.get("role") == "canary")
    bucket = {i: int.from_bytes(blake2b(f"diabetes/{canary_version}:{i}".encode(), digest_size=8).digest(), "big")
              for i in ids}  # fmt: skip
    in_canary = {i for i in ids if bucket[i] % 10_000 < 3000}
    assert {r["record_id"] for r in rows if r.get("role") == "canary"} == in_canary
    expected = {"champion": oracle.predict(x), "canary": others["lasso"].predict(x)}
    for i, r in enumerate(rows):
        assert close(r["score"], expected["canary" if str(i) in in_canary else "champion"][i])
    comparisons = [json.loads(line) for line in (tmp_path / "results.jsonl.comparisons").read_text().splitlines()]
    shadow = {c["record_id"]: c for c in comparisons if c["challenger_role"] == "shadow"}
    assert sorted(shadow, key=int) == ids and len(shadow) == sum(c["challenger_role"] == "shadow" for c in comparisons)
    ridge = others["ridge"].predict(x)
    assert all(close(shadow[i]["challenger"]["score"], ridge[int(i)]) for i in ids)
    assert {c["record_id"] for c in comparisons if c["challenger_role"] == "canary"} == in_canary
    archive = [json.loads(line) for line in (tmp_path / "results.jsonl.archive").read_text().splitlines()]
    assert sorted((a["record_id"] for a in archive), key=int) == ids
    # Fewer comparisons than --stats-every-records: each pair's stats come from the end of input, all counted.
    stats = [json.loads(line) for line in (tmp_path / "results.jsonl.stats").read_text().splitlines()]
    counted: dict[str, int] = {}
    for pair in (s["pair"] for s in stats if "pair" in s):
        counted[pair["challenger_role"]] = max(counted.get(pair["challenger_role"], 0), int(pair["n"]))
    assert counted == {"shadow": len(ids), "canary": len(in_canary)}
