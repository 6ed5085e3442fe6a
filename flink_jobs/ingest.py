"""Routing the raw input streams, their event-time watermarks, and the record key.

Every hop between the JVM and a Python worker costs tens of microseconds per
element (BENCHMARKS.md, issues 8 and 16), so a data record crosses to Python
once, inside a batch: the JVM reads its id, data type and ts from the
protobuf wire format (``RecordRouting`` from ``scripts/java``), stamps event
time (``RowFieldTimestampAssigner``), bundles each key's records
(``RecordBundler``) and keys the bundles, and the serving function decodes
and validates every record. PyFlink's own way would add three
Python operators: a decoder, a timestamp assigner and a key-by map.

Models take no Python hop of their own either (``ModelRouting``): a model
that reaches the serving function late loses the race against the records it
should score, and the function's admission decodes and validates it anyway.

Neither routing lets a timestamp outside the accepted range (0 to
``max_future_skew_ms`` ahead of the wall clock) reach a watermark.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.datastream import DataStream, KeyedStream
from pyflink.java_gateway import get_gateway

from flink_jobs.tags import BUNDLE_ROW, BYTES, KEYED_RECORD_ROW, MODEL_ROW


def bucket_of(record_id: str, buckets: int) -> str:
    """The hash bucket of a record id: ``crc32(id) % buckets``, as ``RecordRouting`` computes it in the JVM."""
    return str(zlib.crc32(record_id.encode()) % buckets)


def jvm_timestamps(stream: DataStream, path: Sequence[int], strategy: WatermarkStrategy) -> DataStream:
    """``stream`` with event time read in the JVM from the ``long`` field at ``path`` (positions in nested rows).

    ``strategy`` sets the watermarks (out-of-orderness, idleness); its timestamp
    assigner is replaced by ``io.modelserving.flink.RowFieldTimestampAssigner``.
    """
    gateway = get_gateway()
    positions = gateway.new_array(gateway.jvm.int, len(path))
    for i, position in enumerate(path):
        positions[i] = position
    assigner = gateway.jvm.io.modelserving.flink.RowFieldTimestampAssigner(positions)
    return stream.assign_timestamps_and_watermarks(
        WatermarkStrategy(strategy._j_watermark_strategy.withTimestampAssigner(assigner))
    )


def keyed_by_first_field(stream: DataStream, value_type) -> KeyedStream:
    """Key a stream of ``Row(key STRING, value)`` in the JVM, as PyFlink's own ``key_by`` does after its Python map.

    The resulting ``KeyedStream`` hands ``value`` (of ``value_type``) to keyed Python functions.
    """
    gateway = get_gateway()
    key_type = Types.ROW([Types.STRING()]).get_java_type_info()
    j_keyed = stream._j_data_stream.keyBy(gateway.jvm.KeyByKeySelector(), key_type)
    return KeyedStream(j_keyed, value_type, stream)


def routed_records(
    raw: DataStream,
    out_of_orderness_ms: int,
    buckets: int = 0,
    max_future_skew_ms: int = 0,
    topic_prefix: str = "",
) -> DataStream:
    """Kafka records (``KAFKA_RECORD``) as ``KEYED_RECORD_ROW`` with event time, routed in the JVM.

    The data type is the topic's name after ``topic_prefix``, else what a
    protobuf record says; event time is what a protobuf record says, else
    the Kafka timestamp (``RecordRouting``). The key is the data type
    (``buckets == 0``) or :func:`bucket_of` the id. Nothing is validated
    yet: bytes that are no record arrive with an empty key and ``ts``
    ``Long.MIN_VALUE``, as do records whose time is out of range, and the
    Python function that receives them decodes them with their data type's
    schema and dead-letters what fails (:func:`serving.core.scoring.decode_data`).
    """
    routing = get_gateway().jvm.io.modelserving.flink.RecordRouting(buckets, max_future_skew_ms, topic_prefix)
    j_routed = raw._j_data_stream.map(routing, KEYED_RECORD_ROW.get_java_type_info())
    routed = DataStream(j_routed).uid("route-records").name("route records")
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(out_of_orderness_ms))
    return jvm_timestamps(routed, (1, 2), strategy).uid("record-watermarks").name("record event time")


def bundled(records: DataStream, max_records: int, max_wait_ms: int) -> DataStream:
    """Routed records (``KEYED_RECORD_ROW``) as bundles (``BUNDLE_ROW``): one element per key and bundle, in the JVM.

    ``RecordBundler`` closes a key's bundle at ``max_records`` records or
    ``max_wait_ms`` of processing time, before any watermark that would
    pass one of its records, and before every checkpoint barrier (it keeps
    no state). A record behind the watermark on arrival is marked ``late``.
    """
    bundler = get_gateway().jvm.io.modelserving.flink.RecordBundler(max_records, max_wait_ms)
    j_bundles = records._j_data_stream.transform("bundle records", BUNDLE_ROW.get_java_type_info(), bundler)
    return DataStream(j_bundles).uid("bundle-records").name("bundle records")


def split_results(batches: DataStream) -> DataStream:
    """A serving function's ``ResultBatch`` elements as one element per result, split in the JVM (``SplitResults``)."""
    split = get_gateway().jvm.io.modelserving.flink.SplitResults()
    j_results = batches._j_data_stream.flatMap(split, BYTES.get_java_type_info())
    return DataStream(j_results).uid("split-results").name("split results")


def routed_models(
    models: DataStream,
    schemas: DataStream | None,
    out_of_orderness_ms: int,
    idle_ms: int,
    max_future_skew_ms: int = 0,
    controls: DataStream | None = None,
) -> DataStream:
    """Raw model, schema and control bytes as one ``MODEL_ROW`` stream, event time ``created_at``, routed in the JVM.

    ``kind`` says which a message is. A message without ``created_at`` is
    stamped with its arrival time (the serving rule orders models by it).
    Bytes that are no message, or an out-of-range ``created_at``, travel with
    ``Long.MIN_VALUE``: the serving function's admission rejects them with
    the reason. The stream is idle most of the time, so it is marked idle
    after ``idle_ms`` and stops holding back the joint watermark.
    """
    jvm = get_gateway().jvm.io.modelserving.flink
    row_type = MODEL_ROW.get_java_type_info()
    routed_models = models._j_data_stream.map(jvm.ModelRouting(max_future_skew_ms, "model"), row_type)
    routed = DataStream(routed_models).uid("route-models").name("route models")
    if schemas is not None:
        routed_schemas = schemas._j_data_stream.map(jvm.ModelRouting(max_future_skew_ms, "schema"), row_type)
        routed = routed.union(DataStream(routed_schemas).uid("route-schemas").name("route schemas"))
    if controls is not None:
        # ModelControl shares a descriptor's field numbers for data_type and the time (issued_at): same routing.
        routed_controls = controls._j_data_stream.map(jvm.ModelRouting(max_future_skew_ms, "control"), row_type)
        routed = routed.union(DataStream(routed_controls).uid("route-control").name("route control"))
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(out_of_orderness_ms)).with_idleness(
        Duration.of_millis(idle_ms)
    )
    return jvm_timestamps(routed, (1,), strategy).uid("model-watermarks").name("model event time")
