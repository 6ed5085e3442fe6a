"""Hostile input on a real broker: every one ends as a dead letter with its reason, and the job never restarts.

Each hostile message arrives between valid records, as a user's producers
might send it. Found on a running keyed job before the fix: a 1.5 MB record
or model put the job in a restart loop (its dead letter was over the sink's
1 MB request cap) and ``ts = 2^63-1`` crashed the flush timer; both stopped
all scoring. A year-3000 ``ts`` moved the watermark for good, an unknown data
type or a tombstone vanished, a truncated record was scored with zeros, a
float32 overflow was scored as infinity, and a newline in a model name forged
a log line.
"""

from __future__ import annotations

import collections
import hashlib
import os
import time

import pytest

from serving.clock import now_ms
from serving.core.model import ModelType
from serving.formats import descriptor_from_path
from serving.ops.broker import free_port
from serving.ops.jobprocess import LocalJob
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult
from serving.pb.wine_record_pb2 import WineRecord
from serving.records.wine import encode_record
from tests.support.kafka import read_all, results, send, wait_for_event
from tests.support.reference import TF_GRAPH

pytestmark = [pytest.mark.kafka, pytest.mark.flink]

#: A model name that, logged raw, would write a forged line into the job log.
FORGED = 'evil\nts=2026-01-01T00:00:00 level=error logger=modelserving.job event="INJECTED LINE"'
MEGA = 1_500_000


def _truncated_but_parsable(record: bytes) -> bytes:
    """The longest proper prefix of ``record`` that protobuf still parses (a cut at a field boundary)."""
    for length in range(len(record) - 1, 0, -1):
        try:
            WineRecord.FromString(record[:length])
        except Exception:
            continue
        return record[:length]
    raise AssertionError("no parsable prefix")


def _tf_model(version: str, name: str = "tf") -> bytes:
    descriptor = descriptor_from_path(TF_GRAPH, ModelType.TENSORFLOW, version=version, name=name)
    descriptor.created_at = now_ms()
    return descriptor.SerializeToString()


def test_hostile_input_ends_in_dead_letters_and_never_restarts_the_job(kafka_settings, tmp_path, wine_data):
    rows = wine_data.features
    topics = kafka_settings.topics
    job = LocalJob(
        kafka_settings,
        "keyed",
        tmp_path,
        restart_attempts=5,  # a crash would show as a restart, not as a dead job
        rest_port=free_port(),
        job_args=("--max-hold-ms", "3000"),
    )
    valid: list[str] = []

    def send_valid(count: int) -> None:
        batch = [f"v-{len(valid) + i}" for i in range(count)]
        send(kafka_settings, topics.data, [encode_record(i, rows[int(i[2:])], ts=now_ms()) for i in batch])
        valid.extend(batch)

    huge_record = os.urandom(MEGA)
    overflow = rows[3].copy()
    overflow[0] = 1e308
    underflow = rows[4].copy()
    underflow[5] = -1e308
    truncated = _truncated_but_parsable(encode_record("truncated", rows[2], ts=now_ms()))
    huge_model = descriptor_from_path(TF_GRAPH, ModelType.TENSORFLOW, version="H", name="huge")
    huge_model.data = os.urandom(MEGA)
    huge_model.sha256 = ""
    huge_model.created_at = now_ms()
    hostile_records: dict[str, bytes | None] = {
        "huge": huge_record,
        "ts-max": encode_record("ts-max", rows[0], ts=2**63 - 1),
        "year-3000": encode_record("year-3000", rows[0], ts=32_503_680_000_000),
        "unknown-type": encode_record("unknown-type", rows[0], ts=now_ms(), data_type="fraud"),
        "tombstone": None,
        "truncated": truncated,
        "overflow": encode_record("overflow", overflow, ts=now_ms()),
        "underflow": encode_record("underflow", underflow, ts=now_ms()),
    }
    try:
        send(kafka_settings, topics.models, [_tf_model("A")], key=b"wine")
        assert wait_for_event(kafka_settings, "A").kind == ModelEvent.ACCEPTED
        for name, message in hostile_records.items():
            send_valid(20)
            send(kafka_settings, topics.data, [message], key=name.encode())
            time.sleep(0.2)
        send_valid(20)
        send(kafka_settings, topics.models, [huge_model.SerializeToString()], key=b"wine")
        send_valid(20)
        send(kafka_settings, topics.models, [_tf_model("N", name=FORGED)], key=b"wine")
        assert wait_for_event(kafka_settings, "N").kind == ModelEvent.ACCEPTED
        send_valid(20)
        got = results(kafka_settings, len(valid), timeout=180)
        letters = [DeadLetter.FromString(v) for v in read_all(kafka_settings, topics.dead_letters, 9, timeout=60)]
        time.sleep(3)  # a duplicate would arrive after the last expected result
        got = [ServingResult.FromString(v) for v in read_all(kafka_settings, topics.results, None, 10)]
        events = [ModelEvent.FromString(v) for v in read_all(kafka_settings, topics.model_events, None, 10)]
        restarts = job.restarts()
    finally:
        job.stop()

    counts = collections.Counter(r.record_id for r in got)
    assert set(counts) == set(valid), f"lost {sorted(set(valid) - set(counts))[:5]}"
    assert max(counts.values()) == 1, "duplicates in committed results"
    assert restarts == 0, "the job restarted"

    by_id = {letter.record_id: letter for letter in letters if letter.record_id}
    # 1.5 MB record: refused unparsed, its dead letter keeps a prefix, the size and the digest.
    [big] = [d for d in letters if d.payload_sha256 == hashlib.sha256(huge_record).hexdigest()]
    assert big.reason == "record too large" and big.payload_truncated and big.payload_size == MEGA
    assert huge_record.startswith(big.payload) and 0 < len(big.payload) < MEGA
    for name in ("ts-max", "year-3000"):
        assert by_id.get(name) is None  # refused before the id is trusted: found by its bytes
        [letter] = [d for d in letters if d.payload == hostile_records[name]]
        assert letter.reason == "ts out of range", letter.detail
    [unknown] = [d for d in letters if d.payload == hostile_records["unknown-type"]]
    assert unknown.reason == "unknown data type" and unknown.data_type == "fraud"
    [tombstone] = [d for d in letters if d.reason == "empty record"]
    assert tombstone.payload == b"" and tombstone.payload_size == 0
    [cut] = [d for d in letters if d.payload == truncated]
    assert cut.reason == "missing feature" and "lacks" in cut.detail
    assert by_id["overflow"].reason == "input out of range" and "fixed_acidity = 1e+308" in by_id["overflow"].detail
    assert by_id["underflow"].reason == "input out of range" and "free_sulfur_dioxide" in by_id["underflow"].detail
    # 1.5 MB model: rejected, the old model kept serving, its dead letter fits the topic.
    [model_letter] = [d for d in letters if d.source == "model"]
    assert model_letter.payload_truncated and model_letter.payload_size > MEGA
    assert [e.kind for e in events if e.version == "H"] == [ModelEvent.REJECTED]
    assert {r.model_version for r in got if int(r.record_id[2:]) < 200} == {"A"}
    assert len(letters) == 9
    # A newline in a model name: the event carries it as data, the log escapes it.
    [forged] = [e for e in events if e.version == "N"]
    assert forged.name == FORGED
    log = job.log_path.read_text(errors="replace")
    assert "\\nts=2026-01-01T00:00:00 level=error" in log
    assert not any(line.startswith("ts=2026-01-01T00:00:00") for line in log.splitlines())
