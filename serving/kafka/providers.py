"""Kafka providers, like the reference tutorial's client: data, models and results.

Flink-free functions that feed a running serving job and watch what it says:

* :func:`publish_data` streams wine CSV rows as ``WineRecord`` protobufs to the
  data topic at a chosen rate;
* :func:`publish_model` publishes one model file as a ``ModelDescriptor``
  (inline, or by reference when it is too large to travel inline);
* :func:`cycle_models` publishes the models of a directory one after another;
* :func:`tail_results` yields the ``ServingResult`` messages the job commits.

Every failure a user can cause is a :class:`~serving.errors.ServingError`
subclass with a one-line message; nothing here prints.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from serving.clock import now_ms
from serving.codecs.records import DATA_TYPE_PATTERN, encode_record
from serving.core.model import ModelDescriptor, ModelType
from serving.errors import ConfigError, InputError, ServingError
from serving.formats import TYPE_NAMES, descriptor_from_path, parse_model_type
from serving.kafka.clients import consumer, producer
from serving.kafka.settings import KafkaSettings
from serving.logs import get_logger
from serving.pb.serving_result_pb2 import ServingResult
from serving.records import wine
from serving.training.examples import MANIFEST_NAME

log = get_logger("kafka.providers")

#: How long librdkafka keeps retrying one message before reporting it failed.
DELIVERY_TIMEOUT_MS = 30_000
#: How long a final flush waits; a little more than the delivery timeout, so failures arrive as errors.
FLUSH_TIMEOUT_S = DELIVERY_TIMEOUT_MS / 1000 + 5
#: How long a topic that is not (yet) usable is retried before it counts as missing.
TOPIC_SETTLE_S = 2.0
#: Model file suffixes -> type names, for directories without a manifest.
SUFFIX_TYPES: dict[str, str] = {".pb": "tensorflow", ".pmml": "pmml", ".onnx": "onnx"}


class ProviderError(ServingError):
    """Publishing to or reading from Kafka failed."""

    reason = "kafka provider failed"


class DeliveryError(ProviderError):
    """The broker did not acknowledge a message."""

    reason = "delivery failed"


class TopicMissing(ProviderError):
    """A topic the provider needs does not exist (the broker does not auto-create topics)."""

    reason = "topic missing"


class InlineModelTooLarge(ConfigError):
    """An inline model was forced but is larger than ``inline_model_max_bytes``."""

    reason = "model too large to publish inline"


@dataclass(frozen=True)
class ModelEntry:
    """One publishable model found in a directory.

    Attributes:
        path: The model file, or SavedModel directory.
        model_type: A ``ModelType`` value.
        name: The name to publish it under.
        metadata: Descriptor metadata (e.g. TensorFlow input/output names from a manifest).
    """

    path: Path
    model_type: int
    name: str
    metadata: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- data


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
    _check_data_type(data_type)
    rows = wine.read_wine_csv(csv_path).features
    total = len(rows) if count is None else count
    topic = settings.topics.data
    prod = _producer(settings)
    _require_topic(prod, settings, topic)
    failures: list[str] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            failures.append(f"{msg.key().decode(errors='replace')}: {err.str()}")

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
            cycle, row = divmod(i, len(rows))
            record_id = f"{id_prefix}{row}" if cycle == 0 else f"{id_prefix}{cycle}-{row}"
            value = encode_record(record_id, rows[row], ts=now_ms(), data_type=data_type)
            _produce(prod, topic, record_id.encode(), value, on_delivery)
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


# --------------------------------------------------------------------------- models


def publish_model(
    settings: KafkaSettings,
    path: str | Path,
    model_type: int,
    *,
    data_type: str = wine.DATA_TYPE,
    name: str | None = None,
    version: str | None = None,
    by_reference: bool = False,
    force_inline: bool = False,
    description: str = "",
    metadata: dict[str, str] | None = None,
) -> ModelDescriptor:
    """Publish one model to ``settings.topics.models``, keyed by data type; wait for delivery.

    An inline descriptor larger than ``settings.inline_model_max_bytes`` is
    published by reference instead (its absolute path; the serving job must
    see the same file under one of its model roots), unless ``force_inline``.

    Returns:
        The descriptor as published.

    Raises:
        ConfigError: both ``by_reference`` and ``force_inline``, or a bad data type.
        InlineModelTooLarge: ``force_inline`` and the descriptor is over the limit;
            the message says to use ``--by-reference``.
        ModelLoadError: the path is missing or not of the declared type (or a subclass).
        TopicMissing: the models topic does not exist.
        DeliveryError: the broker did not acknowledge the model.
    """
    descriptor = build_descriptor(
        settings,
        path,
        model_type,
        data_type=data_type,
        name=name,
        version=version,
        by_reference=by_reference,
        force_inline=force_inline,
        description=description,
        metadata=metadata,
    )
    prod = _producer(settings)
    _require_topic(prod, settings, settings.topics.models)
    _send_model(prod, settings, descriptor)
    return descriptor


def build_descriptor(
    settings: KafkaSettings,
    path: str | Path,
    model_type: int,
    *,
    data_type: str = wine.DATA_TYPE,
    name: str | None = None,
    version: str | None = None,
    by_reference: bool = False,
    force_inline: bool = False,
    description: str = "",
    metadata: dict[str, str] | None = None,
) -> ModelDescriptor:
    """The descriptor :func:`publish_model` would send, applying the inline size rule.

    Raises:
        Same as :func:`publish_model`, except the Kafka errors.
    """
    if by_reference and force_inline:
        raise ConfigError("a model is published either by reference or inline, not both")
    _check_data_type(data_type)
    kwargs: dict[str, Any] = {
        "data_type": data_type,
        "name": name,
        "version": version,
        "description": description,
        "metadata": metadata,
    }
    descriptor = descriptor_from_path(path, model_type, by_reference=by_reference, **kwargs)
    if by_reference:
        return descriptor
    size, limit = descriptor.ByteSize(), settings.inline_model_max_bytes
    if size <= limit:
        return descriptor
    if force_inline:
        raise InlineModelTooLarge(
            f"model {descriptor.name!r} is {size:,} bytes inline, over the {limit:,}-byte limit "
            "(inline_model_max_bytes); publish it with --by-reference"
        )
    # Same artifact, same version: only the transport changes.
    by_ref = descriptor_from_path(path, model_type, by_reference=True, **{**kwargs, "version": descriptor.version})
    log.info(
        "model too large to publish inline; publishing by reference",
        extra={"model": by_ref.name, "version": by_ref.version, "bytes": size, "limit": limit},
    )
    return by_ref


def discover_models(directory: str | Path) -> list[ModelEntry]:
    """The models of a directory, in publishing order.

    With a ``manifest.json`` (as ``modelserving train`` writes) its artifacts,
    in manifest order, with their names and metadata. Otherwise every entry
    sorted by name: ``.pb`` files are ``tensorflow``, ``.pmml`` ``pmml``,
    ``.onnx`` ``onnx``, and a directory holding ``saved_model.pb`` (itself or
    in a numbered version subdirectory) ``tensorflow_saved``; anything else is skipped.

    Raises:
        InputError: the directory is missing, the manifest is unreadable or
            names a missing artifact or unknown type, or no model is found.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"model directory {directory} does not exist")
    manifest = directory / MANIFEST_NAME
    entries = _manifest_entries(manifest) if manifest.exists() else _scanned_entries(directory)
    if not entries:
        kinds = ", ".join(sorted(SUFFIX_TYPES)) + ", SavedModel directories"
        raise InputError(f"no models in {directory} (no {MANIFEST_NAME}; looked for {kinds})")
    return entries


