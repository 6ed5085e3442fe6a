"""Micro-batching (B records, T ms) in both jobs, in a MiniCluster.

The oracle is record-by-record scoring outside Flink: each record decoded
from its bytes and scored alone (``Model.score``) by the model the event-time
rule names for it. The jobs run with a small B, so every flush is split over
several ``score_batch`` calls, and a wide T, so the buffer holds hundreds of
records when the swap arrives.
"""

from __future__ import annotations

import collections

import pytest

from serving.formats import load_model, parse_descriptor
from serving.records.wine import decode_record, record_features
from serving.testing import T0
from serving.testing import model_message as model
from serving.testing import wine_records as records
from tests.support.flink import run_bounded

pytestmark = pytest.mark.flink

#: Records 0..SWAP_AT-1 belong to model A, the rest to model B.
SWAP_AT = 700
#: B: a flush of a 250 ms slot (250 records) becomes batches of 37, 37, ... 28.
BATCH_SIZE = 37
#: T: event-time slot width; the swap lands in the middle of the slot [T0+500, T0+750).
BATCH_WAIT_MS = 250


@pytest.fixture(scope="module", params=[("keyed", 1), ("partitioned", 2)], ids=str)
def batched(request, tmp_path_factory, wine_data):
    job, parallelism = request.param
    data = records(wine_data.features)
    models = [model("linear", "A", T0), model("tf", "B", T0 + SWAP_AT)]
    outputs = run_bounded(
        tmp_path_factory.mktemp(f"batch-{job}{parallelism}"),
        job,
        parallelism,
        data,
        models,
        batch_size=BATCH_SIZE,
        batch_wait_ms=BATCH_WAIT_MS,
    )
    return outputs, data, models


def record_by_record(data: list[bytes], models: list[bytes]) -> dict[str, tuple[str, float, list[float]]]:
    """``record id -> (version, score, probabilities)``, each record scored alone by its model."""
    built = sorted((load_model(parse_descriptor(m)) for m in models), key=lambda m: m.descriptor.created_at)
    expected = {}
    for payload in data:
        record = decode_record(payload)
        current = [m for m in built if m.descriptor.created_at <= record.ts][-1]
        score = current.score(record_features(record))
        expected[record.id] = (current.version, score.score, list(score.probabilities or ()))
    return expected


def test_batching_changes_no_result(batched):
    outputs, data, models = batched
    expected = record_by_record(data, models)
    got = {r["record_id"]: r for r in outputs.results}
    assert collections.Counter(r["record_id"] for r in outputs.results).most_common(1)[0][1] == 1
    assert set(got) == set(expected)
    for record_id, (version, score, probabilities) in expected.items():
        result = got[record_id]
        assert result["model_version"] == version, record_id
        # The TF graph computes in float32: a batch may round differently from a single row.
        assert result["score"] == pytest.approx(score, abs=1e-6), record_id
        assert result.get("probabilities", []) == pytest.approx(probabilities, abs=1e-6), record_id


def test_swap_with_a_half_full_buffer_scores_its_records_with_the_old_model(batched):
    outputs, _, _ = batched
    versions = {int(r["record_id"]): r["model_version"] for r in outputs.results}
    # The slot [T0+500, T0+750) holds records of both models when B arrives at T0+700.
    in_slot = {i: v for i, v in versions.items() if 500 <= i < 750}
    assert {v for i, v in in_slot.items() if i < SWAP_AT} == {"A"}
    assert {v for i, v in in_slot.items() if i >= SWAP_AT} == {"B"}
    assert collections.Counter(versions.values()) == {"A": SWAP_AT, "B": len(versions) - SWAP_AT}
