"""Decoding the raw input streams, their event-time watermarks, and the record key.

Every hop between the JVM and a Python worker costs tens of microseconds per
record (BENCHMARKS.md, issue 8), so a data record crosses to Python once: the
JVM reads its id, data type and ts from the protobuf wire format
(``RecordRouting`` from ``scripts/java``), stamps event time
(``RowFieldTimestampAssigner``) and keys the stream, and the serving function
decodes and validates the whole record. PyFlink's own way would add three
Python operators: a decoder, a timestamp assigner and a key-by map.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from pyflink.common import Duration, Row, Types, WatermarkStrategy
from pyflink.datastream import DataStream, KeyedStream
from pyflink.datastream.functions import ProcessFunction, RuntimeContext
from pyflink.java_gateway import get_gateway

from flink_jobs.serving_function import METRIC_GROUP
from flink_jobs.tags import DEAD_LETTERS, KEYED_RECORD_ROW, MODEL_EVENTS, MODEL_ROW
from serving.codecs import dead_letter, now_ms
from serving.errors import ServingError
from serving.factories import parse_descriptor
from serving.pb.model_event_pb2 import ModelEvent


def _dead_letter_counter(runtime_context: RuntimeContext):
    """The ``modelserving.dead_letters`` counter of a decoding operator."""
    return runtime_context.get_metrics_group().add_group(METRIC_GROUP).counter("dead_letters")


def bucket_of(record_id: str, buckets: int) -> str:
    """The hash bucket of a record id: ``crc32(id) % buckets``, as ``RecordRouting`` computes it in the JVM."""
    return str(zlib.crc32(record_id.encode()) % buckets)


class DecodeModels(ProcessFunction):
    """Raw model bytes -> ``MODEL_ROW``; undecodable -> dead letter and a rejected event.

    A descriptor without ``created_at`` is stamped with its arrival time, since
    the serving rule orders models by it.
    """

    def open(self, runtime_context: RuntimeContext) -> None:
        """Register the dead-letter counter."""
        self.dead_letters = _dead_letter_counter(runtime_context)

    def process_element(self, value, ctx):
        """Decode one model message; loading it happens in the serving function."""
        payload = bytes(value)
        try:
            descriptor = parse_descriptor(payload)
        except ServingError as exc:
            self.dead_letters.inc()
            yield DEAD_LETTERS, dead_letter("model", exc.reason, str(exc), payload).SerializeToString()
            event = ModelEvent(kind=ModelEvent.REJECTED, reason=f"{exc.reason}: {exc}", ts=now_ms())
            yield MODEL_EVENTS, event.SerializeToString()
            return
        if not descriptor.created_at:
            descriptor.created_at = now_ms()
            payload = descriptor.SerializeToString()
        yield Row(descriptor.data_type, descriptor.created_at, payload)


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


def routed_records(raw: DataStream, out_of_orderness_ms: int, buckets: int = 0) -> DataStream:
    """Raw record bytes as ``KEYED_RECORD_ROW`` with event time, routed in the JVM.

    The key is the data type (``buckets == 0``) or :func:`bucket_of` the id.
    Nothing is validated yet: bytes that are no record arrive with an empty
    key and ``ts`` ``Long.MIN_VALUE``, and the Python function that receives
    them dead-letters them (:func:`serving.scoring.decode_data`).
    """
    routing = get_gateway().jvm.io.modelserving.flink.RecordRouting(buckets)
    j_routed = raw._j_data_stream.map(routing, KEYED_RECORD_ROW.get_java_type_info())
    routed = DataStream(j_routed).uid("route-records").name("route records")
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(out_of_orderness_ms))
    return jvm_timestamps(routed, (1, 2), strategy).uid("record-watermarks").name("record event time")


def decoded_models(
    raw: DataStream, out_of_orderness_ms: int, idle_ms: int
) -> tuple[DataStream, DataStream, DataStream]:
    """Decodable models (``MODEL_ROW``) with event time; dead letters and rejected events of the rest.

    The model stream is idle most of the time, so it is marked idle after
    ``idle_ms`` and stops holding back the joint watermark.
    """
    decoded = raw.process(DecodeModels(), output_type=MODEL_ROW).uid("decode-models").name("decode models")
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(out_of_orderness_ms)).with_idleness(
        Duration.of_millis(idle_ms)
    )
    timed = jvm_timestamps(decoded, (1,), strategy).uid("model-watermarks").name("model event time")
    return timed, decoded.get_side_output(DEAD_LETTERS), decoded.get_side_output(MODEL_EVENTS)
