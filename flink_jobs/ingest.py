"""Decoding the raw input streams, and their event-time watermarks."""

from __future__ import annotations

from pyflink.common import Duration, Row, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import DataStream
from pyflink.datastream.functions import ProcessFunction, RuntimeContext

from flink_jobs.serving_function import METRIC_GROUP
from flink_jobs.tags import DEAD_LETTERS, MODEL_EVENTS, MODEL_ROW, RECORD_ROW
from serving.codecs import dead_letter, now_ms
from serving.errors import ServingError
from serving.factories import parse_descriptor
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.scoring import decode_data


def _dead_letter_counter(runtime_context: RuntimeContext):
    """The ``modelserving.dead_letters`` counter of a decoding operator."""
    return runtime_context.get_metrics_group().add_group(METRIC_GROUP).counter("dead_letters")


class DecodeRecords(ProcessFunction):
    """Raw record bytes -> ``RECORD_ROW``; anything invalid -> dead letter with the bytes."""

    def open(self, runtime_context: RuntimeContext) -> None:
        """Register the dead-letter counter."""
        self.dead_letters = _dead_letter_counter(runtime_context)

    def process_element(self, value, ctx):
        """Decode and validate one record."""
        decoded = decode_data(bytes(value))
        if isinstance(decoded, DeadLetter):
            self.dead_letters.inc()
            yield DEAD_LETTERS, decoded.SerializeToString()
        else:
            yield Row(decoded.data_type, decoded.id, decoded.ts, bytes(value))


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


class RecordTimestamp(TimestampAssigner):
    """Event time of a data record: its ``ts``."""

    def extract_timestamp(self, value, record_timestamp) -> int:
        """Return ``value.ts``."""
        return value.ts


class ModelTimestamp(TimestampAssigner):
    """Event time of a model: its ``created_at``."""

    def extract_timestamp(self, value, record_timestamp) -> int:
        """Return ``value.created_at``."""
        return value.created_at


def decoded_records(raw: DataStream, out_of_orderness_ms: int) -> tuple[DataStream, DataStream]:
    """Valid records with event time, and the dead letters of invalid ones."""
    decoded = raw.process(DecodeRecords(), output_type=RECORD_ROW).uid("decode-records").name("decode records")
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(out_of_orderness_ms)
    ).with_timestamp_assigner(RecordTimestamp())
    timed = decoded.assign_timestamps_and_watermarks(strategy).uid("record-watermarks").name("record event time")
    return timed, decoded.get_side_output(DEAD_LETTERS)


def decoded_models(
    raw: DataStream, out_of_orderness_ms: int, idle_ms: int
) -> tuple[DataStream, DataStream, DataStream]:
    """Decodable models with event time; dead letters and rejected events of the rest.

    The model stream is idle most of the time, so it is marked idle after
    ``idle_ms`` and stops holding back the joint watermark.
    """
    decoded = raw.process(DecodeModels(), output_type=MODEL_ROW).uid("decode-models").name("decode models")
    strategy = (
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(out_of_orderness_ms))
        .with_timestamp_assigner(ModelTimestamp())
        .with_idleness(Duration.of_millis(idle_ms))
    )
    timed = decoded.assign_timestamps_and_watermarks(strategy).uid("model-watermarks").name("model event time")
    return timed, decoded.get_side_output(DEAD_LETTERS), decoded.get_side_output(MODEL_EVENTS)
