"""Both jobs in a MiniCluster at parallelism 1 and 2: swap, bad model, bad data, two data types, stats.

Records cross to Python in batches built by the JVM (up to 500 per key), so
every property below holds on the batched path; one test compares each
result with its record scored alone by the model's own framework.

One scenario per (job, parallelism) carries all of these at once, and each
test asserts one property of its outputs:

* ``wine``: model A (linear PMML) from T0, a corrupt model at T0+300, model B
  (TF frozen graph) from T0+800, and 1,599 records at T0..T0+1598;
* ``wine-white``: model W (forest PMML) from T0, and 300 records;
* 5 undecodable data records mixed in.
"""

from __future__ import annotations

import collections
import hashlib
import itertools

import numpy as np
import pytest
import tensorflow as tf

from serving.pb.wine_record_pb2 import WineRecord
from serving.testing import T0
from serving.testing import corrupt_model_message as corrupt_model
from serving.testing import model_message as model
from serving.testing import wine_records as records
from tests.support.flink import run_bounded
from tests.support.reference import PMML_LINEAR, TF_GRAPH, pmml_rows

pytestmark = pytest.mark.flink

GARBAGE = [b"\xff\xfe not protobuf", b"", WineRecord(data_type="wine").SerializeToString(), b"\x0a\x01x", b"\x12\x00"]
SWAP_AT = 800
CORRUPT_AT = 300


@pytest.fixture(scope="module", params=[("keyed", 1), ("keyed", 2), ("partitioned", 1), ("partitioned", 2)], ids=str)
def scenario(request, tmp_path_factory, wine_data):
    job, parallelism = request.param
    red = records(wine_data.features)
    white = records(wine_data.features[:300], data_type="wine-white", prefix="w")
    data = list(itertools.chain.from_iterable(zip(red, white))) + red[len(white) :]
    for i, junk in enumerate(GARBAGE):
        data.insert(100 + 200 * i, junk)
    models = [
        model("linear", "A", T0),
        corrupt_model("corrupt", T0 + CORRUPT_AT),
        model("tf", "B", T0 + SWAP_AT),
        model("forest", "W", T0, data_type="wine-white"),
    ]
    outputs = run_bounded(
        tmp_path_factory.mktemp(f"{job}{parallelism}"), job, parallelism, data, models, wine_shaped=("wine-white",)
    )
    return outputs, wine_data


def by_type(results, data_type):
    return [r for r in results if r["data_type"] == data_type]


def test_every_record_is_scored_exactly_once(scenario):
    outputs, _ = scenario
    ids = collections.Counter(r["record_id"] for r in outputs.results)
    assert max(ids.values()) == 1, "a record was scored twice"
    assert set(ids) == {str(i) for i in range(1599)} | {f"w{i}" for i in range(300)}


def test_every_result_names_the_artifact_and_where_its_record_was_read(scenario):
    """Provenance, through the event-time buffers: the artifact's sha256 and the record's position in the input."""
    outputs, _ = scenario
    artifact = {"A": PMML_LINEAR, "B": TF_GRAPH}
    for r in by_type(outputs.results, "wine"):
        assert r["model_sha256"] == hashlib.sha256(artifact[r["model_version"]].read_bytes()).hexdigest()
    offsets = [r["source"]["offset"] for r in outputs.results]
    # A collection source's offset is the record's position; the garbage in between never becomes a result.
    assert len(set(offsets)) == len(offsets) == 1599 + 300 and {r["role"] for r in outputs.results} == {"champion"}


def test_swap_mid_stream_every_result_names_the_model_current_at_its_time(scenario):
    outputs, _ = scenario
    wine = by_type(outputs.results, "wine")
    versions = {int(r["record_id"]): r["model_version"] for r in wine}
    assert {v for i, v in versions.items() if i < SWAP_AT} == {"A"}
    assert {v for i, v in versions.items() if i >= SWAP_AT} == {"B"}
    assert all(r["model_name"] == {"A": "linear", "B": "tf"}[r["model_version"]] for r in wine)
    # B is the TF classifier: its score is a class index, A's a regression value.
    assert all(float(r["score"]).is_integer() for r in wine if r["model_version"] == "B")


