"""``arrival`` selection and late records on a real broker, through the JVM's record batches.

One keyed job with ``--selection arrival --late-records dead-letter``:

* records are scored by the model serving when their batch arrives, so a model
  whose ``created_at`` lies after their ``ts`` still scores them once it has
  been accepted (``event-time`` selection would keep the older one);
* a record already behind the watermark when it reaches the job is a dead
  letter with reason ``late`` and its bytes, never dropped, never scored.
"""

from __future__ import annotations

import collections
import time

import pytest

from serving.clock import now_ms
from serving.ops.jobprocess import LocalJob
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult
from serving.records.wine import encode_record
from serving.testing import model_message as model
from tests.support.kafka import read_all, results, send, wait_for_event

pytestmark = [pytest.mark.kafka, pytest.mark.flink]


def test_arrival_serves_the_newest_accepted_model_and_late_records_are_dead_lettered(
    kafka_settings, tmp_path, wine_data
):
    rows, topics = wine_data.features, kafka_settings.topics
    job = LocalJob(
        kafka_settings, "keyed", tmp_path, job_args=("--selection", "arrival", "--late-records", "dead-letter")
    )
    try:
        send(kafka_settings, topics.models, [model("linear", "A", now_ms())], key=b"wine")
        assert wait_for_event(kafka_settings, "A").kind == ModelEvent.ACCEPTED
        first = [encode_record(f"a{i}", rows[i], ts=now_ms()) for i in range(200)]
        send(kafka_settings, topics.data, first)
        results(kafka_settings, 200, timeout=120)

        # B is stamped 30 s ahead: by event time it would score none of the records below.
        b_created = now_ms() + 30_000
        send(kafka_settings, topics.models, [model("tf", "B", b_created)], key=b"wine")
        assert wait_for_event(kafka_settings, "B").kind == ModelEvent.ACCEPTED
        second = [encode_record(f"b{i}", rows[i], ts=now_ms()) for i in range(200)]
        late_ts = now_ms() - 60_000  # far behind the watermark the first records moved
        late = [encode_record(f"late{i}", rows[i], ts=late_ts + i) for i in range(5)]
        send(kafka_settings, topics.data, second[:100] + late + second[100:])
        got = results(kafka_settings, 400, timeout=120)
        time.sleep(2)  # a duplicate or a late record scored after all would show by now
        got = [ServingResult.FromString(v) for v in read_all(kafka_settings, topics.results, None, 5)]
        letters = [DeadLetter.FromString(v) for v in read_all(kafka_settings, topics.dead_letters, 5, 30)]
    finally:
        job.stop()
    counts = collections.Counter(r.record_id for r in got)
    assert set(counts) == {f"a{i}" for i in range(200)} | {f"b{i}" for i in range(200)}
    assert set(counts.values()) == {1}
    versions = {r.record_id: r.model_version for r in got}
    assert {versions[f"a{i}"] for i in range(200)} == {"A"}
    assert {versions[f"b{i}"] for i in range(200)} == {"B"}
    assert sorted(d.record_id for d in letters if d.reason == "late") == [f"late{i}" for i in range(5)]
    assert {d.payload for d in letters if d.reason == "late"} == set(late)
