"""``modelserving audit RECORD_ID``: reads results and model events committed-only to their end, prints the answer.

Kafka is replaced by fake consumers that hand out hand-made messages and the
end of each partition; expected lines and JSON are written out by hand.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError

from serving.cli import main
from serving.kafka import clients, reading
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult

BROKER = ["--bootstrap-servers", "127.0.0.1:9"]

EVENTS = [
    ModelEvent(kind=ModelEvent.ACCEPTED, data_type="wine", version="v1", ts=1000, sha256="a1", signed_by="k1"),
    ModelEvent(kind=ModelEvent.PROMOTED, data_type="wine", version="v2", ts=3000, role="champion", sha256="b2"),
]
RESULTS = [
    ServingResult(record_id="r1", data_type="wine", model_name="rf", model_version="v1", record_ts=1500, score=5.0,
                  model_sha256="a1", source_topic="wine-data", source_partition=0, source_offset=7),
    ServingResult(record_id="r2", data_type="wine", model_name="rf", model_version="v2", record_ts=3500, score=6.0,
                  model_sha256="b2", role="champion"),
]  # fmt: skip


class Message:
    def __init__(self, partition, value=None, error=None):
        self._partition, self._value, self._error = partition, value, error

    def partition(self):
        return self._partition

    def value(self):
        return self._value

    def error(self):
        return self._error


class FakeConsumer:
    """One partition per topic: its messages, then the end of the partition."""

    def __init__(self, config, by_topic):
        self.config, self.by_topic, self.script = config, by_topic, []

    def list_topics(self, topic, timeout):
        return SimpleNamespace(topics={topic: SimpleNamespace(partitions={0: None}, error=None)})

    def assign(self, partitions):
        (tp,) = partitions
        self.script = [Message(0, v) for v in self.by_topic[tp.topic]] + [
            Message(0, error=KafkaError(KafkaError._PARTITION_EOF))
        ]

    def poll(self, timeout):
        return self.script.pop(0) if self.script else None

    def close(self):
        pass


@pytest.fixture
def topics(monkeypatch):
    """Fake the broker; returns (topic -> message values to serve, the consumers' configs)."""
    by_topic = {
        "serving-results": [r.SerializeToString() for r in RESULTS],
        "model-events": [e.SerializeToString() for e in EVENTS],
    }
    configs: list[dict] = []

    def make(settings, group_id=None, **overrides):
        configs.append({"group.id": group_id, **overrides})
        return FakeConsumer(configs[-1], by_topic)

    monkeypatch.setattr(clients, "check_reachable", lambda settings, timeout=5.0: None)
    monkeypatch.setattr(reading, "consumer", make)
    return by_topic, configs


def test_the_answer_in_lines_read_committed_to_the_end(topics, capsys):
    _, configs = topics
    assert main(["audit", "r1", *BROKER]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "wine record 'r1' (ts 1970-01-01T00:00:01.500Z) was scored by rf version v1 as champion: score 5",
        "  artifact sha256 a1",
        "  read from wine-data partition 0 offset 7",
        "  deployed: 1970-01-01T00:00:01.000Z (ACCEPTED of v1)",
        "  retired:  1970-01-01T00:00:03.000Z (PROMOTED of v2)",
        "  signed by: k1",
    ]
    assert len(configs) == 2
    assert all(c["isolation.level"] == "read_committed" and c["enable.partition.eof"] for c in configs)


def test_the_answer_as_json(topics, capsys):
    assert main(["audit", "r2", "--json", *BROKER]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["record_id"] == "r2"
    (only,) = answer["results"]
    assert (only["model_version"], only["model_sha256"], only["role"], only["record_ts"]) == (
        "v2",
        "b2",
        "champion",
        3500,
    )
    assert only["deployed"] == {"kind": "PROMOTED", "ts": 3000, "version": "v2", "reason": ""}
    assert only["retired"] is None
    assert only["signed_by"] == ""


def test_a_record_never_scored_is_one_line(topics, capsys):
    assert main(["audit", "zz", *BROKER]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        "modelserving audit: error: record 'zz' was never scored: none of the 2 results read carries it"
    ]


def test_messages_that_do_not_decode_are_skipped_and_counted(topics, capsys):
    by_topic, _ = topics
    by_topic["serving-results"].insert(0, b"\xff\xff\xff")
    assert main(["audit", "r1", *BROKER]) == 0
    captured = capsys.readouterr()
    assert "scored by rf version v1" in captured.out
    assert captured.err.strip() == "skipped 1 messages that did not decode"


def test_a_missing_topic_is_one_line(topics, capsys, monkeypatch):
    def no_topic(self, topic, timeout):
        return SimpleNamespace(topics={})

    monkeypatch.setattr(FakeConsumer, "list_topics", no_topic)
    assert main(["audit", "r1", *BROKER]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "modelserving audit: error: cannot read model-events: it does not exist"
    ]
