"""Which model serves each data type, since when, how much and how fast: the stats service's model.

Flink-free and Kafka-free. :class:`Monitor` folds the messages of two topics
(see :mod:`serving.observability.messages`) into answers
(see :mod:`serving.observability.views`):

* the stats topic carries ``ModelStats`` snapshots. Each is cumulative for one
  (instance, data type, name, version): the latest snapshot of an instance (by
  ``emitted_at``) replaces its earlier ones, a later one with a lower count is
  a counter reset (its earlier run is carried, so totals never go down), and
  the instances are combined with :meth:`serving.core.stats.ModelServingStats.merge`.
  Records/s is measured over a stated window (see :mod:`serving.observability.rates`);
* the model-events topic carries ``ModelEvent`` messages: ``ACCEPTED`` (the
  model is known), ``REJECTED`` (with the reason), ``DUPLICATE`` (a replay,
  counted). Experiments are not serving models: stats with ``pair`` set and lineup
  events go to :attr:`Monitor.experiments` (:mod:`serving.observability.experiments`).

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

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from serving.core.model import ModelType
from serving.core.stats import ModelServingStats
from serving.errors import ServingError
from serving.observability.experiments import Experiments
from serving.observability.messages import MalformedMessage, parse_event, parse_stats
from serving.observability.rates import RATE_WINDOW_MS, InstanceStats, Series, combined
from serving.observability.views import (
    Counters,
    HistoryEntry,
    MemberView,
    ModelStateView,
    ModelView,
    SeriesPoint,
    StateView,
)
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import ModelStats

SERVING = "serving"
RETIRED = "retired"
ACCEPTED = "accepted"
REJECTED = "rejected"
STATUSES = (SERVING, RETIRED, ACCEPTED, REJECTED)

#: Points of the throughput/latency series kept per data type (one per second with stats: an hour at least).
SERIES_POINTS = 3600

_Message = TypeVar("_Message", ModelStats, ModelEvent)


class UnknownDataType(ServingError):
    """No stats and no model event names this data type."""

    reason = "unknown data type"


@dataclass
class _Model:
    data_type: str
    name: str
    version: str
    seq: int
    model_type: str = ""
    description: str = ""
    instances: dict[str, InstanceStats] = field(default_factory=dict)
    accepted_at: int | None = None
    rejected_at: int | None = None
    reason: str = ""
    duplicates: int = 0

    def merged(self) -> ModelServingStats | None:
        stats = [i.cumulative() for i in self.instances.values()]
        if not stats:
            return None
        merged = stats[0]
        for other in stats[1:]:
            merged = merged.merge(other)
        return merged

    @property
    def usage(self) -> int:
        return sum(i.cumulative().usage for i in self.instances.values())

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
        self._series: dict[str, Series] = {}
        self._series_points = series_points
        self._seq = 0
        self.experiments = Experiments()
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
        if message.HasField("pair"):  # an experiment's, never a serving model's
            if not self.experiments.add_stats(message):
                self.counters.stale_stats += 1
            return
        model = self._model(message.data_type, message.name, message.version)
        stats = ModelServingStats.from_proto(message)
        model.model_type = model.model_type or stats.model_type
        model.description = model.description or stats.description
        current = model.instances.get(message.instance)
        if current is None:
            model.instances[message.instance] = InstanceStats.first(stats, message.emitted_at)
            added: tuple[int, int, bool] | None = (stats.usage, stats.total_duration_ns, True)
        else:
            resets = current.resets
            added = current.add(stats, message.emitted_at)
            self.counters.counter_resets += current.resets - resets
        if added is None:
            self.counters.stale_stats += 1
            return
        records, duration_ns, unmeasured = added  # a first snapshot, or the first after a reset
        series = self._series.setdefault(message.data_type, Series(self._series_points))
        series.add(message.emitted_at, records, duration_ns, measured=not unmeasured)

    def add_event(self, event: ModelEvent) -> None:
        """Account for one validated model event (see :func:`parse_event`)."""
        self.counters.event_messages += 1
        self.experiments.add_event(event)
        if event.kind not in (ModelEvent.ACCEPTED, ModelEvent.REJECTED, ModelEvent.DUPLICATE):
            return  # lineup, experiment and lateness events name no new model version
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
        else:  # DUPLICATE
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
        """Throughput and latency of ``data_type`` over time: 1 s buckets, each with rates over the 10 s before it.

        Raises:
            UnknownDataType: no stats and no model event name ``data_type``.
        """
        self._known(data_type)
        series = self._series.get(data_type)
        points = series.points(RATE_WINDOW_MS) if series is not None else []
        return [
            SeriesPoint(
                t=p.t, usage=p.usage, records_per_second=p.records_per_second, mean_duration_ns=p.mean_duration_ns
            )
            for p in points
        ]

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
        merged = model.merged()
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
            total_duration_ns=sum(i.cumulative().total_duration_ns for i in model.instances.values()),
            members=_members(merged),
        )

    def _state_view(self, model: _Model, status: _Status) -> ModelStateView:
        merged = model.merged()
        assert merged is not None  # a serving model has stats
        updated = model.updated_at
        lifetime_ms = (updated - merged.since) if updated is not None and merged.since else 0
        rates = [r for r in (i.rate(RATE_WINDOW_MS) for i in model.instances.values()) if r is not None]
        rate = combined(rates)
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
            records_per_second=_finite(rate.records_per_second if rate is not None else 0.0),
            rate_window_ms=rate.window_ms if rate is not None else 0,
            mean_records_per_second=_finite(merged.usage * 1000 / lifetime_ms if lifetime_ms > 0 else 0.0),
            instances=len(model.instances),
            restarts=sum(i.resets for i in model.instances.values()),
            updated_at=updated,
            members=_members(merged),
        )


def _members(merged: ModelServingStats | None) -> list[MemberView]:
    """An ensemble's member counters: each instance's latest run plus its carried runs, summed over instances."""
    if merged is None:
        return []
    return [
        MemberView(name=m.name, version=m.version, wins=m.wins, ok=m.ok, late=m.late, errors=m.errors)
        for m in merged.members
    ]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def status_counts(models: Iterable[ModelView]) -> dict[str, int]:
    """How many models have each status (every status present, 0 when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    for model in models:
        counts[model.status] = counts.get(model.status, 0) + 1
    return counts
