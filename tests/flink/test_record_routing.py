"""``RecordRouting`` (JVM) reads id, data type and ts from the wire as protobuf does, and keys as ``bucket_of``."""

from __future__ import annotations

import pytest
from pyflink.common import Types

from flink_jobs.environment import create_environment
from flink_jobs.ingest import bucket_of, routed_records
from flink_jobs.io import bytes_collection
from serving.codecs import encode_record
from serving.pb.wine_record_pb2 import WineRecord
from serving.settings import JobSettings

pytestmark = pytest.mark.flink

LONG_MIN = -(2**63)


class _Fields:
    def __call__(self, row) -> str:
        record = row[1]
        return f"{row[0]}|{record.data_type}|{record.id}|{record.ts}|{len(record.payload)}"


def route(payloads: list[bytes], buckets: int) -> list[list[str]]:
    env = create_environment(JobSettings(parallelism=1))
    routed = routed_records(bytes_collection(env, payloads, "data"), 0, buckets)
    with routed.map(_Fields(), output_type=Types.STRING()).execute_and_collect() as rows:
        return [row.split("|") for row in rows]


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
            expected.append([key, record.data_type, record.id, str(record.ts), str(len(payload))])
        assert got == sorted(expected, key=lambda r: r[2])
    assert WineRecord.FromString(later_ts).ts == 777


def test_bytes_that_are_no_record_pass_with_an_empty_key_and_no_event_time(wine_data):
    truncated = encode_record("r-1", wine_data.features[0], ts=5)[:7]
    payloads = [b"\xff\xfe not protobuf", truncated, b"\x00\x01"]
    got = route(payloads, 0)
    assert sorted(got) == sorted([["", "", "", str(LONG_MIN), str(len(p))] for p in payloads])
