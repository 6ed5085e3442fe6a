"""Evidence collection against a fake consumer: reads stop at every partition's end, offsets pair LSO with HW.

The real broker behaviour (librdkafka's end-of-partition events, ListOffsets per
isolation level) is exercised by the fault runs themselves.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError

from serving.faults.evidence import EvidenceError, partition_offsets, read_dead_letters, read_results
from serving.faults.verdict import PartitionOffsets, ScoredResult
from serving.kafka import reading
from serving.kafka.settings import KafkaSettings, Topics
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.serving_result_pb2 import ServingResult

SETTINGS = KafkaSettings(topics=Topics(results="res", dead_letters="dl", stats="st", model_events="ev"))


class Message:
    def __init__(self, partition: int, value: bytes | None = None, error: KafkaError | None = None):
        self._partition, self._value, self._error = partition, value, error

    def partition(self):
        return self._partition

    def value(self):
        return self._value

    def error(self):
        return self._error


def eof(partition: int) -> Message:
    return Message(partition, error=KafkaError(KafkaError._PARTITION_EOF))


class FakeConsumer:
    """Hands out ``script`` (then None forever); ``marks`` is (topic, partition) -> (low, high) of its isolation."""

    def __init__(self, script, marks, partitions=(0, 1)):
        self.script, self.marks, self.partitions = list(script), marks, partitions
        self.assigned, self.closed = [], False

    def list_topics(self, topic, timeout):
        meta = SimpleNamespace(partitions=dict.fromkeys(self.partitions), error=None)
        return SimpleNamespace(topics={topic: meta})

    def assign(self, partitions):
        self.assigned = [(tp.topic, tp.partition) for tp in partitions]

    def poll(self, timeout):
        return self.script.pop(0) if self.script else None

    def get_watermark_offsets(self, tp, timeout, cached):
        assert cached is False  # the broker's answer, not librdkafka's cache
        return self.marks[(tp.topic, tp.partition)]

    def close(self):
        self.closed = True


@pytest.fixture
def consumers(monkeypatch):
    """Install fake consumers by isolation level; returns the dict to fill and the list of those made."""
    by_isolation: dict[str, dict] = {}
    made: list[FakeConsumer] = []

    def make(settings, group_id=None, **overrides):
        spec = by_isolation[overrides["isolation.level"]]
        made.append(FakeConsumer(spec.get("script", []), spec.get("marks", {})))
        return made[-1]

    monkeypatch.setattr(reading, "consumer", make)  # the oracle reads through serving.kafka.reading
    return by_isolation, made


def result(record_id: str, version: str, score: float) -> bytes:
    return ServingResult(record_id=record_id, model_version=version, score=score).SerializeToString()


def test_results_are_read_until_every_partition_reports_its_end(consumers):
    by_isolation, made = consumers
    by_isolation["read_committed"] = {
        "script": [
            Message(0, result("a", "v1", 0.5)),
            eof(0),
            Message(1, result("b", "v1", 1.5)),
            Message(1, result("a", "v1", 0.5)),
            eof(1),
            Message(1, result("late", "v1", 9.0)),  # after both ends: not read
        ]
    }
    read = read_results(SETTINGS, "read_committed", timeout_s=5)
    assert read.messages == 3
    assert read.counts == {"a": 2, "b": 1}
    assert read.results == [ScoredResult("a", "v1", 0.5), ScoredResult("b", "v1", 1.5), ScoredResult("a", "v1", 0.5)]
    assert made[0].assigned == [("res", 0), ("res", 1)]
    assert made[0].closed


def test_a_read_that_never_reaches_the_end_times_out(consumers):
    by_isolation, made = consumers
    by_isolation["read_uncommitted"] = {"script": [eof(0)]}
    with pytest.raises(EvidenceError, match=r"partitions \[1\]"):
        read_results(SETTINGS, "read_uncommitted", timeout_s=0.3)
    assert made[0].closed


def test_a_permanent_error_fails_the_read(consumers):
    by_isolation, _ = consumers
    by_isolation["read_committed"] = {"script": [Message(0, error=KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))]}
    with pytest.raises(EvidenceError):
        read_results(SETTINGS, "read_committed", timeout_s=5)


def test_dead_letters_count_ids_and_reasons(consumers):
    by_isolation, _ = consumers
    letter = DeadLetter(source="data", record_id="x", reason="bad record").SerializeToString()
    other = DeadLetter(source="data", record_id="data/0/7", reason="undecodable").SerializeToString()
    model = DeadLetter(source="model", record_id="m1-corrupt", reason="corrupt model").SerializeToString()
    script = [Message(0, letter), Message(1, other), Message(1, model), eof(0), eof(1)]
    by_isolation["read_committed"] = {"script": script}
    read = read_dead_letters(SETTINGS, "read_committed", timeout_s=5)
    assert read.topic == "dl"
    assert read.counts == {"x": 1, "data/0/7": 1}  # a model's dead letter names no input record
    assert read.reasons == {"bad record": 1, "undecodable": 1, "corrupt model": 1}


def test_offsets_pair_the_committed_high_mark_as_lso_with_the_uncommitted_one_as_hw(consumers):
    by_isolation, made = consumers
    by_isolation["read_committed"] = {"marks": {("res", 0): (0, 10), ("res", 1): (2, 4)}}
    by_isolation["read_uncommitted"] = {"marks": {("res", 0): (0, 10), ("res", 1): (2, 7)}}
    assert partition_offsets(SETTINGS, ["res"]) == [
        PartitionOffsets("res", 0, 0, 10, 10),
        PartitionOffsets("res", 1, 2, 4, 7),
    ]
    assert all(c.closed for c in made)
