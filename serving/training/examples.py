"""Seeded training of small wine-quality models, exported in every supported format.

``train_models`` fits three small models on a wine CSV and writes each in the
formats the serving factories load:

* a Keras MLP classifier (11 -> 16 -> one softmax output per quality label),
  as a frozen GraphDef (``tensorflow``) and as a SavedModel (``tensorflow_saved``);
* a scikit-learn ``LinearRegression`` (regression), as PMML and as ONNX;
* a scikit-learn ``DecisionTreeClassifier`` (classification), as PMML and as ONNX;

plus a ``manifest.json`` that lists every artifact, so other tools can publish
them. Framework imports (TensorFlow, scikit-learn, nyoka, skl2onnx) happen
inside :func:`train_models`, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from serving.errors import ConfigError, InputError
from serving.formats.artifacts import MANIFEST_NAME
from serving.records import wine

#: Hidden units of the Keras MLP.
HIDDEN_UNITS = 16

#: ONNX opsets the exports target: old enough for every onnxruntime the project allows.
ONNX_TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}

Kind = Literal["regression", "classification"]


@dataclass(frozen=True)
class TrainedArtifact:
    """One exported model file (or SavedModel directory) and the model it came from.

    Attributes:
        path: The file, or for ``tensorflow_saved`` the directory, that was written.
        model_type: A format name (``serving.formats.registry.format_names()``).
        name: The model name to publish it under.
        kind: ``"regression"`` or ``"classification"``.
        metadata: Entries for ``ModelDescriptor.metadata`` the factory needs to
            read the artifact (e.g. ``input``/``output``/``labels`` for TensorFlow).
        predict: The in-memory source model's scores for float [N, 11] rows, by
            the result rule of :mod:`serving.core.model`: the predicted value for a
            regressor, the winning label as a number for a classifier.
        predict_proba: For a classifier, the source model's probabilities
            [N, K] in the order of ``labels``; None for a regressor.
        labels: The class labels, in probability-column order; empty for a regressor.
    """

    path: Path
    model_type: str
    name: str
    kind: Kind
    metadata: dict[str, str]
    predict: Callable[[np.ndarray], np.ndarray]
    predict_proba: Callable[[np.ndarray], np.ndarray] | None = None
    labels: tuple[str, ...] = field(default=())

    def manifest_entry(self, root: Path) -> dict[str, Any]:
        """This artifact as a ``manifest.json`` entry, its path relative to ``root``."""
        return {
            "path": self.path.relative_to(root).as_posix(),
            "type": self.model_type,
            "name": self.name,
            "kind": self.kind,
            "metadata": dict(self.metadata),
        }


def train_models(
    data_csv: Path,
    out_dir: Path,
    *,
    seed: int = 42,
    epochs: int = 30,
    progress: Callable[[str], None] | None = None,
) -> list[TrainedArtifact]:
    """Train the wine models on ``data_csv`` and export them all into ``out_dir``.

    The same data, seed and library versions give byte-identical PMML and ONNX
    files and identical TensorFlow scores: NumPy, Python and TensorFlow are seeded
    (``tf.keras.utils.set_random_seed``, which reseeds the process-wide
    generators as a side effect), TensorFlow op determinism is switched on for
    the process, and the PMML header's timestamp is dropped.

    Files written into ``out_dir`` (existing ones are replaced): ``wine_mlp.pb``,
    ``wine_mlp_savedmodel/``, ``wine_linear_regression.pmml``,
    ``wine_linear_regression.onnx``, ``wine_decision_tree.pmml``,
    ``wine_decision_tree.onnx`` and ``manifest.json``.

    Args:
        data_csv: A wine CSV with the quality column (see ``serving.records.wine.read_wine_csv``);
            quality must be whole numbers with at least two distinct values.
        out_dir: Directory to write into; created if missing.
        seed: Seed for every random choice (weight init, shuffling, tree ties).
        epochs: Training epochs of the Keras MLP; at least 1.
        progress: Called with one human-readable line per step.

    Returns:
        The exported artifacts, in the order of the manifest.

    Raises:
        InputError: or a subclass: the CSV is missing, empty, malformed, has no
            quality column, or its quality is not usable as class labels.
        ConfigError: ``out_dir`` cannot be created or written, or ``epochs`` < 1.
    """
    report = progress or (lambda _line: None)
    if epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {epochs}")
    data_csv, out_dir = Path(data_csv), Path(out_dir)
    features, quality = _training_data(data_csv)
    _ensure_writable(out_dir)
    report(f"read {len(features)} rows from {data_csv}")

    artifacts: list[TrainedArtifact] = []
    started = time.perf_counter()
    artifacts += _train_keras_mlp(features, quality, out_dir, seed=seed, epochs=epochs, report=report)
    artifacts += _train_sklearn(features, quality, out_dir, seed=seed, report=report)
    _write_manifest(out_dir, artifacts, seed=seed, epochs=epochs, rows=len(features))
    report(f"wrote {out_dir / MANIFEST_NAME} ({len(artifacts)} artifacts, {time.perf_counter() - started:.1f} s)")
    return artifacts


def _training_data(data_csv: Path) -> tuple[np.ndarray, np.ndarray]:
    data = wine.read_wine_csv(data_csv)
    if data.quality is None:
        raise InputError(f"{data_csv} has no quality column; training needs {wine.N_FEATURES + 1} columns")
    quality = data.quality
    if not np.all(np.isfinite(quality)) or not np.all(quality == np.round(quality)):
        raise InputError(f"{data_csv}: quality must be whole numbers to serve as class labels")
    if len(np.unique(quality)) < 2:
        raise InputError(f"{data_csv}: quality has a single value; a classifier needs at least two")
    if not np.all(np.isfinite(data.features)):
        raise InputError(f"{data_csv}: features must be finite numbers")
    return data.features, quality.astype(np.int64)


def _ensure_writable(out_dir: Path) -> None:
    """Create ``out_dir`` and prove a file can be written there, before any training."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot write to output directory {out_dir}: {reason}") from exc


