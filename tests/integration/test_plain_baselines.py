"""The benchmark's plain baselines on a real broker: the transactional loop returns every id exactly once.

``plain-tx`` is what a user who needs exactly-once would write instead of a
Flink job (issue 16's baseline): per poll, one transaction holds the results
and the consumed offsets. The oracle reads with ``read_committed`` and counts
by record id.
"""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import TopicPartition

from serving.bench.plain import plain_worker
from serving.formats import descriptor_from_path
from serving.kafka.clients import consumer
from serving.pb.serving_result_pb2 import ServingResult
from serving.records import wine
from tests.support.kafka import read_all, send
from tests.support.reference import TF_GRAPH

pytestmark = [pytest.mark.kafka]


def test_the_transactional_plain_loop_returns_every_id_once(kafka_settings):
    topics = kafka_settings.topics
    send(kafka_settings, topics.models, [descriptor_from_path(TF_GRAPH, "tensorflow").SerializeToString()])
    features = wine.read_wine_csv(wine.reference_csv()).features[:600]
    send(kafka_settings, topics.data, [wine.encode_record(f"r{i}", row) for i, row in enumerate(features)])
    stop = threading.Event()
    produced: list[int] = []
    worker = threading.Thread(target=lambda: produced.append(plain_worker(kafka_settings, stop, 100, True)))
    worker.start()
    try:
        values = read_all(kafka_settings, topics.results, expected=600, timeout=120)
    finally:
        stop.set()
        worker.join(60)
    ids = [ServingResult.FromString(v).record_id for v in values]
    assert sorted(ids) == sorted(f"r{i}" for i in range(600)) and produced == [600]
    # The offsets went with the results (auto-commit is off): the group resumes after all 600.
    group = consumer(kafka_settings, group_id=f"{kafka_settings.group_id}-plain")
    try:
        partitions = group.list_topics(topics.data, timeout=10).topics[topics.data].partitions
        committed = group.committed([TopicPartition(topics.data, p) for p in partitions], timeout=10)
        data_ends = [group.get_watermark_offsets(TopicPartition(topics.data, p), timeout=10)[1] for p in partitions]
        results_partitions = group.list_topics(topics.results, timeout=10).topics[topics.results].partitions
        ends = [
            group.get_watermark_offsets(TopicPartition(topics.results, p), timeout=10)[1] for p in results_partitions
        ]
    finally:
        group.close()
    # Keyless records may all stick to one partition: a partition that got none has nothing to commit.
    assert sum(data_ends) == 600
    assert [tp.offset for tp, end in zip(committed, data_ends, strict=True) if end] == [e for e in data_ends if e]
    # Each commit leaves a transaction marker after its results: more offsets than results.
    assert sum(ends) > 600
