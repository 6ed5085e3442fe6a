"""The ``oip`` format against a real MLServer: remote scikit-learn models score as scikit-learn does.

One MLServer process serves this module (it starts in about 2 s); its
models are trained in its own venv, and the oracle is scikit-learn's own
``predict`` and ``predict_proba`` there.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from serving.codecs.outputs import result_to_json, results_for
from serving.core.admission import ModelCache
from serving.errors import ModelSchemaError, RemoteLocationError, RemoteModelNotReady
from serving.formats import load_model, restore
from serving.formats.remote.oip import OipModel
from serving.ops.broker import free_port
from serving.pb.model_event_pb2 import ModelEvent
from serving.records.wire import DataRecord
from tests.support.mlserver import numeric_schema, oip_descriptor


@pytest.fixture(scope="module")
def served(mlserver):
    return mlserver


@pytest.fixture
def diabetes(served):
    server, expected = served
    data = expected["diabetes"]
    return server, data, numeric_schema("diabetes", data["feature_names"])


@pytest.fixture
def iris(served):
    server, expected = served
    data = expected["iris"]
    return server, data, numeric_schema("iris", data["schema_order"])


def _load(descriptor, schema):
    return load_model(descriptor, columns=schema.columns)


def test_a_remote_regressor_scores_as_scikit_learn_and_reports_the_served_version(diabetes):
    server, data, schema = diabetes
    names = ",".join(data["feature_names"])
    model = _load(oip_descriptor(server.url, "diabetes", "diabetes", feature_names=names), schema)
    try:
        assert isinstance(model, OipModel)
        scores = model.score_batch(np.asarray(data["rows"]))
    finally:
        model.close()
    assert scores.probabilities is None
    np.testing.assert_allclose(scores.scores, data["predict"], rtol=1e-12)
    assert model.served_version == "v1"  # what the server's reply said, not the descriptor's "1"
    # Every result names both: the descriptor's version and the one the server reported.
    records = [DataRecord(f"r{i}", "diabetes", 0, {}) for i in range(len(scores))]
    results = results_for(model, records, scores)
    assert {(r.model_version, r.served_version) for r in results} == {("1", "v1")}
    assert json.loads(result_to_json(results[0]))["served_version"] == "v1"


def test_a_remote_classifier_gives_scikit_learns_probabilities_bound_by_name(iris):
    """Trained on another column order than the data type's: feature_names binds the tensor's columns."""
    server, data, schema = iris
    descriptor = oip_descriptor(
        server.url,
        "iris",
        "iris",
        model_version="v3",
        output_name="predict_proba",
        feature_names=",".join(data["feature_names"]),
        labels=",".join(data["classes"]),
    )
    model = _load(descriptor, schema)
    try:
        scores = model.score_batch(np.asarray(data["rows"]))
    finally:
        model.close()
    assert scores.labels == tuple(data["classes"])
    np.testing.assert_allclose(scores.probabilities, data["predict_proba"], rtol=1e-12)
    np.testing.assert_array_equal(scores.scores, data["predict"])
    assert scores.served_version == model.served_version == "v3"


def test_a_remote_model_scores_from_an_event_loop_as_it_does_from_a_thread(iris):
    """ascore_batch, for PyFlink's AsyncFunction: the same answers, without blocking the loop."""
    server, data, schema = iris
    names = ",".join(data["feature_names"])
    model = _load(oip_descriptor(server.url, "iris", "iris", output_name="predict_proba", feature_names=names), schema)
    rows = np.asarray(data["rows"])

    async def concurrently():
        try:
            return await asyncio.gather(*(model.ascore_batch(rows[i : i + 30]) for i in range(0, len(rows), 30)))
        finally:
            await model.aclose()

    try:
        batches = asyncio.run(concurrently())
    finally:
        model.close()
    np.testing.assert_allclose(np.vstack([b.probabilities for b in batches]), data["predict_proba"], rtol=1e-12)
    np.testing.assert_array_equal(np.concatenate([b.scores for b in batches]), data["predict"])
    assert {b.served_version for b in batches} == {"v3"}


