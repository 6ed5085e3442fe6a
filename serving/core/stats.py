"""Per-model serving statistics (usage, scoring durations in nanoseconds) and when they are emitted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from serving.clock import now_ms
from serving.core.member_stats import MemberServingStats, add_members
from serving.core.model import Model, ModelDescriptor, ModelType, model_key
from serving.pb.model_stats_pb2 import ModelStats, ModelStatsList


@dataclass
class ModelServingStats:
    """Usage, total/min/max scoring duration (ns) and since (epoch ms) of one model version.

    ``min_duration_ns`` and ``max_duration_ns`` are 0 while ``usage`` is 0.
    Durations are per record: a batch of N records costing D ns counts as N
    records of D / N ns each; min rounds that down and max rounds it up, so
    ``min <= mean <= max`` always holds. ``members``: an ensemble's per-member
    counters (:mod:`serving.core.member_stats`), empty for other models.
    """

    name: str
    version: str
    data_type: str
    model_type: str = ""
    description: str = ""
    since: int = 0
    usage: int = 0
    total_duration_ns: int = 0
    min_duration_ns: int = 0
    max_duration_ns: int = 0
    instance: str = ""
    members: list[MemberServingStats] = field(default_factory=list)

    @classmethod
    def for_model(cls, descriptor: ModelDescriptor, since_ms: int) -> ModelServingStats:
        """Fresh stats for a model that starts serving at ``since_ms``."""
        return cls(
            name=descriptor.name,
            version=descriptor.version,
            data_type=descriptor.data_type,
            model_type=ModelType.Name(descriptor.model_type),
            description=descriptor.description,
            since=since_ms,
        )

    @property
    def mean_duration_ns(self) -> float:
        """Mean scoring duration per record, 0 when unused."""
        return self.total_duration_ns / self.usage if self.usage else 0.0

    def record(self, duration_ns: int, count: int = 1, members: Sequence[MemberServingStats] = ()) -> None:
        """Account for ``count`` records scored together in ``duration_ns`` (and their ensemble ``members``)."""
        if count <= 0:
            return
        if members:
            self.members = add_members(self.members, members)
        low, high = duration_ns // count, -(-duration_ns // count)
        self.min_duration_ns = low if self.usage == 0 else min(self.min_duration_ns, low)
        self.max_duration_ns = max(self.max_duration_ns, high)
        self.usage += count
        self.total_duration_ns += duration_ns

    def merge(self, other: ModelServingStats) -> ModelServingStats:
        """Combine stats of the same model version from two instances into a new object."""
        if (self.name, self.version, self.data_type) != (other.name, other.version, other.data_type):
            raise ValueError(f"cannot merge stats of {self.name}:{self.version} with {other.name}:{other.version}")
        if not other.usage:
            mins, maxs = self.min_duration_ns, self.max_duration_ns
        elif not self.usage:
            mins, maxs = other.min_duration_ns, other.max_duration_ns
        else:
            mins = min(self.min_duration_ns, other.min_duration_ns)
            maxs = max(self.max_duration_ns, other.max_duration_ns)
        since = min(s for s in (self.since, other.since) if s) if (self.since or other.since) else 0
        return ModelServingStats(
            name=self.name,
            version=self.version,
            data_type=self.data_type,
            model_type=self.model_type or other.model_type,
            description=self.description or other.description,
            since=since,
            usage=self.usage + other.usage,
            total_duration_ns=self.total_duration_ns + other.total_duration_ns,
            min_duration_ns=mins,
            max_duration_ns=maxs,
            instance=self.instance if self.instance == other.instance else "",
            members=add_members(self.members, other.members),
        )

    def to_proto(self) -> ModelStats:
        """The ``ModelStats`` protobuf of these stats."""
        return ModelStats(
            name=self.name,
            version=self.version,
            description=self.description,
            model_type=ModelType.Value(self.model_type) if self.model_type else 0,
            data_type=self.data_type,
            since=self.since,
            usage=self.usage,
            total_duration_ns=self.total_duration_ns,
            min_duration_ns=self.min_duration_ns,
            max_duration_ns=self.max_duration_ns,
            instance=self.instance,
            members=[m.to_proto() for m in self.members],
        )

    @classmethod
    def from_proto(cls, message: ModelStats) -> ModelServingStats:
        """Stats from a ``ModelStats`` protobuf."""
        return cls(
            name=message.name,
            version=message.version,
            data_type=message.data_type,
            model_type=ModelType.Name(message.model_type) if message.model_type else "",
            description=message.description,
            since=message.since,
            usage=message.usage,
            total_duration_ns=message.total_duration_ns,
            min_duration_ns=message.min_duration_ns,
            max_duration_ns=message.max_duration_ns,
            instance=message.instance,
            members=[MemberServingStats.from_proto(m) for m in message.members],
        )

    def to_dict(self) -> dict:
        """A JSON-ready dict, with the mean added."""
        return {**asdict(self), "mean_duration_ns": self.mean_duration_ns}


class StatsTracker:
    """Stats of each model an instance serves, with the emission rule.

    Stats are emitted (returned as ``ModelStats`` messages) when a model starts
    and stops serving its data type, every ``every_records`` records, when
    ``every_seconds`` have passed since the last emission (checked on
    :meth:`scored` and :meth:`emit_due`), and on request. The tracker loads
    from and saves to ``ModelStatsList`` bytes, so a Flink function can keep it
    in one ValueState; the time of the last emission travels with it (as each
    entry's ``emitted_at``), so the time rule holds across timer calls.

    Attributes:
        starts: models that started serving since this tracker was built.
        unreported: records were accounted for since the last emission of all
            stats; a caller should come back (:meth:`emit_due`) later.
    """

    def __init__(self, instance: str, every_records: int, every_seconds: float, saved: bytes | None) -> None:
        self.instance = instance
        self.every_records = every_records
        self.every_ms = int(every_seconds * 1000)
        entries = ModelStatsList.FromString(bytes(saved)).stats if saved else []
        self.stats: dict[str, ModelServingStats] = {}
        for entry in entries:
            stats = ModelServingStats.from_proto(entry)
            self.stats["\x1f".join((stats.data_type, stats.name, stats.version))] = stats
        self._last_emit_ms = max((e.emitted_at for e in entries), default=0) or now_ms()
        self.starts = 0
        self.unreported = False

    @staticmethod
    def key(model: Model) -> str:
        """The state key of a model's stats."""
        return "\x1f".join(model_key(model))

    def started(self, model: Model, since_ms: int) -> list[ModelStats]:
        """``model`` now serves its data type: retire the others of that type."""
        emitted = []
        for key in [k for k, s in self.stats.items() if s.data_type == model.data_type]:
            if key != self.key(model):
                emitted.append(self._message(self.stats.pop(key)))
        if self.key(model) not in self.stats:
            self.stats[self.key(model)] = self._fresh(model, since_ms)
            self.starts += 1
            emitted.append(self._message(self.stats[self.key(model)]))
        return emitted

    def scored(
        self, model: Model, count: int, duration_ns: int, members: Sequence[MemberServingStats] = ()
    ) -> list[ModelStats]:
        """Account for a batch (with an ensemble's ``members`` counters); returns the stats due for emission, if any."""
        since = model.descriptor.created_at or now_ms()
        emitted = self.started(model, since) if self.key(model) not in self.stats else []
        stats = self.stats[self.key(model)]
        before = stats.usage
        stats.record(duration_ns, count, members)
        crossed = self.every_records and before // self.every_records != stats.usage // self.every_records
        if crossed or (self.every_ms and now_ms() - self._last_emit_ms >= self.every_ms):
            emitted.extend(self.emit_all())
        else:
            self.unreported = True
        return [m for m in emitted if m is not None]

    def emit_due(self) -> list[ModelStats]:
        """Every model's stats when ``every_seconds`` have passed since the last emission, else nothing."""
        if self.every_ms and now_ms() - self._last_emit_ms >= self.every_ms:
            return self.emit_all()
        return []

    def emit_all(self) -> list[ModelStats]:
        """Current stats of every model, for periodic and end-of-input emission."""
        self._last_emit_ms = now_ms()
        self.unreported = False
        return [self._message(s) for s in self.stats.values()]

    def saved(self) -> bytes:
        """The bytes to keep in state (a ``ModelStatsList``; ``emitted_at``: the last emission)."""
        entries = []
        for stats in self.stats.values():
            entry = stats.to_proto()
            entry.emitted_at = self._last_emit_ms
            entries.append(entry)
        return ModelStatsList(stats=entries).SerializeToString()

    def _fresh(self, model: Model, since_ms: int) -> ModelServingStats:
        stats = ModelServingStats.for_model(model.descriptor, since_ms)
        stats.instance = self.instance
        return stats

    def _message(self, stats: ModelServingStats) -> ModelStats:
        message = stats.to_proto()
        message.emitted_at = now_ms()
        return message