def cycle_models(
    settings: KafkaSettings,
    directory: str | Path,
    *,
    every_seconds: float,
    data_type: str = wine.DATA_TYPE,
    rounds: int | None,
    stop_event: threading.Event | None = None,
    on_publish: Callable[[ModelDescriptor], None] | None = None,
) -> int:
    """Publish the models of ``directory`` one after another, one every ``every_seconds``.

    Models are found by :func:`discover_models`. Each round publishes every
    model once; from the second round on, versions get a ``-r{round}`` suffix,
    because the serving job ignores a model with the same name, version and
    artifact as one it knows (a replay), and a cycle is meant to swap models.
    There is no wait after the last publication.

    Args:
        settings: Where to publish.
        directory: The model directory.
        every_seconds: Pause between two publications; 0 publishes back to back.
        data_type: The data type every model serves.
        rounds: Passes over the directory; None cycles until ``stop_event`` is set.
        stop_event: Set it (from another thread) to stop before the next publication.
        on_publish: Called with each descriptor once the broker has acknowledged it.

    Returns:
        The number of models published.

    Raises:
        ConfigError: a negative interval, rounds < 1, or a bad data type.
        InputError: see :func:`discover_models`.
        TopicMissing, DeliveryError: as for :func:`publish_model`.
    """
    if every_seconds < 0:
        raise ConfigError(f"the interval between models must be 0 s or more, got {every_seconds}")
    if rounds is not None and rounds < 1:
        raise ConfigError(f"rounds must be at least 1, got {rounds}")
    _check_data_type(data_type)
    entries = discover_models(directory)
    stop = stop_event or threading.Event()
    prod = _producer(settings)
    _require_topic(prod, settings, settings.topics.models)
    published = 0
    round_no = 0
    while (rounds is None or round_no < rounds) and not stop.is_set():
        for entry in entries:
            if published and stop.wait(every_seconds):
                return published
            descriptor = build_descriptor(
                settings, entry.path, entry.model_type, data_type=data_type, name=entry.name, metadata=entry.metadata
            )
            if round_no:
                descriptor.version = f"{descriptor.version}-r{round_no + 1}"
            _send_model(prod, settings, descriptor)
            published += 1
            if on_publish is not None:
                on_publish(descriptor)
        round_no += 1
    return published