def test_a_remote_classifiers_default_output_is_its_predicted_label(iris):
    server, data, schema = iris
    model = _load(oip_descriptor(server.url, "iris", "iris", feature_names=",".join(data["feature_names"])), schema)
    try:
        scores = model.score_batch(np.asarray(data["rows"]))
    finally:
        model.close()
    np.testing.assert_array_equal(scores.scores, data["predict"])


def test_an_input_datatype_contradicting_the_servers_metadata_is_refused_at_load(diabetes):
    server, _, schema = diabetes
    descriptor = oip_descriptor(server.url, "diabetes", "diabetes", input_datatype="FP32")  # the server says FP64
    with pytest.raises(ModelSchemaError, match="contradicts"):
        _load(descriptor, schema)


def test_a_remote_model_restored_from_its_bytes_scores_the_same(diabetes):
    server, data, schema = diabetes
    model = _load(oip_descriptor(server.url, "diabetes", "diabetes"), schema)
    restored = restore(model.to_bytes(), columns=schema.columns)
    try:
        assert restored.base_url == server.url
        np.testing.assert_allclose(restored.score_batch(np.asarray(data["rows"][:20])).scores, data["predict"][:20])
    finally:
        model.close()
        restored.close()


def test_a_remote_input_narrower_than_the_bound_features_is_refused_at_load(iris):
    server, data, schema = iris
    three = ",".join(data["feature_names"][:3])  # the server's input-0 is declared [-1, 4]
    with pytest.raises(ModelSchemaError, match="takes 4 inputs but names 3"):
        _load(oip_descriptor(server.url, "iris", "iris", feature_names=three), schema)


def test_a_model_the_server_does_not_have_is_not_ready(iris):
    server, _, schema = iris
    with pytest.raises(RemoteModelNotReady, match="not ready") as raised:
        _load(oip_descriptor(server.url, "iris", "iris", model_name="no-such-model"), schema)
    assert raised.value.reason == "remote model not ready"
    assert "\n" not in str(raised.value)


def test_a_server_down_at_admission_rejects_the_model(iris):
    """Admission turns the typed error into a REJECTED event (and a dead letter), never an exception."""
    _, _, schema = iris
    nobody = f"http://127.0.0.1:{free_port()}"
    admission = ModelCache().admit(oip_descriptor(nobody, "iris", "iris").SerializeToString(), schema)
    assert admission.event.kind == ModelEvent.REJECTED
    assert admission.event.reason.startswith("remote model not ready: ")
    assert admission.dead_letter is not None and admission.model is None


def test_admission_accepts_a_ready_remote_model(iris):
    server, data, schema = iris
    descriptor = oip_descriptor(server.url, "iris", "iris", feature_names=",".join(data["feature_names"]))
    cache = ModelCache()
    admission = cache.admit(descriptor.SerializeToString(), schema)
    try:
        assert admission.accepted, admission.event.reason
    finally:
        cache.close()


@pytest.mark.parametrize(
    "location",
    ["http://10.1.2.3:8080", "http://example.com", "ftp://127.0.0.1:8080", "http://user:pw@127.0.0.1:8080", "nope"],
)
def test_a_location_off_the_allow_list_is_refused_before_any_call(location):
    schema = numeric_schema("iris", ["a", "b", "c", "d"])
    with pytest.raises(RemoteLocationError) as raised:
        load_model(oip_descriptor(location, "iris", "iris"), columns=schema.columns)
    assert raised.value.reason == "remote location not allowed"
    assert "\n" not in str(raised.value)


def test_the_allow_list_comes_from_the_settings(iris, monkeypatch):
    server, _, schema = iris
    monkeypatch.setenv("MODELSERVING_REMOTE_MODEL_HOSTS", "localhost")
    with pytest.raises(RemoteLocationError, match=r"127\.0\.0\.1"):
        _load(oip_descriptor(server.url, "iris", "iris"), schema)
    by_name = server.url.replace("127.0.0.1", "localhost")
    model = _load(oip_descriptor(by_name, "iris", "iris"), schema)
    model.close()