def _class_labels(quality: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    classes = np.unique(quality)
    return classes, tuple(str(int(c)) for c in classes)


def _train_keras_mlp(
    features: np.ndarray,
    quality: np.ndarray,
    out_dir: Path,
    *,
    seed: int,
    epochs: int,
    report: Callable[[str], None],
) -> list[TrainedArtifact]:
    report("loading TensorFlow")
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    classes, labels = _class_labels(quality)
    targets = np.searchsorted(classes, quality)
    x = features.astype(np.float32)
    report(f"training Keras MLP (11 -> {HIDDEN_UNITS} -> {len(labels)} classes, {epochs} epochs, seed {seed})")
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    keras = tf.keras
    # Standardising inside the model keeps raw features as the exported input.
    mean, variance = features.mean(axis=0), features.var(axis=0)
    model = keras.Sequential(
        [
            keras.Input(shape=(wine.N_FEATURES,), dtype="float32", name="features"),
            keras.layers.Normalization(mean=mean, variance=variance, name="standardise"),
            keras.layers.Dense(HIDDEN_UNITS, activation="relu", name="hidden"),
            keras.layers.Dense(len(labels), activation="softmax", name="quality"),
        ],
        name="wine_mlp",
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    # A seeded dataset of our own (rather than Keras' array adapter) keeps the
    # batch order a function of the seed alone.
    batches = (
        tf.data.Dataset.from_tensor_slices((x, targets))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(64)
    )
    history = model.fit(batches, epochs=epochs, shuffle=False, verbose=0)
    report(f"trained Keras MLP: final loss {history.history['loss'][-1]:.4f}")

    @tf.function(input_signature=[tf.TensorSpec([None, wine.N_FEATURES], tf.float32, name="features")])
    def serve(features):
        return {"probabilities": model(features, training=False)}

    @tf.function(input_signature=[tf.TensorSpec([None, wine.N_FEATURES], tf.float32, name="features")])
    def probabilities(features):
        return model(features, training=False)

    frozen = convert_variables_to_constants_v2(probabilities.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    input_op = frozen.inputs[0].op.name
    output_op = frozen.outputs[0].op.name
    graph_path = out_dir / "wine_mlp.pb"
    graph_path.write_bytes(graph_def.SerializeToString(deterministic=True))
    report(f"exported frozen GraphDef {graph_path.name} (input {input_op}, output {output_op})")

    saved_path = out_dir / "wine_mlp_savedmodel"
    if saved_path.exists():
        shutil.rmtree(saved_path)
    module = tf.Module()
    module.model = model
    tf.saved_model.save(module, str(saved_path), signatures={"serving_default": serve.get_concrete_function()})
    report(f"exported SavedModel {saved_path.name}/ (signature serving_default, output probabilities)")

    label_values = classes.astype(np.float64)

    def predict_proba(rows: np.ndarray) -> np.ndarray:
        return model(tf.constant(np.asarray(rows, dtype=np.float32)), training=False).numpy().astype(np.float64)

    def predict(rows: np.ndarray) -> np.ndarray:
        return label_values[np.argmax(predict_proba(rows), axis=1)]

    labels_meta = ",".join(labels)
    return [
        TrainedArtifact(
            path=graph_path,
            model_type="tensorflow",
            name="wine_mlp_graph",
            kind="classification",
            metadata={"input": input_op, "output": output_op, "labels": labels_meta},
            predict=predict,
            predict_proba=predict_proba,
            labels=labels,
        ),
        TrainedArtifact(
            path=saved_path,
            model_type="tensorflow_saved",
            name="wine_mlp_saved",
            kind="classification",
            metadata={"signature": "serving_default", "output": "probabilities", "labels": labels_meta},
            predict=predict,
            predict_proba=predict_proba,
            labels=labels,
        ),
    ]


def _train_sklearn(
    features: np.ndarray,
    quality: np.ndarray,
    out_dir: Path,
    *,
    seed: int,
    report: Callable[[str], None],
) -> list[TrainedArtifact]:
    import pandas as pd
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    columns = list(wine.FEATURE_NAMES)
    frame = pd.DataFrame(features, columns=columns)

    def as_frame(rows: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(np.asarray(rows, dtype=np.float64), columns=columns)

    report("training LinearRegression")
    regression = Pipeline([("regressor", LinearRegression())]).fit(frame, quality.astype(np.float64))
    report("training DecisionTreeClassifier (max_depth 6)")
    tree = Pipeline([("classifier", DecisionTreeClassifier(max_depth=6, random_state=seed))]).fit(frame, quality)
    _, labels = _class_labels(quality)
    if tuple(str(int(c)) for c in tree.classes_) != labels:
        raise AssertionError("DecisionTreeClassifier classes are not the sorted quality labels")

    def predict_value(rows: np.ndarray) -> np.ndarray:
        return regression.predict(as_frame(rows)).astype(np.float64)

    def tree_proba(rows: np.ndarray) -> np.ndarray:
        return tree.predict_proba(as_frame(rows)).astype(np.float64)

    def tree_label(rows: np.ndarray) -> np.ndarray:
        return tree.predict(as_frame(rows)).astype(np.float64)

    artifacts: list[TrainedArtifact] = []
    for stem, pipeline, kind in (
        ("wine_linear_regression", regression, "regression"),
        ("wine_decision_tree", tree, "classification"),
    ):
        pmml_path = out_dir / f"{stem}.pmml"
        _export_pmml(pipeline, pmml_path)
        report(f"exported PMML {pmml_path.name}")
        onnx_path = out_dir / f"{stem}.onnx"
        _export_onnx(pipeline, onnx_path, name=stem)
        report(f"exported ONNX {onnx_path.name}")
        is_classifier = kind == "classification"
        for path, model_type in ((pmml_path, "pmml"), (onnx_path, "onnx")):
            artifacts.append(
                TrainedArtifact(
                    path=path,
                    model_type=model_type,
                    name=f"{stem}_{model_type}",
                    kind=kind,
                    metadata={},
                    predict=tree_label if is_classifier else predict_value,
                    predict_proba=tree_proba if is_classifier else None,
                    labels=labels if is_classifier else (),
                )
            )
    return artifacts


_TIMESTAMP = re.compile(r"[ \t]*<Timestamp>.*?</Timestamp>[ \t]*\r?\n?", re.DOTALL)


def _export_pmml(pipeline: Any, path: Path) -> None:
    """Write ``pipeline`` as PMML with nyoka, minus the header's wall-clock timestamp.

    nyoka stamps ``Header/Timestamp`` with ``datetime.now()``; the element is
    optional in PMML 4.4, and dropping it makes equal models give equal bytes.
    """
    from nyoka import skl_to_pmml

    skl_to_pmml(pipeline, list(wine.FEATURE_NAMES), "quality", str(path))
    text = path.read_text(encoding="utf-8")
    path.write_text(_TIMESTAMP.sub("", text, count=1), encoding="utf-8")


def _export_onnx(pipeline: Any, path: Path, *, name: str) -> None:
    """Write ``pipeline`` as ONNX with skl2onnx: one float input ``input`` [None, 11]."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onnx_model = convert_sklearn(
        pipeline,
        name=name,
        initial_types=[("input", FloatTensorType([None, wine.N_FEATURES]))],
        target_opset=ONNX_TARGET_OPSET,
    )
    # skl2onnx lists opset imports in set order, which varies with PYTHONHASHSEED
    # from one process to the next; sort them so equal models give equal bytes.
    imports = sorted(onnx_model.opset_import, key=lambda opset: (opset.domain, opset.version))
    del onnx_model.opset_import[:]
    onnx_model.opset_import.extend(imports)
    path.write_bytes(onnx_model.SerializeToString(deterministic=True))


def _write_manifest(out_dir: Path, artifacts: list[TrainedArtifact], *, seed: int, epochs: int, rows: int) -> None:
    manifest = {
        "seed": seed,
        "epochs": epochs,
        "rows": rows,
        "artifacts": [artifact.manifest_entry(out_dir) for artifact in artifacts],
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