# --------------------------------------------------------------------------- results


def tail_results(
    settings: KafkaSettings,
    *,
    from_beginning: bool,
    limit: int | None,
    timeout: float | None,
) -> Iterator[ServingResult]:
    """Yield the committed ``ServingResult`` messages of ``settings.topics.results``.

    The consumer is ``read_committed`` (results of aborted Flink transactions
    never show) and is assigned every partition directly, so it joins no
    consumer group and commits nothing. Messages that are not a
    ``ServingResult`` are logged and skipped. Close the generator (or let it
    end) to close the consumer.

    Args:
        settings: Where to read.
        from_beginning: Start at the oldest result; otherwise only new ones.
        limit: Stop after this many results; None for no limit.
        timeout: Stop once no result has arrived for this many seconds; None waits forever.

    Raises:
        ConfigError: a negative limit or timeout.
        TopicMissing: the results topic does not exist.
        ProviderError: the consumer reports a non-retriable error.
    """
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be 0 or more, got {limit}")
    if timeout is not None and timeout < 0:
        raise ConfigError(f"timeout must be 0 s or more, got {timeout}")
    # Checked above, before the first next(): a generator body would only run then.
    return _tail(settings, from_beginning=from_beginning, limit=limit, timeout=timeout)


def _tail(settings: KafkaSettings, *, from_beginning: bool, limit: int | None, timeout: float | None):
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition

    # Errors that retrying cannot cure; others (a broker restarting, a lost connection) are waited out.
    permanent = {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    }
    if limit == 0:
        return
    topic = settings.topics.results
    reader = consumer(settings, from_beginning=from_beginning, logger=_librdkafka_log)
    try:
        partitions = _require_topic(reader, settings, topic)
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        reader.assign([TopicPartition(topic, p, start) for p in partitions])
        seen = 0
        last = time.monotonic()
        while True:
            wait = 0.5 if timeout is None else min(0.5, max(timeout - (time.monotonic() - last), 0.0))
            message = reader.poll(wait)
            if message is None:
                if timeout is not None and time.monotonic() - last >= timeout:
                    return
                continue
            if message.error():
                error = message.error()
                if error.fatal() or error.code() in permanent:
                    raise ProviderError(f"reading {topic} at {settings.bootstrap_servers} failed: {error.str()}")
                log.warning("consumer error, retrying", extra={"topic": topic, "error": error.str()})
                continue
            last = time.monotonic()
            result = ServingResult()
            try:
                result.ParseFromString(message.value() or b"")
            except DecodeError:
                log.warning(
                    "skipped a message that is not a ServingResult",
                    extra={"topic": topic, "partition": message.partition(), "offset": message.offset()},
                )
                continue
            yield result
            seen += 1
            if limit is not None and seen >= limit:
                return
    finally:
        reader.close()


# --------------------------------------------------------------------------- helpers

_librdkafka_log = get_logger("kafka.librdkafka")


def _producer(settings: KafkaSettings):
    # librdkafka's own log lines go through our logger rather than straight to stderr.
    return producer(settings, **{"message.timeout.ms": DELIVERY_TIMEOUT_MS, "logger": _librdkafka_log})


