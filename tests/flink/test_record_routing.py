"""``RecordRouting`` (JVM) reads id, data type and ts from the wire as protobuf does, and keys as ``bucket_of``."""

from __future__ import annotations

import pytest
from pyflink.common import Types

from flink_jobs.environment import create_environment
from flink_jobs.ingest import bucket_of, routed_records
from flink_jobs.io import bytes_collection
from serving.pb.wine_record_pb2 import WineRecord
from serving.records.wine import encode_record
from serving.settings import JobSettings

pytestmark = pytest.mark.flink

LONG_MIN = -(2**63)


class _Fields:
    def __call__(self, row) -> str:
        record = row[1]
        return f"{row[0]}|{record.data_type}|{record.id}|{record.ts}|{len(record.payload)}"


def route(payloads: list[bytes], buckets: int, max_future_skew_ms: int = 0) -> list[list[str]]:
    env = create_environment(JobSettings(parallelism=1))
    routed = routed_records(bytes_collection(env, payloads, "data"), 0, buckets, max_future_skew_ms)
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
    got = {row[2]: (row[0], row[3]) for row in route(payloads, 0, max_future_skew_ms=hour)}
    assert got == {
        "zero": ("wine", "0"),
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
