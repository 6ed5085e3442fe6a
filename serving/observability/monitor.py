"""Which model serves each data type, since when, how much and how fast: the stats service's model.

Flink-free and Kafka-free. :class:`Monitor` folds the messages of two topics
(see :mod:`serving.observability.messages`) into answers
(see :mod:`serving.observability.views`):

* the stats topic carries ``ModelStats`` snapshots. Each is cumulative for one
  (instance, data type, name, version): the latest snapshot of an instance
  replaces its earlier ones (the largest ``usage`` wins, since usage only
  grows), and the latest snapshots of all instances are combined with
  :meth:`serving.core.stats.ModelServingStats.merge`;
* the model-events topic carries ``ModelEvent`` messages: ``ACCEPTED`` (the
  model is known), ``REJECTED`` (with the reason), ``DUPLICATE`` (a replay,
  counted).

The status of a model:

* ``serving``: its stats show it started (``ModelStats.since``) and no model of
  the same data type started after it;
* ``retired``: a newer model of the same data type has started; it retired at
  that model's ``since``. An accepted model that never started and was
  accepted before the serving model was published was superseded: retired too;
* ``accepted``: accepted, not serving yet (the watermark has not reached its
  ``created_at``, or, in the partitioned job, no record has reached it yet);
* ``rejected``: the job refused it; ``reason`` says why.

Every time is Unix epoch milliseconds. Nothing here is thread-safe: callers
that share a :class:`Monitor` between threads hold a lock around it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from serving.core.model import ModelType
from serving.core.stats import ModelServingStats
from serving.errors import ServingError
from serving.observability.messages import MalformedMessage, parse_event, parse_stats
from serving.observability.views import Counters, HistoryEntry, ModelStateView, ModelView, SeriesPoint, StateView
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import ModelStats

SERVING = "serving"
RETIRED = "retired"
ACCEPTED = "accepted"
REJECTED = "rejected"
STATUSES = (SERVING, RETIRED, ACCEPTED, REJECTED)

#: Points of the throughput/latency series kept per data type (one per second with stats).
SERIES_POINTS = 900
#: Series points are bucketed to this many milliseconds, so a burst of snapshots is one point.
SERIES_BUCKET_MS = 1000

_Message = TypeVar("_Message", ModelStats, ModelEvent)


class UnknownDataType(ServingError):
    """No stats and no model event names this data type."""

    reason = "unknown data type"


@dataclass
class _Instance:
    stats: ModelServingStats
    emitted_at: int
    previous: tuple[int, int] | None = None  # (usage, emitted_at) of the snapshot before


@dataclass
class _Model:
    data_type: str
    name: str
    version: str
    seq: int
    model_type: str = ""
    description: str = ""
    instances: dict[str, _Instance] = field(default_factory=dict)
    accepted_at: int | None = None
    rejected_at: int | None = None
    reason: str = ""
    duplicates: int = 0

    def merged(self) -> ModelServingStats | None:
        stats = [i.stats for i in self.instances.values()]
        if not stats:
            return None
        merged = stats[0]
        for other in stats[1:]:
            merged = merged.merge(other)
        return merged

    @property
    def usage(self) -> int:
        return sum(i.stats.usage for i in self.instances.values())

    @property
    def started(self) -> bool:
        return bool(self.instances)

    @property
    def since(self) -> int | None:
        merged = self.merged()
        return merged.since if merged is not None else None

    @property
    def updated_at(self) -> int | None:
        return max((i.emitted_at for i in self.instances.values()), default=None)


@dataclass
class _Status:
    status: str
    since: int | None
    retired_at: int | None


class Monitor:
    """Folds stats snapshots and model events into the answers of the stats service.

    Feed it with :meth:`add_stats` / :meth:`add_event` (parsed messages) or
    :meth:`ingest_stats` / :meth:`ingest_event` (raw bytes; malformed ones are
    counted and skipped, never raised). Messages may arrive in any order and
    more than once: a replayed or older snapshot never lowers what is known.
    """

    def __init__(self, series_points: int = SERIES_POINTS) -> None:
        self._models: dict[tuple[str, str, str], _Model] = {}
        self._series: dict[str, list[tuple[int, int, int]]] = {}  # data type -> [(bucket t, usage, duration ns)]
        self._series_points = series_points
        self._seq = 0
        self.counters = Counters(**dict.fromkeys(Counters.model_fields, 0))

    # ----------------------------------------------------------------- input

    def ingest_stats(self, payload: bytes | None) -> bool:
        """Add one raw stats message; False (and counted) when it is a tombstone or malformed. Never raises."""
        return self._ingest(payload, parse_stats, self.add_stats, "malformed_stats")

    def ingest_event(self, payload: bytes | None) -> bool:
        """Add one raw model event; False (and counted) when it is a tombstone or malformed. Never raises."""
        return self._ingest(payload, parse_event, self.add_event, "malformed_events")

    def add_stats(self, message: ModelStats) -> None:
        """Account for one validated stats snapshot (see :func:`parse_stats`)."""
        self.counters.stats_messages += 1
        model = self._model(message.data_type, message.name, message.version)
        stats = ModelServingStats.from_proto(message)
        model.model_type = model.model_type or stats.model_type
        model.description = model.description or stats.description
        current = model.instances.get(message.instance)
        if current is None:
            model.instances[message.instance] = _Instance(stats, message.emitted_at)
        elif stats.usage > current.stats.usage:
            previous = (current.stats.usage, current.emitted_at)
            model.instances[message.instance] = _Instance(stats, message.emitted_at, previous)
        elif stats.usage == current.stats.usage and message.emitted_at >= current.emitted_at:
            # Same count, a later snapshot (e.g. the periodic one): keep its time, and what came before.
            model.instances[message.instance] = _Instance(stats, message.emitted_at, current.previous)
        else:
            self.counters.stale_stats += 1
            return
        self._add_point(message.data_type, message.emitted_at)

    def add_event(self, event: ModelEvent) -> None:
        """Account for one validated model event (see :func:`parse_event`)."""
        self.counters.event_messages += 1
        if not event.name:
            self.counters.rejected_unidentified += 1
            return
        model = self._model(event.data_type, event.name, event.version)
        if event.model_type and not model.model_type:
            model.model_type = ModelType.Name(event.model_type)
        if event.kind == ModelEvent.ACCEPTED:
            model.accepted_at = event.ts if model.accepted_at is None else min(model.accepted_at, event.ts)
        elif event.kind == ModelEvent.REJECTED:
            if model.rejected_at is None or event.ts >= model.rejected_at:
                model.rejected_at, model.reason = event.ts, event.reason
        else:
            model.duplicates += 1
            self.counters.duplicates += 1

    # ----------------------------------------------------------------- answers

    def data_types(self) -> list[str]:
        """Every data type some stats or model event named, sorted."""
        return sorted({m.data_type for m in self._models.values()})

    def models(self) -> list[ModelView]:
        """Every known model version, by data type, then in deployment order."""
        return [self._view(m, s) for dt in self.data_types() for m, s in self._ordered(dt)]

    def state(self, data_type: str) -> StateView:
        """The serving model of ``data_type`` with its merged stats.

        Raises:
            UnknownDataType: no stats and no model event name ``data_type``.
        """
        ordered = self._known(data_type)
        serving = [(m, s) for m, s in ordered if s.status == SERVING]
        view = self._state_view(*serving[-1]) if serving else None
        return StateView(data_type=data_type, model=view, models_known=len(ordered))

    def history(self, data_type: str, at: int | None = None) -> list[HistoryEntry]:
        """Every model version of ``data_type`` in deployment order; with ``at``, the one serving then.

        Models that never served (accepted but superseded, or rejected) are
        listed where they were accepted or rejected. With ``at`` the answer is
        the models with ``deployed_at <= at`` and ``at < retired_at`` (or still
        serving): the model that scored a record with ``ts == at``.

        Raises:
            UnknownDataType: no stats and no model event name ``data_type``.
        """
        ordered = self._known(data_type)
        entries = [
            HistoryEntry(
                name=m.name,
                version=m.version,
                model_type=m.model_type,
                status=s.status,
                deployed_at=s.since,
                retired_at=s.retired_at,
                accepted_at=m.accepted_at,
                rejected_at=m.rejected_at,
                reason=m.reason,
                usage=m.usage,
                duplicates=m.duplicates,
            )
            for m, s in ordered
        ]
        if at is None:
            return entries
        return [
            e
            for e in entries
            if e.deployed_at is not None and e.deployed_at <= at and (e.retired_at is None or at < e.retired_at)
        ]

    def series(self, data_type: str) -> list[SeriesPoint]:
        """Throughput and latency of ``data_type`` between consecutive stats times (bucketed to 1 s).

        Raises:
            UnknownDataType: no stats and no model event name ``data_type``.
        """
        self._known(data_type)
        points = []
        previous = None
        for t, usage, duration in self._series.get(data_type, []):
            rate = latency = None
            if previous is not None:
                dt_ms, d_usage, d_duration = t - previous[0], usage - previous[1], duration - previous[2]
                rate = max(d_usage, 0) * 1000 / dt_ms if dt_ms > 0 else None
                latency = d_duration / d_usage if d_usage > 0 else None
            points.append(SeriesPoint(t=t, usage=usage, records_per_second=rate, mean_duration_ns=latency))
            previous = (t, usage, duration)
        return points

    # ----------------------------------------------------------------- internals

    def _ingest(
        self,
        payload: bytes | None,
        parse: Callable[[bytes], _Message],
        add: Callable[[_Message], None],
        malformed_counter: Literal["malformed_stats", "malformed_events"],
    ) -> bool:
        """The one path of raw bytes from either topic: tombstone, malformed, or parsed and added."""
        if payload is None:
            self.counters.tombstones += 1
            return False
        try:
            message = parse(payload)
        except MalformedMessage:
            setattr(self.counters, malformed_counter, getattr(self.counters, malformed_counter) + 1)
            return False
        add(message)
        return True

    def _model(self, data_type: str, name: str, version: str) -> _Model:
        key = (data_type, name, version)
        model = self._models.get(key)
        if model is None:
            self._seq += 1
            model = self._models[key] = _Model(data_type, name, version, self._seq)
        return model

    def _known(self, data_type: str) -> list[tuple[_Model, _Status]]:
        """:meth:`_ordered`, raising :class:`UnknownDataType` when no model has ``data_type``."""
        ordered = self._ordered(data_type)
        if not ordered:
            raise UnknownDataType(f"unknown data type {data_type!r}: no stats or model events name it")
        return ordered

    def _ordered(self, data_type: str) -> list[tuple[_Model, _Status]]:
        """The models of ``data_type`` with their status, in deployment order."""
        models = [m for m in self._models.values() if m.data_type == data_type]
        started = sorted((m for m in models if m.started), key=lambda m: (m.since or 0, m.seq))
        statuses: dict[int, _Status] = {}
        for i, model in enumerate(started):
            later = started[i + 1] if i + 1 < len(started) else None
            statuses[model.seq] = _Status(
                SERVING if later is None else RETIRED, model.since, None if later is None else later.since
            )
        serving_since = started[-1].since if started else None
        for model in models:
            if model.started:
                continue
            if model.accepted_at is not None:
                superseded = serving_since is not None and model.accepted_at <= serving_since
                statuses[model.seq] = _Status(RETIRED if superseded else ACCEPTED, None, None)
            else:
                statuses[model.seq] = _Status(REJECTED, None, None)

        def order(model: _Model) -> tuple[int, int]:
            if model.started:
                return (model.since or 0, model.seq)
            return (model.accepted_at or model.rejected_at or 0, model.seq)

        return [(m, statuses[m.seq]) for m in sorted(models, key=order)]

    def _view(self, model: _Model, status: _Status) -> ModelView:
        return ModelView(
            data_type=model.data_type,
            name=model.name,
            version=model.version,
            model_type=model.model_type,
            description=model.description,
            status=status.status,
            since=status.since,
            retired_at=status.retired_at,
            accepted_at=model.accepted_at,
            rejected_at=model.rejected_at,
            reason=model.reason,
            usage=model.usage,
        )

    def _state_view(self, model: _Model, status: _Status) -> ModelStateView:
        merged = model.merged()
        assert merged is not None  # a serving model has stats
        updated = model.updated_at
        lifetime_ms = (updated - merged.since) if updated is not None and merged.since else 0
        return ModelStateView(
            name=model.name,
            version=model.version,
            model_type=model.model_type,
            description=model.description,
            status=status.status,
            since=status.since,
            usage=merged.usage,
            total_duration_ns=merged.total_duration_ns,
            mean_duration_ns=merged.mean_duration_ns,
            min_duration_ns=merged.min_duration_ns,
            max_duration_ns=merged.max_duration_ns,
            records_per_second=_finite(sum(_instance_rate(i) for i in model.instances.values())),
            mean_records_per_second=_finite(merged.usage * 1000 / lifetime_ms if lifetime_ms > 0 else 0.0),
            instances=len(model.instances),
            updated_at=updated,
        )

    def _add_point(self, data_type: str, emitted_at: int) -> None:
        models = [m for m in self._models.values() if m.data_type == data_type]
        usage = sum(m.usage for m in models)
        duration = sum(i.stats.total_duration_ns for m in models for i in m.instances.values())
        bucket = emitted_at - emitted_at % SERIES_BUCKET_MS
        points = self._series.setdefault(data_type, [])
        index = bisect.bisect_left(points, (bucket,))
        if index < len(points) and points[index][0] == bucket:
            # The latest totals win within a bucket; usage is cumulative so it only grows.
            old = points[index]
            points[index] = (bucket, max(old[1], usage), max(old[2], duration))
        else:
            points.insert(index, (bucket, usage, duration))
        if len(points) > self._series_points:
            del points[: len(points) - self._series_points]


def _instance_rate(instance: _Instance) -> float:
    stats = instance.stats
    if instance.previous is not None:
        usage, at = instance.previous
        if instance.emitted_at > at:
            return (stats.usage - usage) * 1000 / (instance.emitted_at - at)
    if stats.since and instance.emitted_at > stats.since:
        return stats.usage * 1000 / (instance.emitted_at - stats.since)
    return 0.0


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def status_counts(models: Iterable[ModelView]) -> dict[str, int]:
    """How many models have each status (every status present, 0 when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    for model in models:
        counts[model.status] = counts.get(model.status, 0) + 1
    return counts
