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

import math
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

#: Events of a data type's lineup (roles, pinning, control) and of experiments: they need not name a model.
LINEUP_KINDS = frozenset(
    {
        ModelEvent.STAGED,
        ModelEvent.PROMOTED,
        ModelEvent.ROLLED_BACK,
        ModelEvent.PINNED,
        ModelEvent.UNPINNED,
        ModelEvent.ROLE_SET,
        ModelEvent.WEIGHT_SET,
        ModelEvent.RETIRED,
        ModelEvent.PROMOTE_RECOMMENDED,
        ModelEvent.CONTROL_REJECTED,
    }
)
#: Lineup events that may lack a version: pinning is about the data type, a rejected control may name none.
_VERSIONLESS = frozenset({ModelEvent.PINNED, ModelEvent.UNPINNED, ModelEvent.CONTROL_REJECTED})
_KNOWN_KINDS = frozenset(ModelEvent.Kind.values()) - {ModelEvent.KIND_UNSPECIFIED}

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
            an ensemble member without name or version; an experiment's
            ``pair`` (see :func:`_check_pair`) of another data type or version,
            with negative counts, more agreements or errors than comparisons,
            or a negative or non-finite figure.
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
    if message.HasField("pair"):
        _check_pair(message)
    return message


def _check_pair(message: ModelStats) -> None:
    """An experiment's stats: its ``PairStats`` names the message's data type and version, with sane counts."""
    pair = message.pair
    what = f"experiment stats {message.name}:{message.version}"
    if pair.data_type != message.data_type or pair.challenger_version != message.version:
        raise MalformedMessage(f"{what} whose pair names another data type or challenger version")
    if not pair.champion_version:
        raise MalformedMessage(f"{what} without a champion version")
    counts = (pair.n, pair.agreements, pair.champion_errors, pair.challenger_errors, pair.since, pair.emitted_at)
    if min(counts) < 0 or max(pair.agreements, pair.champion_errors, pair.challenger_errors) > pair.n:
        raise MalformedMessage(f"{what} with a negative count or more agreements or errors than comparisons")
    ratios = (pair.mean_abs_delta, pair.p95_abs_delta, pair.champion_p99_ms, pair.challenger_p99_ms)
    if not all(math.isfinite(x) and x >= 0 for x in (*ratios, pair.wilson_lower)):
        raise MalformedMessage(f"{what} with a negative or non-finite delta, time or bound")


def parse_event(payload: bytes | None) -> ModelEvent:
    """A validated ``ModelEvent``.

    A ``REJECTED`` event may lack name and data type (the model message could
    not even be decoded); a lineup event (:data:`LINEUP_KINDS`) needs a data
    type and, except ``PINNED``, ``UNPINNED`` and ``CONTROL_REJECTED``, a
    version; the other kinds must name a model.

    Raises:
        MalformedMessage: empty, oversized or unparsable bytes, an unknown
            kind, a negative time, or a missing name, version or data type.
    """
    event = _parse(ModelEvent, payload, "ModelEvent")
    if event.kind not in _KNOWN_KINDS:
        raise MalformedMessage(f"ModelEvent of unknown kind {event.kind}")
    if event.ts < 0:
        raise MalformedMessage("ModelEvent with a negative time")
    kind = ModelEvent.Kind.Name(event.kind)
    typed = bool(DATA_TYPE_PATTERN.fullmatch(event.data_type))
    if event.kind in LINEUP_KINDS:
        if not typed or (event.kind not in _VERSIONLESS and not event.version):
            raise MalformedMessage(f"{kind} ModelEvent without data type or version")
        return event
    named = bool(event.name and event.version and typed)
    if event.kind != ModelEvent.REJECTED and not named:
        raise MalformedMessage(f"{kind} ModelEvent without name, version or data type")
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
