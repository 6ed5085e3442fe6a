"""``RecordRouting`` (JVM) reads id, data type and ts from the wire as protobuf does, and keys as ``bucket_of``."""

from __future__ import annotations

import pytest
from pyflink.common import Row, Types

from flink_jobs.environment import create_environment
from flink_jobs.ingest import bucket_of, routed_records
from flink_jobs.tags import KAFKA_RECORD
from serving.pb.wine_record_pb2 import WineRecord
from serving.records.wine import encode_record
from serving.settings import JobSettings

pytestmark = pytest.mark.flink

LONG_MIN = -(2**63)


class _Fields:
    def __call__(self, row) -> str:
        record = row[1]
        return f"{row[0]}|{record.data_type}|{record.id}|{record.ts}|{len(record.payload)}|{record.topic}"


def route(
    payloads: list[bytes],
    buckets: int,
    max_future_skew_ms: int = 0,
    *,
    topic: str = "",
    kafka_ts: int = LONG_MIN,
    prefix: str = "",
    with_topic: bool = False,
) -> list[list[str]]:
    env = create_environment(JobSettings(parallelism=1))
    rows = [Row(topic, 0, offset, kafka_ts, p) for offset, p in enumerate(payloads)]
    source = env.from_collection(rows, type_info=KAFKA_RECORD)
    routed = routed_records(source, 0, buckets, max_future_skew_ms, prefix)
    with routed.map(_Fields(), output_type=Types.STRING()).execute_and_collect() as rows:
        return [row.split("|")[:5] for row in rows] if not with_topic else [row.split("|") for row in rows]


def test_valid_records_are_keyed_and_timestamped_as_protobuf_reads_them(wine_data):
    later_ts = encode_record("r-3", wine_data.features[2], ts=10) + b"\x18\x89\x06"  # ts again: 777 wins
    unknown = encode_record("r-4", wine_data.features[3], ts=11) + b"\xf8\x06\x01"  # field 111, a varint
    payloads = [
        encode_record("r-1", wine_data.features[0], ts=1_700_000_000_123),
        encode_record("ünïcode-2", wine_data.features[1], ts=-5, data_type="wine-white"),
        later_ts,
        unknown,
    ]
    for buckets in (0, 8):
        got = sorted(route(payloads, buckets), key=lambda r: r[2])
        expected = []
        for payload in payloads:
            record = WineRecord.FromString(payload)
            key = bucket_of(record.id, buckets) if buckets else record.data_type
            ts = record.ts if record.ts >= 0 else LONG_MIN  # a negative ts never reaches a watermark
            expected.append([key, record.data_type, record.id, str(ts), str(len(payload))])
        assert got == sorted(expected, key=lambda r: r[2])
    assert WineRecord.FromString(later_ts).ts == 777


def test_a_ts_out_of_range_keeps_its_key_but_never_reaches_a_watermark(wine_data):
    """Year 3000 moved the watermark for good, and 2^63-1 crashed the job; both now travel as no event time."""
    import time

    now = int(time.time() * 1000)
    hour = 3_600_000
    cases = {
        "zero": 0,
        "now": now,
        "in-skew": now + hour - 60_000,
        "past-skew": now + hour + 60_000,
        "year-3000": 32_503_680_000_000,
        "long-max": 2**63 - 1,
    }
    payloads = [encode_record(name, wine_data.features[0], ts=ts) for name, ts in cases.items()]
    got = {row[2]: (row[0], row[3]) for row in route(payloads, 0, max_future_skew_ms=hour, kafka_ts=now - 1)}
    assert got == {
        "zero": ("wine", str(now - 1)),  # proto3 writes no ts of 0: the Kafka timestamp is the event time
        "now": ("wine", str(now)),
        "in-skew": ("wine", str(now + hour - 60_000)),
        "past-skew": ("wine", str(LONG_MIN)),
        "year-3000": ("wine", str(LONG_MIN)),
        "long-max": ("wine", str(LONG_MIN)),
    }


def test_bytes_that_are_no_record_pass_with_an_empty_key_and_no_event_time(wine_data):
    truncated = encode_record("r-1", wine_data.features[0], ts=5)[:7]
    payloads = [b"\xff\xfe not protobuf", truncated, b"\x00\x01"]
    got = route(payloads, 0)
    assert sorted(got) == sorted([["", "", "", str(LONG_MIN), str(len(p))] for p in payloads])


def test_a_data_topic_names_the_data_type_and_json_or_avro_keep_the_kafka_coordinates_and_time():
    """Records in any wire format on ``data.<type>``: no protobuf is assumed, Kafka metadata routes them."""
    json_record = b'{"sepal_length": 5.1, "txn": "a"}'
    avro_record = b"\x00\x00\x00\x00\x07" + b"\x02\x04"
    got = route([json_record, avro_record], 0, topic="data.iris", kafka_ts=1_700_000_000_500, prefix="data.")
    assert got == [
        ["iris", "iris", "data.iris/0/0", "1700000000500", str(len(json_record))],
        ["iris", "iris", "data.iris/0/1", "1700000000500", str(len(avro_record))],
    ]
    # On a topic that names no data type, a JSON record cannot be routed: empty data type, Kafka time.
    [[key, data_type, record_id, ts, _]] = route([json_record], 0, topic="wine-data", kafka_ts=5, prefix="data.")
    assert (key, data_type, record_id, ts) == ("", "", "wine-data/0/0", "5")


def test_every_record_carries_its_topic_into_python():
    """Each result names where its record was read (provenance): the topic too, whether or not the id is made of it."""
    own_id = encode_record("r-1", [0.5] * 11, ts=7)
    no_id = b'{"sepal_length": 5.1}'
    got = route([own_id, no_id], 0, topic="data.iris", kafka_ts=9, prefix="data.", with_topic=True)
    assert [(row[2], row[5]) for row in got] == [("r-1", "data.iris"), ("data.iris/0/1", "data.iris")]
