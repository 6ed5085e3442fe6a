"""`serving.training.examples` and `modelserving train`: every export scores like its source, reproducibly."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from serving.cli import main
from serving.errors import ConfigError, EmptyInputError, InputError
from serving.formats import descriptor_from_path, load_model
from serving.formats.registry import BUILTIN_TYPES, parse_format
from serving.records import wine
from serving.training.examples import MANIFEST_NAME, TrainedArtifact, train_models

SEED = 42
EPOCHS = 5  # enough for a non-trivial MLP, small enough to keep the module fast

#: (name, CLI type, kind) of everything one training run must export.
EXPECTED = [
    ("wine_mlp_graph", "tensorflow", "classification"),
    ("wine_mlp_saved", "tensorflow_saved", "classification"),
    ("wine_linear_regression_pmml", "pmml", "regression"),
    ("wine_linear_regression_onnx", "onnx", "regression"),
    ("wine_decision_tree_pmml", "pmml", "classification"),
    ("wine_decision_tree_onnx", "onnx", "classification"),
]
QUALITY_LABELS = ("3", "4", "5", "6", "7", "8")

# ONNX scores in float32 (skl2onnx's FloatTensorType input, float32 weights), so a
# regression value of ~5.6 carries a rounding error of a few float32 ulps
# (~1e-7 relative, measured max 7.8e-7); 1e-5 relative leaves room without hiding
# a wrong model, whose values would differ by whole tenths.
REGRESSION_RTOL = 1e-5
# Probabilities are in [0, 1]; float32 exports (ONNX, TF) differ from float64 or
# eager sources by ~1e-7 at most.
PROBABILITY_ATOL = 1e-5


@pytest.fixture(scope="module")
def wine_data() -> wine.WineData:
    data = wine.read_wine_csv(wine.reference_csv())
    assert data.features.shape == (1599, 11)
    assert data.quality is not None
    return data


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trained")


@pytest.fixture(scope="module")
def progress_lines() -> list[str]:
    return []


@pytest.fixture(scope="module")
def trained(out_dir: Path, progress_lines: list[str]) -> dict[str, TrainedArtifact]:
    artifacts = train_models(wine.reference_csv(), out_dir, seed=SEED, epochs=EPOCHS, progress=progress_lines.append)
    by_name = {artifact.name: artifact for artifact in artifacts}
    assert len(by_name) == len(artifacts), "artifact names must be unique"
    return by_name


def _load(artifact: TrainedArtifact):
    descriptor = descriptor_from_path(artifact.path, parse_format(artifact.model_type), metadata=artifact.metadata)
    return load_model(descriptor)


def _score(artifact: TrainedArtifact, features: np.ndarray):
    model = _load(artifact)
    try:
        return model.score_batch(features)
    finally:
        model.close()


def test_exports_every_supported_type(trained: dict[str, TrainedArtifact], out_dir: Path) -> None:
    assert sorted((a.name, a.model_type, a.kind) for a in trained.values()) == sorted(EXPECTED)
    assert {a.model_type for a in trained.values()} == set(BUILTIN_TYPES)
    for artifact in trained.values():
        assert artifact.path.parent == out_dir
        assert artifact.path.exists()
    assert (trained["wine_mlp_saved"].path / "saved_model.pb").is_file()


@pytest.mark.parametrize(("name", "model_type", "kind"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_exported_model_scores_like_its_source(
    trained: dict[str, TrainedArtifact], wine_data: wine.WineData, name: str, model_type: str, kind: str
) -> None:
    artifact = trained[name]
    features = wine_data.features
    expected = artifact.predict(features)
    got = _score(artifact, features)

    assert got.scores.shape == expected.shape == (1599,)
    if kind == "regression":
        assert got.probabilities is None
        np.testing.assert_allclose(got.scores, expected, rtol=REGRESSION_RTOL, atol=0)
        # A trained regressor, not a constant: it explains part of the variance.
        rmse = np.sqrt(np.mean((expected - wine_data.quality) ** 2))
        assert rmse < 0.9 * np.std(wine_data.quality)
    else:
        assert got.labels == artifact.labels == QUALITY_LABELS
        np.testing.assert_array_equal(got.scores, expected)
        assert artifact.predict_proba is not None and got.probabilities is not None
        source_probabilities = artifact.predict_proba(features)
        assert source_probabilities.shape == got.probabilities.shape == (1599, len(QUALITY_LABELS))
        np.testing.assert_allclose(got.probabilities, source_probabilities, rtol=0, atol=PROBABILITY_ATOL)
        # The scores are labels (3..8), not class indices, and they vary.
        assert set(np.unique(expected)) <= {float(label) for label in QUALITY_LABELS}
        assert len(np.unique(expected)) >= 2
        # A trained classifier beats always answering the commonest quality (~43%).
        majority = np.max(np.unique(wine_data.quality, return_counts=True)[1]) / len(wine_data.quality)
        assert np.mean(expected == wine_data.quality) > majority + 0.05


def test_manifest_lists_every_artifact_loadably(trained: dict[str, TrainedArtifact], out_dir: Path) -> None:
    manifest = json.loads((out_dir / MANIFEST_NAME).read_text())
    assert manifest["seed"] == SEED and manifest["epochs"] == EPOCHS and manifest["rows"] == 1599
    entries = {entry["name"]: entry for entry in manifest["artifacts"]}
    assert set(entries) == set(trained)
    probe = np.asarray([wine.PROBE_ROW])
    for name, artifact in trained.items():
        entry = entries[name]
        assert entry == {
            "path": artifact.path.name,
            "type": artifact.model_type,
            "name": name,
            "kind": artifact.kind,
            "metadata": artifact.metadata,
        }
        # A publisher needs nothing but the manifest to describe and load the model.
        descriptor = descriptor_from_path(
            out_dir / entry["path"], parse_format(entry["type"]), name=entry["name"], metadata=entry["metadata"]
        )
        model = load_model(descriptor)
        try:
            assert model.score_batch(probe).scores[0] == pytest.approx(artifact.predict(probe)[0], rel=REGRESSION_RTOL)
        finally:
            model.close()


def test_tensorflow_metadata_names_the_graph_and_labels(trained: dict[str, TrainedArtifact]) -> None:
    graph = trained["wine_mlp_graph"]
    assert graph.metadata["labels"] == ",".join(QUALITY_LABELS)
    model = _load(graph)
    try:
        # The factory used the recorded names, and they are the real input and output.
        assert (model.input_name, model.output_name) == (graph.metadata["input"], graph.metadata["output"])
        assert model.n_features == 11
    finally:
        model.close()
    saved = _load(trained["wine_mlp_saved"])
    try:
        assert saved.signature == "serving_default"
        assert saved.n_features == 11
    finally:
        saved.close()


def test_progress_reports_each_step(trained: dict[str, TrainedArtifact], progress_lines: list[str]) -> None:
    text = "\n".join(progress_lines)
    assert len(progress_lines) >= len(EXPECTED)
    for needle in ("read 1599 rows", "Keras", "LinearRegression", "DecisionTreeClassifier", MANIFEST_NAME):
        assert needle in text
    for artifact in trained.values():
        assert artifact.path.name in text


def test_onnx_opset_imports_are_sorted(trained: dict[str, TrainedArtifact]) -> None:
    """skl2onnx emits opset imports in set order; the trainer sorts them for stable bytes."""
    import onnx

    for name in ("wine_linear_regression_onnx", "wine_decision_tree_onnx"):
        proto = onnx.load(str(trained[name].path))
        domains = [opset.domain for opset in proto.opset_import]
        assert domains == sorted(domains)
        assert proto.graph.input[0].name == "input"


def test_pmml_carries_no_wall_clock_timestamp(trained: dict[str, TrainedArtifact]) -> None:
    for name in ("wine_linear_regression_pmml", "wine_decision_tree_pmml"):
        text = trained[name].path.read_text()
        assert "<Timestamp>" not in text
        for feature in wine.FEATURE_NAMES:
            assert f'name="{feature}"' in text


def test_same_seed_reproduces_every_artifact(
    trained: dict[str, TrainedArtifact], wine_data: wine.WineData, tmp_path: Path
) -> None:
    """A second run, in a fresh process with another hash seed, gives the same models.

    A fresh process also catches order that depends on PYTHONHASHSEED (set and
    dict-of-str iteration), which retraining in this process could not see.
    """
    again = tmp_path / "again"
    hash_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from serving.training.examples import train_models
        from serving.records.wine import reference_csv
        train_models(reference_csv(), Path(sys.argv[1]), seed={SEED}, epochs={EPOCHS})
        """
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(again)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]

    for artifact in trained.values():
        twin = again / artifact.path.name
        if artifact.model_type in ("pmml", "onnx"):
            assert twin.read_bytes() == artifact.path.read_bytes(), f"{artifact.name} differs between runs"
    # The frozen graph serialises deterministically too; a SavedModel does not
    # (fingerprint.pb holds a random UUID), so both TF exports are compared by scores.
    assert (again / "wine_mlp.pb").read_bytes() == trained["wine_mlp_graph"].path.read_bytes()
    for name in ("wine_mlp_graph", "wine_mlp_saved"):
        first = _score(trained[name], wine_data.features)
        second = _score(replace(trained[name], path=again / trained[name].path.name), wine_data.features)
        np.testing.assert_array_equal(second.scores, first.scores)
        np.testing.assert_array_equal(second.probabilities, first.probabilities)
    assert (again / MANIFEST_NAME).read_text() == (trained["wine_mlp_graph"].path.parent / MANIFEST_NAME).read_text()