def test_corrupt_model_is_rejected_and_the_previous_model_keeps_serving(scenario):
    outputs, _ = scenario
    rejected = [e for e in outputs.model_events if e["kind"] == "REJECTED"]
    assert [e["version"] for e in rejected] == ["corrupt"]
    assert rejected[0]["reason"]
    model_letters = [d for d in outputs.dead_letters if d["source"] == "model"]
    assert len(model_letters) == 1 and model_letters[0]["payload_hex"]
    # Records between the corrupt model's time and B's were served by A.
    wine = {int(r["record_id"]): r["model_version"] for r in by_type(outputs.results, "wine")}
    assert {wine[i] for i in range(CORRUPT_AT, SWAP_AT)} == {"A"}
    accepted = {e["version"] for e in outputs.model_events if e["kind"] == "ACCEPTED"}
    assert accepted == {"A", "B", "W"}


def test_bad_data_goes_to_dead_letters_with_reason_and_bytes(scenario):
    outputs, _ = scenario
    letters = [d for d in outputs.dead_letters if d["source"] == "data"]
    assert sorted(bytes.fromhex(d["payload_hex"]) for d in letters) == sorted(GARBAGE)
    # b"" is an empty record (a tombstone); the others do not decode, or lack their id or data type.
    assert {d["reason"] for d in letters} == {"undecodable record", "empty record"}


def test_two_data_types_are_served_by_their_own_models(scenario):
    outputs, _ = scenario
    white = by_type(outputs.results, "wine-white")
    assert len(white) == 300 and {r["model_version"] for r in white} == {"W"}
    assert {r["model_version"] for r in by_type(outputs.results, "wine")} == {"A", "B"}


def test_stats_usage_matches_results_and_min_mean_max_are_ordered(scenario):
    outputs, _ = scenario
    # Usage is cumulative per instance and version, so the largest emission is the latest.
    latest = {}
    for s in sorted(outputs.stats, key=lambda s: s["usage"]):
        latest[(s["instance"], s["version"])] = s
    usage = collections.Counter()
    for (_, version), s in latest.items():
        usage[version] += s["usage"]
        if s["usage"]:
            assert s["min_duration_ns"] <= s["mean_duration_ns"] <= s["max_duration_ns"]
    scored = collections.Counter(r["model_version"] for r in outputs.results)
    assert usage == scored


def _tf_alone(features: np.ndarray) -> list[np.ndarray]:
    """The TF graph's class probabilities for each row scored on its own: one session run per record."""
    graph_def = tf.compat.v1.GraphDef.FromString(TF_GRAPH.read_bytes())
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return [
                session.run("dense_3/Sigmoid:0", {"dense_1_input:0": row[None, :].astype(np.float32)})[0]
                for row in features
            ]


def test_each_batched_result_equals_its_record_scored_alone_by_the_framework(scenario, jpmml):
    outputs, wine_data = scenario
    wine = {int(r["record_id"]): r for r in by_type(outputs.results, "wine")}
    tf_ids = sorted(i for i, r in wine.items() if r["model_version"] == "B")
    for i, expected in zip(tf_ids, _tf_alone(wine_data.features[tf_ids])):
        np.testing.assert_allclose(wine[i]["probabilities"], expected, atol=1e-6, rtol=0)
        assert wine[i]["score"] == int(np.argmax(expected))
    linear_ids = sorted(i for i, r in wine.items() if r["model_version"] == "A")
    rows = pmml_rows(jpmml, PMML_LINEAR, wine_data.features[linear_ids])
    expected = jpmml.answers(PMML_LINEAR, rows).predicted
    np.testing.assert_allclose([wine[i]["score"] for i in linear_ids], expected, atol=1e-9, rtol=1e-9)
