"""The data providers: wine CSV rows as WineRecords, or any data type's rows in any wire format, at a rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from serving.clock import now_ms
from serving.errors import ConfigError
from serving.kafka.clients import produce_with_backpressure
from serving.kafka.providers.common import (
    FLUSH_TIMEOUT_S,
    DeliveryError,
    check_data_type,
    log,
    provider_producer,
    require_topic,
)
from serving.kafka.settings import KafkaSettings
from serving.records import wine
from serving.records.files import read_rows
from serving.records.schema import DataTypeSchema
from serving.records.wine import encode_record
from serving.records.wire import JSON, encode

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message


def publish_data(
    settings: KafkaSettings,
    csv_path: str | Path,
    *,
    rate: float,
    count: int | None,
    data_type: str = wine.DATA_TYPE,
    id_prefix: str = "",
    progress: Callable[[int], None] | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """Stream wine CSV rows as ``WineRecord`` messages to ``settings.topics.data``.

    Record ids are ``f"{id_prefix}{row}"`` on the first pass over the CSV and
    ``f"{id_prefix}{cycle}-{row}"`` on later passes, so they stay unique when
    ``count`` exceeds the number of rows. Each message is keyed by its record
    id and stamped with the wall-clock time it is handed to the producer.

    Args:
        settings: Where to publish.
        csv_path: A wine CSV (see :func:`serving.records.wine.read_wine_csv`).
        rate: Records per second; 0 sends as fast as the producer takes them.
        count: Records to send; None sends every row once.
        data_type: The records' data type (a lower-case name).
        id_prefix: Prepended to every record id.
        progress: Called with the number of records sent so far, after each record.
        stop_event: Set it (from another thread) to stop early; what was sent is flushed.

    Returns:
        The number of records sent and acknowledged by the broker.

    Raises:
        ConfigError: a negative rate or count, or a bad data type.
        InputError: the CSV cannot be read (or a subclass).
        TopicMissing: the data topic does not exist.
        DeliveryError: the broker did not acknowledge a record.
    """
    if rate < 0:
        raise ConfigError(f"rate must be 0 (unpaced) or more records/s, got {rate}")
    if count is not None and count < 0:
        raise ConfigError(f"count must be 0 or more, got {count}")
    check_data_type(data_type)
    rows = wine.read_wine_csv(csv_path).features

    def message(i: int) -> tuple[bytes, bytes, int]:
        cycle, row = divmod(i, len(rows))
        record_id = f"{id_prefix}{row}" if cycle == 0 else f"{id_prefix}{cycle}-{row}"
        ts = now_ms()
        return record_id.encode(), encode_record(record_id, rows[row], ts=ts, data_type=data_type), ts

    total = len(rows) if count is None else count
    return _stream(settings, settings.topics.data, data_type, message, total, rate, progress, stop_event)


def publish_records(
    settings: KafkaSettings,
    schema: DataTypeSchema,
    path: str | Path,
    *,
    wire_format: str = JSON,
    rate: float,
    count: int | None,
    progress: Callable[[int], None] | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """Stream the rows of a data file (CSV with a header row, or JSON lines) as records of ``schema``'s data type.

    They go to the data type's own topic, ``data_topic_prefix`` + data type,
    in ``wire_format`` (``json``, ``avro`` with the Confluent framing and the
    schema's id, or ``protobuf``). Each is stamped with the time it is sent:
    the Kafka timestamp, and the schema's timestamp field when it names one.
    Past the end of the file the rows are sent again; a string id field then
    gets a ``cycle-`` prefix so ids stay unique.

    Returns:
        The number of records sent and acknowledged by the broker.

    Raises:
        Like :func:`publish_data`; InputError also for a row that does not fit the schema.
    """
    if rate < 0:
        raise ConfigError(f"rate must be 0 (unpaced) or more records/s, got {rate}")
    if count is not None and count < 0:
        raise ConfigError(f"count must be 0 or more, got {count}")
    rows = read_rows(path, schema)
    id_field = schema.field(schema.id_field) if schema.id_field else None

    def message(i: int) -> tuple[bytes | None, bytes, int]:
        cycle, index = divmod(i, len(rows))
        values, ts = dict(rows[index]), now_ms()
        if schema.ts_field:
            values[schema.ts_field] = ts
        key = None
        if id_field is not None:
            if cycle and id_field.kind == "string":
                values[id_field.name] = f"{cycle}-{values[id_field.name]}"
            key = str(values[id_field.name]).encode()
        return key, encode(values, schema, wire_format, ts=ts), ts

    topic = settings.data_topic_prefix + schema.data_type
    total = len(rows) if count is None else count
    return _stream(settings, topic, schema.data_type, message, total, rate, progress, stop_event)


def _stream(
    settings: KafkaSettings,
    topic: str,
    data_type: str,
    message: Callable[[int], tuple[bytes | None, bytes, int]],
    total: int,
    rate: float,
    progress: Callable[[int], None] | None,
    stop_event: threading.Event | None,
) -> int:
    """Send ``message(i)`` (key, value, Kafka timestamp) for i in 0..total-1 at ``rate``; what was acknowledged."""
    prod = provider_producer(settings)
    require_topic(prod, settings, topic)
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failures.append(f"{(msg.key() or b'').decode(errors='replace')}: {err.str()}")

    interval = 1.0 / rate if rate > 0 else 0.0
    started = time.monotonic()
    sent = 0
    try:
        for i in range(total):
            if stop_event is not None and stop_event.is_set():
                break
            if interval:
                # Pace against the start, not the previous send, so small sleep overshoots do not add up.
                delay = started + i * interval - time.monotonic()
                if delay > 0.001:
                    time.sleep(delay)
            key, value, ts = message(i)
            produce_with_backpressure(prod, topic, value, key=key, on_delivery=on_delivery, timestamp=ts)
            if failures:
                break
            sent += 1
            if progress is not None:
                progress(sent)
    finally:
        # Also on Ctrl-C: what was handed over is delivered before we leave.
        remaining = prod.flush(FLUSH_TIMEOUT_S)
    if failures:
        raise DeliveryError(f"record {failures[0]} was not delivered to {topic} at {settings.bootstrap_servers}")
    if remaining:
        raise DeliveryError(f"{remaining} records to {topic} were not acknowledged by {settings.bootstrap_servers}")
    elapsed = time.monotonic() - started
    log.info(
        "data published",
        extra={"topic": topic, "records": sent, "data_type": data_type, "seconds": round(elapsed, 3)},
    )
    return sent