def test_another_seed_gives_another_network(
    trained: dict[str, TrainedArtifact], wine_data: wine.WineData, tmp_path: Path
) -> None:
    """The seed is really used: without this, reproducibility could be a constant model."""
    other = {a.name: a for a in train_models(wine.reference_csv(), tmp_path, seed=SEED + 1, epochs=EPOCHS)}
    ours = trained["wine_mlp_graph"].predict_proba(wine_data.features)
    theirs = other["wine_mlp_graph"].predict_proba(wine_data.features)
    assert np.max(np.abs(ours - theirs)) > 1e-3
    assert (tmp_path / "wine_mlp.pb").read_bytes() != trained["wine_mlp_graph"].path.read_bytes()


@pytest.mark.parametrize("layout", ["beneath_a_file", "is_a_file"])
def test_unwritable_out_dir_is_a_config_error(tmp_path: Path, layout: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    out = blocker / "models" if layout == "beneath_a_file" else blocker
    with pytest.raises(ConfigError) as caught:
        train_models(wine.reference_csv(), out, epochs=1)
    message = str(caught.value)
    assert str(out) in message and "\n" not in message
    assert blocker.read_text() == "not a directory"


def test_missing_or_empty_csv_raises_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read data file"):
        train_models(tmp_path / "missing.csv", tmp_path / "out")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(EmptyInputError):
        train_models(empty, tmp_path / "out")
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text(";".join(str(v) for v in wine.PROBE_ROW) + "\n")
    with pytest.raises(InputError, match="no quality column"):
        train_models(unlabelled, tmp_path / "out")
    assert not (tmp_path / "out").exists(), "bad input must fail before anything is written"


def _cli() -> argparse.ArgumentParser:
    from serving.cli import train as train_cli

    parser = argparse.ArgumentParser(prog="modelserving")
    train_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_flags_and_defaults(tmp_path: Path) -> None:
    parser = _cli()
    args = parser.parse_args(["train", "--out", str(tmp_path)])
    assert (args.out, args.data, args.seed, args.epochs) == (tmp_path, None, 42, 30)
    assert callable(args.handler)
    args = parser.parse_args(["train", "--out", "x", "--data", "d.csv", "--seed", "7", "--epochs", "3"])
    assert (args.data, args.seed, args.epochs) == (Path("d.csv"), 7, 3)
    for bad in (["train"], ["train", "--out", "x", "--epochs", "0"], ["train", "--out", "x", "--seed", "a"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_cli_error_is_one_line_and_exit_code_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    assert main(["train", "--out", str(blocker / "models")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("modelserving train: error: cannot write to output directory")
    assert captured.err.count("\n") == 1


def test_cli_trains_and_lists_artifacts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "models"
    args = _cli().parse_args(["train", "--out", str(out), "--epochs", "1"])
    assert args.handler(args) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].split() == ["TYPE", "KIND", "NAME", "PATH"]
    listed = {tuple(line.split()) for line in lines[1:-1]}
    assert listed == {(t, k, n, str(out / p)) for (n, t, k), p in zip(EXPECTED, _expected_paths(), strict=True)}
    assert lines[-1] == f"manifest: {out / MANIFEST_NAME}"
    progress = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert len(progress) >= len(EXPECTED) and any("wine_mlp.pb" in line for line in progress)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["epochs"] == 1 and len(manifest["artifacts"]) == len(EXPECTED)


def _expected_paths() -> list[str]:
    return [
        "wine_mlp.pb",
        "wine_mlp_savedmodel",
        "wine_linear_regression.pmml",
        "wine_linear_regression.onnx",
        "wine_decision_tree.pmml",
        "wine_decision_tree.onnx",
    ]