def _produce(prod, topic: str, key: bytes, value: bytes, on_delivery) -> None:
    """Produce one message, waiting while the local queue is full rather than failing."""
    while True:
        try:
            prod.produce(topic, value=value, key=key, on_delivery=on_delivery)
            break
        except BufferError:
            prod.poll(0.1)
    prod.poll(0)  # serve delivery callbacks


def _send_model(prod, settings: KafkaSettings, descriptor: ModelDescriptor) -> None:
    """Send one descriptor keyed by its data type and wait until the broker acknowledges it."""
    topic = settings.topics.models
    outcome: list[Any] = []
    _produce(
        prod,
        topic,
        descriptor.data_type.encode(),
        descriptor.SerializeToString(),
        lambda err, _msg: outcome.append(err),
    )
    prod.flush(FLUSH_TIMEOUT_S)
    if not outcome or outcome[0] is not None:
        why = outcome[0].str() if outcome else f"no acknowledgement within {FLUSH_TIMEOUT_S:.0f}s"
        raise DeliveryError(
            f"model {descriptor.name!r} version {descriptor.version} was not delivered to {topic} "
            f"at {settings.bootstrap_servers}: {why}"
        )
    content = descriptor.WhichOneof("content")
    log.info(
        "model published",
        extra={
            "model": descriptor.name,
            "version": descriptor.version,
            "type": ModelType.Name(descriptor.model_type),
            "data_type": descriptor.data_type,
            "content": "inline" if content == "data" else "by reference",
            "bytes": descriptor.ByteSize(),
            "topic": topic,
        },
    )


def _require_topic(client, settings: KafkaSettings, topic: str) -> list[int]:
    """The partition ids of ``topic``; raises :class:`TopicMissing` when it does not exist.

    The broker does not create topics on demand, and a producer would only
    report a missing one after its delivery timeout: better to say so at once.
    """
    from confluent_kafka import KafkaError, KafkaException

    # A topic created a moment ago may still lack a leader, or be unknown to the broker we ask: retry briefly.
    deadline = time.monotonic() + TOPIC_SETTLE_S
    while True:
        try:
            metadata = client.list_topics(topic=topic, timeout=10)
        except KafkaException as exc:
            raise ProviderError(f"cannot read metadata of {topic} from {settings.bootstrap_servers}: {exc}") from exc
        described = metadata.topics.get(topic)
        error = None if described is None else described.error
        if described is not None and error is None and described.partitions:
            return sorted(described.partitions)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    if described is None or error is None or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
        raise TopicMissing(
            f"topic {topic} does not exist at {settings.bootstrap_servers} (create it with `modelserving kafka topics`)"
        )
    raise ProviderError(f"topic {topic} at {settings.bootstrap_servers} is not usable: {error.str()}")


def _check_data_type(data_type: str) -> None:
    if not DATA_TYPE_PATTERN.fullmatch(data_type):
        raise ConfigError(f"bad data type {data_type!r}: use lower-case letters, digits, '_', '.', '-'")


def _manifest_entries(manifest: Path) -> list[ModelEntry]:
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
        artifacts = document["artifacts"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read model manifest {manifest}: {exc}") from exc
    entries = []
    for item in artifacts:
        try:
            path = manifest.parent / item["path"]
            model_type = parse_model_type(item["type"])
            name = item.get("name") or path.stem
            metadata = {str(k): str(v) for k, v in (item.get("metadata") or {}).items()}
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"model manifest {manifest}: bad artifact entry {item!r}") from exc
        except ServingError as exc:  # an unknown type name
            raise InputError(f"model manifest {manifest}: {exc}") from exc
        if not path.exists():
            raise InputError(f"model manifest {manifest} names {path}, which does not exist")
        entries.append(ModelEntry(path, model_type, name, metadata))
    return entries


def _scanned_entries(directory: Path) -> list[ModelEntry]:
    entries = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix.lower() in SUFFIX_TYPES:
            entries.append(ModelEntry(path, TYPE_NAMES[SUFFIX_TYPES[path.suffix.lower()]], path.stem))
        elif path.is_dir() and _is_saved_model(path):
            entries.append(ModelEntry(path, TYPE_NAMES["tensorflow_saved"], path.name))
    return entries


def _is_saved_model(path: Path) -> bool:
    """A SavedModel directory, or a directory of numbered SavedModel versions (TF Serving's layout)."""
    if (path / "saved_model.pb").is_file():
        return True
    return any(sub.is_dir() and sub.name.isdigit() and (sub / "saved_model.pb").is_file() for sub in path.iterdir())
