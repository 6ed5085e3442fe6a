"""Factories: to_bytes/restore round-trips, and a typed error for each bad input."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from serving.core.model import ModelDescriptor, ModelType
from serving.errors import (
    ChecksumMismatch,
    CorruptModelError,
    EmptyInputError,
    InputShapeError,
    ModelLocationError,
    ModelSchemaError,
    ServingError,
    UnknownModelType,
)
from serving.formats import descriptor_from_path, load_model, parse_descriptor, restore
from serving.formats.registry import parse_format
from serving.records.wine import read_wine_csv
from tests.support.reference import PMML_FOREST, PMML_LINEAR, TF_GRAPH, TF_SAVED

WEIGHTS = np.arange(1, 12, dtype=np.float32) / 100.0


def linear_onnx(path, width: int = 11) -> None:
    """A tiny ONNX regressor y = x . w + 0.5, built by hand so its answer is known."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["score"]),
        ],
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])],
        [
            helper.make_tensor("w", TensorProto.FLOAT, [width, 1], WEIGHTS[:width].tolist()),
            helper.make_tensor("b", TensorProto.FLOAT, [1], [0.5]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "linear.onnx"
    linear_onnx(path)
    return path


def test_onnx_regressor_scores_its_formula(onnx_path, wine_data):
    model = load_model(descriptor_from_path(onnx_path, ModelType.ONNX))
    scores = model.score_batch(wine_data.features)
    expected = wine_data.features.astype(np.float32) @ WEIGHTS + np.float32(0.5)
    np.testing.assert_allclose(scores.scores, expected, rtol=1e-6)
    assert scores.probabilities is None


@pytest.mark.parametrize(
    "kind",
    ["tensorflow", "tensorflow_saved", "pmml", "onnx"],
)
def test_to_bytes_restore_round_trip(kind, onnx_path, wine_data, tmp_path):
    path = {"tensorflow": TF_GRAPH, "tensorflow_saved": TF_SAVED, "pmml": PMML_FOREST, "onnx": onnx_path}[kind]
    original = load_model(descriptor_from_path(path, parse_format(kind), name="m", version="7"))
    state = original.to_bytes()
    restored = restore(state)
    assert (restored.name, restored.version, restored.model_type) == ("m", "7", original.model_type)
    assert restored.artifact == original.artifact
    a, b = original.score_batch(wine_data.features), restored.score_batch(wine_data.features)
    np.testing.assert_array_equal(a.scores, b.scores)
    # The state form is self-contained: it is a descriptor with the artifact inline.
    assert parse_descriptor(state).WhichOneof("content") == "data"


def test_saved_model_by_location_is_inlined_in_state(wine_data):
    by_ref = descriptor_from_path(TF_SAVED, ModelType.TENSORFLOW_SAVED, by_reference=True)
    model = load_model(by_ref, model_roots=[TF_SAVED.parent])
    restored = restore(model.to_bytes(), model_roots=[])  # no roots: must not need the directory
    np.testing.assert_array_equal(
        model.score_batch(wine_data.features[:50]).scores, restored.score_batch(wine_data.features[:50]).scores
    )
    assert parse_descriptor(model.to_bytes()).metadata["source_location"] == str(TF_SAVED.resolve())


# ---- bad input: one assertion each ----------------------------------------------------------


def test_unknown_model_type_name():
    with pytest.raises(UnknownModelType, match="xgboost"):
        parse_format("xgboost")


def test_unknown_model_type_in_descriptor():
    descriptor = ModelDescriptor(name="m", data_type="wine", model_type=99, data=b"x")
    with pytest.raises(UnknownModelType):
        load_model(descriptor)
    with pytest.raises(UnknownModelType):
        parse_descriptor(descriptor.SerializeToString())


@pytest.mark.parametrize(
    ("kind", "path"),
    [("tensorflow", TF_GRAPH), ("pmml", PMML_LINEAR), ("tensorflow_saved", None), ("onnx", None)],
)
def test_corrupt_bytes_raise_a_load_error(kind, path, tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x08\x96\x01 this is not a model \xff\xfe" * 3)
    with pytest.raises(CorruptModelError):
        load_model(descriptor_from_path(bad, parse_format(kind)))


@pytest.mark.parametrize(("kind", "path"), [("tensorflow", TF_GRAPH), ("pmml", PMML_FOREST)])
def test_truncated_file_raises_a_load_error(kind, path, tmp_path):
    truncated = tmp_path / path.name
    truncated.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CorruptModelError):
        load_model(descriptor_from_path(truncated, parse_format(kind)))


def test_truncated_onnx_raises_a_load_error(onnx_path, tmp_path):
    truncated = tmp_path / "t.onnx"
    truncated.write_bytes(onnx_path.read_bytes()[:-40])
    with pytest.raises(CorruptModelError):
        load_model(descriptor_from_path(truncated, ModelType.ONNX))


def test_empty_model_file(tmp_path):
    empty = tmp_path / "empty.pmml"
    empty.write_bytes(b"")
    with pytest.raises(CorruptModelError, match="empty"):
        descriptor_from_path(empty, ModelType.PMML)


def test_empty_data_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(EmptyInputError):
        read_wine_csv(empty)


def test_missing_location(tmp_path):
    descriptor = ModelDescriptor(name="m", data_type="wine", model_type=ModelType.PMML, location=str(tmp_path / "no"))
    with pytest.raises(ModelLocationError, match="does not exist"):
        load_model(descriptor, model_roots=[tmp_path])


def test_location_outside_model_roots(tmp_path):
    descriptor = descriptor_from_path(PMML_LINEAR, ModelType.PMML, by_reference=True)
    with pytest.raises(ModelLocationError, match="outside the model roots"):
        load_model(descriptor, model_roots=[tmp_path])
    # ".." cannot climb out of a root either
    sneaky = ModelDescriptor(
        name="m", data_type="wine", model_type=ModelType.PMML, location=str(tmp_path / ".." / PMML_LINEAR.name)
    )
    with pytest.raises(ModelLocationError):
        load_model(sneaky, model_roots=[tmp_path])


def test_checksum_mismatch():
    descriptor = descriptor_from_path(PMML_LINEAR, ModelType.PMML)
    descriptor.sha256 = "0" * 64
    with pytest.raises(ChecksumMismatch):
        load_model(descriptor)


@pytest.mark.parametrize("path,kind", [(TF_GRAPH, "tensorflow"), (PMML_FOREST, "pmml"), (TF_SAVED, "tensorflow_saved")])
def test_wrong_input_width(path, kind, wine_data):
    model = load_model(descriptor_from_path(path, parse_format(kind)))
    with pytest.raises(InputShapeError, match="11"):
        model.score_batch(wine_data.features[:, :10])


def test_wrong_input_width_onnx(onnx_path, wine_data):
    model = load_model(descriptor_from_path(onnx_path, ModelType.ONNX))
    with pytest.raises(InputShapeError):
        model.score_batch(np.zeros((3, 12)))


def test_pmml_fields_missing_from_record():
    # The record schema names only 3 features; the forest needs all 11.
    descriptor = descriptor_from_path(PMML_FOREST, ModelType.PMML, metadata={"feature_names": "alcohol,pH,density"})
    with pytest.raises(ModelSchemaError, match="fixed acidity"):
        load_model(descriptor)


def test_errors_are_serving_errors_with_reasons():
    for cls in (UnknownModelType, CorruptModelError, ModelLocationError, ModelSchemaError, InputShapeError):
        assert issubclass(cls, ServingError)
        assert cls.reason and cls.reason != ServingError.reason


def test_saved_model_archive_is_reproducible(monkeypatch):
    import time as time_module

    from serving.formats.artifacts import archive_directory

    first = archive_directory(TF_SAVED)
    real = time_module.time
    monkeypatch.setattr(time_module, "time", lambda: real() + 3600)  # an hour later
    assert archive_directory(TF_SAVED) == first
    assert (
        descriptor_from_path(TF_SAVED, ModelType.TENSORFLOW_SAVED).version
        == descriptor_from_path(TF_SAVED, ModelType.TENSORFLOW_SAVED).version
    )
