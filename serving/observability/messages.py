"""The messages of the stats and model-events topics: their record keys, and parsing raw bytes safely.

* the stats topic carries ``ModelStats`` snapshots, keyed by :func:`stats_key`
  (the topic is compacted on it);
* the model-events topic carries ``ModelEvent`` messages, keyed by
  :func:`event_key`.

:func:`parse_stats` and :func:`parse_event` turn bytes read from Kafka into
validated messages, or raise :class:`MalformedMessage`: whatever arrives on a
topic is input to check, never trusted.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from serving.core.model import ModelType
from serving.errors import InputError
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import ModelStats
from serving.records.base import DATA_TYPE_PATTERN

#: A ModelStats or ModelEvent larger than this is not one (a real one is ~100 bytes).
MAX_MESSAGE_BYTES = 64 * 1024

_Proto = TypeVar("_Proto", bound=ProtoMessage)


class MalformedMessage(InputError):
    """A message on the stats or model-events topic is not a valid ``ModelStats``/``ModelEvent``."""

    reason = "malformed message"


# --------------------------------------------------------------------------- record keys


def stats_key(message: ModelStats) -> bytes:
    """The Kafka record key of a stats snapshot: ``data_type/name/version/instance``.

    The stats topic is compacted on it, so it keeps the newest snapshot of each
    instance and model version.
    """
    return f"{message.data_type}/{message.name}/{message.version}/{message.instance}".encode()


def event_key(event: ModelEvent) -> bytes:
    """The Kafka record key of a model event: its data type (events of one type stay in order)."""
    return event.data_type.encode()


# --------------------------------------------------------------------------- parsing


def parse_stats(payload: bytes | None) -> ModelStats:
    """A validated ``ModelStats``.

    Raises:
        MalformedMessage: empty, oversized or unparsable bytes; a missing name
            or version; a bad data type; negative counts or times; min above max;
            an ensemble member without name or version.
    """
    message = _parse(ModelStats, payload, "ModelStats")
    if not message.name or not message.version:
        raise MalformedMessage("ModelStats without a model name or version")
    if not DATA_TYPE_PATTERN.fullmatch(message.data_type):
        raise MalformedMessage(f"ModelStats with a bad data type {message.data_type[:80]!r}")
    numbers = (
        message.usage,
        message.total_duration_ns,
        message.min_duration_ns,
        message.max_duration_ns,
        message.since,
        message.emitted_at,
        *(n for m in message.members for n in (m.wins, m.ok, m.late, m.errors)),
    )
    if min(numbers) < 0:
        raise MalformedMessage(f"ModelStats of {message.name}:{message.version} with a negative count or time")
    if message.usage and message.min_duration_ns > message.max_duration_ns:
        raise MalformedMessage(f"ModelStats of {message.name}:{message.version} with min above max duration")
    if any(not m.name or not m.version for m in message.members):
        raise MalformedMessage(f"ModelStats of {message.name}:{message.version} with an unnamed ensemble member")
    if message.model_type not in ModelType.values():
        raise MalformedMessage(f"ModelStats of {message.name}:{message.version} with unknown model type")
    return message


def parse_event(payload: bytes | None) -> ModelEvent:
    """A validated ``ModelEvent``.

    A ``REJECTED`` event may lack name and data type (the model message could
    not even be decoded); the other kinds must name a model.

    Raises:
        MalformedMessage: empty, oversized or unparsable bytes, an unknown
            kind, a negative time, or a missing name, version or data type.
    """
    event = _parse(ModelEvent, payload, "ModelEvent")
    if event.kind not in (ModelEvent.ACCEPTED, ModelEvent.REJECTED, ModelEvent.DUPLICATE):
        raise MalformedMessage(f"ModelEvent of unknown kind {event.kind}")
    if event.ts < 0:
        raise MalformedMessage("ModelEvent with a negative time")
    named = bool(event.name and event.version and DATA_TYPE_PATTERN.fullmatch(event.data_type))
    if event.kind != ModelEvent.REJECTED and not named:
        raise MalformedMessage(f"{ModelEvent.Kind.Name(event.kind)} ModelEvent without name, version or data type")
    return event


def _parse(cls: type[_Proto], payload: bytes | None, what: str) -> _Proto:
    if not payload:
        raise MalformedMessage(f"empty {what} message")
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"{what} message of {len(payload)} bytes, over {MAX_MESSAGE_BYTES}")
    message = cls()
    try:
        message.ParseFromString(bytes(payload))
    except (DecodeError, UnicodeDecodeError) as exc:  # the pure-Python protobuf raises the latter on bad UTF-8
        raise MalformedMessage(f"not a {what}: {exc}") from exc
    return message
