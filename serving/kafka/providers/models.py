"""The model providers: model files as ``ModelDescriptor`` messages on the models topic.

:func:`publish_model` publishes one model (inline, or by reference when it is
too large to travel inline); :func:`cycle_models` publishes the models of a
directory, found by :func:`discover_models`, one after another.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving.core.model import ModelDescriptor, ModelType
from serving.errors import ConfigError, InputError, ServingError
from serving.formats import descriptor_from_path
from serving.formats.artifacts import MANIFEST_NAME
from serving.formats.registry import detect_format, format_class, format_names, parse_format
from serving.kafka.clients import produce_with_backpressure
from serving.kafka.providers.common import (
    FLUSH_TIMEOUT_S,
    DeliveryError,
    InlineModelTooLarge,
    check_data_type,
    log,
    provider_producer,
    require_topic,
)
from serving.kafka.settings import KafkaSettings
from serving.records import DEFAULT_DATA_TYPE

if TYPE_CHECKING:
    from confluent_kafka import Producer

#: Model file suffixes -> type names, for directories without a manifest.


@dataclass(frozen=True)
class ModelEntry:
    """One publishable model found in a directory.

    Attributes:
        path: The model file, or SavedModel directory.
        model_type: A format name (``serving.formats.registry``).
        name: The name to publish it under.
        metadata: Descriptor metadata (e.g. TensorFlow input/output names from a manifest).
    """

    path: Path
    model_type: str
    name: str
    metadata: dict[str, str] = field(default_factory=dict)


def publish_model(
    settings: KafkaSettings,
    path: str | Path,
    model_type: int | str,
    *,
    data_type: str = DEFAULT_DATA_TYPE,
    name: str | None = None,
    version: str | None = None,
    by_reference: bool = False,
    force_inline: bool = False,
    description: str = "",
    metadata: dict[str, str] | None = None,
    sign_with: Path | None = None,
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
        sign_with=sign_with,
    )
    publish_descriptor(settings, descriptor)
    return descriptor


def publish_descriptor(settings: KafkaSettings, descriptor: ModelDescriptor) -> None:
    """Publish a descriptor built elsewhere (a remote model's) as :func:`publish_model` does; wait for delivery.

    Raises:
        TopicMissing: the models topic does not exist.
        DeliveryError: the broker did not acknowledge the model.
    """
    prod = provider_producer(settings)
    require_topic(prod, settings, settings.topics.models)
    _send_model(prod, settings, descriptor)


def build_descriptor(
    settings: KafkaSettings,
    path: str | Path,
    model_type: int | str,
    *,
    data_type: str = DEFAULT_DATA_TYPE,
    name: str | None = None,
    version: str | None = None,
    by_reference: bool = False,
    force_inline: bool = False,
    description: str = "",
    metadata: dict[str, str] | None = None,
    sign_with: Path | None = None,
) -> ModelDescriptor:
    """The descriptor :func:`publish_model` would send, applying the inline size rule; signed with ``sign_with``.

    Raises:
        Same as :func:`publish_model`, except the Kafka errors; ConfigError for a
        bad signing key, or a by-reference directory to sign.
    """
    descriptor = _build_descriptor(
        settings, path, model_type, data_type=data_type, name=name, version=version, by_reference=by_reference,
        force_inline=force_inline, description=description, metadata=metadata,
    )  # fmt: skip
    if sign_with is not None:
        sign_descriptor(descriptor, Path(path), sign_with)
    return descriptor


def sign_descriptor(descriptor: ModelDescriptor, path: Path, key_file: Path) -> None:
    """Sign ``descriptor``, built from the model at ``path``, with the private key in ``key_file``.

    Raises:
        ConfigError: the key file cannot be read or is no Ed25519 key; a
            by-reference directory (its archive is made by the job, not here).
    """
    from serving.governance.signing import sign_with_file

    if descriptor.WhichOneof("content") == "data":
        artifact = bytes(descriptor.data)
    elif path.is_file():
        artifact = path.read_bytes()
    else:
        raise ConfigError(f"{path} is a directory published by reference: sign it inline (--inline)")
    sign_with_file(descriptor, artifact, key_file)


def _build_descriptor(
    settings: KafkaSettings,
    path: str | Path,
    model_type: int | str,
    *,
    data_type: str,
    name: str | None,
    version: str | None,
    by_reference: bool,
    force_inline: bool,
    description: str,
    metadata: dict[str, str] | None,
) -> ModelDescriptor:
    if by_reference and force_inline:
        raise ConfigError("a model is published either by reference or inline, not both")
    check_data_type(data_type)
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
        raise InputError(f"no models in {directory} (no {MANIFEST_NAME}; looked for {_known_kinds()})")
    return entries


def cycle_models(
    settings: KafkaSettings,
    directory: str | Path,
    *,
    every_seconds: float,
    data_type: str = DEFAULT_DATA_TYPE,
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
    check_data_type(data_type)
    entries = discover_models(directory)
    stop = stop_event or threading.Event()
    prod = provider_producer(settings)
    require_topic(prod, settings, settings.topics.models)
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


def _send_model(prod: Producer, settings: KafkaSettings, descriptor: ModelDescriptor) -> None:
    """Send one descriptor keyed by its data type and wait until the broker acknowledges it."""
    topic = settings.topics.models
    outcome: list[Any] = []
    produce_with_backpressure(
        prod,
        topic,
        descriptor.SerializeToString(),
        key=descriptor.data_type.encode(),
        on_delivery=lambda err, _msg: outcome.append(err),
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
            "type": descriptor.format or ModelType.Name(descriptor.model_type),
            "data_type": descriptor.data_type,
            "content": "inline" if content == "data" else "remote" if descriptor.format == "oip" else "by reference",
            "bytes": descriptor.ByteSize(),
            "topic": topic,
        },
    )


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
            model_type = parse_format(item["type"])
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
        fmt = detect_format(path)
        if fmt is not None:
            entries.append(ModelEntry(path, fmt, path.stem if path.is_file() else path.name))
    return entries


def _known_kinds() -> str:
    """What a directory scan recognises, for an error message."""
    kinds = []
    for name in format_names():
        cls = format_class(name)
        kinds += [f"{suffix} ({name})" for suffix in cls.suffixes]
        if cls.directory_marker:
            kinds.append(f"directories holding {cls.directory_marker} ({name})")
    return ", ".join(kinds)
