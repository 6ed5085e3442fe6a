"""``modelserving score --schema``: any data type from a CSV or JSON lines, scored as the model's own library does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from serving.cli import main

pytest.importorskip("skl2onnx", reason="the train extra (scikit-learn, skl2onnx) is not installed")

from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
IRIS_AVSC = {
    "type": "record",
    "name": "iris",
    "modelserving.id": "plant",
    "fields": [{"name": "plant", "type": "string"}] + [{"name": name, "type": "double"} for name in FEATURES],
}


@dataclass
class Iris:
    """An ONNX export of a logistic regression on iris, with the sklearn model and the rows it scores."""

    onnx: Path
    avsc: Path
    classifier: LogisticRegression
    rows: np.ndarray


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iris:
    """Train on iris, export to ONNX with skl2onnx, and write the iris schema next to it."""
    folder = tmp_path_factory.mktemp("iris")
    data = load_iris()
    classifier = LogisticRegression(max_iter=1000).fit(data.data, data.target)
    proto = convert_sklearn(classifier, initial_types=[("input", FloatTensorType([None, len(FEATURES)]))])
    onnx = folder / "iris.onnx"
    onnx.write_bytes(proto.SerializeToString())
    avsc = folder / "iris.avsc"
    avsc.write_text(json.dumps(IRIS_AVSC), encoding="utf-8")
    # Every 5th plant: all three species, 30 rows.
    return Iris(onnx, avsc, classifier, data.data[::5])


def score(iris: Iris, data: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict], str]:
    """Run ``modelserving score`` in process; the exit code, the JSON lines and stderr."""
    args = ["score", "--model", str(iris.onnx), "--type", "onnx", "--data", str(data), "--schema", str(iris.avsc)]
    code = main(args)
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def csv_text(rows: np.ndarray, columns: tuple[str, ...] = FEATURES) -> str:
    """A CSV with a header: an extra ``species`` column first, the plant id last, columns in the order given."""
    lines = [",".join(("species", *columns, "plant"))]
    for i, row in enumerate(rows):
        by_name = dict(zip(FEATURES, row, strict=True))
        lines.append(",".join(("?", *(repr(float(by_name[c])) for c in columns), f"p{i}")))
    return "\n".join(lines) + "\n"


def assert_matches_sklearn(iris: Iris, lines: list[dict]) -> None:
    """One line per row, in order, with sklearn's class and probabilities (to float32 precision)."""
    assert [line["row"] for line in lines] == list(range(len(iris.rows)))
    expected_classes = iris.classifier.predict(iris.rows.astype(np.float32).astype(np.float64))
    assert [line["score"] for line in lines] == [float(c) for c in expected_classes]
    assert all(line["labels"] == ["0", "1", "2"] for line in lines)
    probabilities = np.array([line["probabilities"] for line in lines])
    np.testing.assert_allclose(probabilities, iris.classifier.predict_proba(iris.rows), atol=1e-5)
    assert len(set(expected_classes)) == 3  # the rows cover every species, so the check means something


def test_score_a_csv_of_any_data_type_like_sklearn(iris: Iris, tmp_path: Path, capsys) -> None:
    """A CSV with extra columns and columns out of schema order scores exactly as the sklearn model."""
    data = tmp_path / "iris.csv"
    data.write_text(csv_text(iris.rows, tuple(reversed(FEATURES))), encoding="utf-8")
    code, lines, err = score(iris, data, capsys)
    assert code == 0, err
    assert_matches_sklearn(iris, lines)


def test_score_json_lines_like_sklearn(iris: Iris, tmp_path: Path, capsys) -> None:
    """The same rows as JSON lines give the same scores."""
    data = tmp_path / "iris.jsonl"
    rows = [{"plant": f"p{i}", **dict(zip(FEATURES, map(float, row), strict=True))} for i, row in enumerate(iris.rows)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    code, lines, err = score(iris, data, capsys)
    assert code == 0, err
    assert_matches_sklearn(iris, lines)


def test_a_csv_missing_a_schema_field_is_one_error_line(
    iris: Iris, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header without petal_width exits non-zero with one ``error:`` line naming it, no traceback, no output."""
    monkeypatch.delenv("MODELSERVING_DEBUG", raising=False)
    data = tmp_path / "short.csv"
    data.write_text(csv_text(iris.rows, FEATURES[:3]), encoding="utf-8")
    code, lines, err = score(iris, data, capsys)
    assert code != 0 and lines == []
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("modelserving score: error:"), err
    assert errors[0].endswith("petal_width") and "sepal" not in errors[0]


@pytest.mark.parametrize(
    ("schema_text", "match"),
    [("{not json", "not JSON"), (json.dumps({**IRIS_AVSC, "name": "Iris"}), "'Iris' is no data type")],
    ids=["not-json", "bad-name"],
)
def test_a_bad_schema_file_is_one_error_line(
    iris: Iris, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, schema_text: str, match: str
) -> None:
    """An unparsable or unservable ``--schema`` is a one-line error and a non-zero exit."""
    monkeypatch.delenv("MODELSERVING_DEBUG", raising=False)
    bad = tmp_path / "bad.avsc"
    bad.write_text(schema_text, encoding="utf-8")
    data = tmp_path / "iris.csv"
    data.write_text(csv_text(iris.rows), encoding="utf-8")
    args = ["score", "--model", str(iris.onnx), "--type", "onnx", "--data", str(data), "--schema", str(bad)]
    assert main(args) != 0
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and match in errors[0] and "Traceback" not in err, err
